package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
	"healthhub/fhir"
	"healthhub/store"
)

// These tests run the real server as a child process (see child_test.go):
// SIGKILL in the middle of concurrent writes, SIGTERM with requests in
// flight, and a second server on a data directory in use.

// crashWrite is a write the server acknowledged with a 2xx.
type crashWrite struct {
	typ, id string
	version uint64
	body    []byte // what was sent
	create  bool   // POST: the server chose the id
}

// crashPatient returns the Synthea Patient as a map, to vary per write.
func crashPatient(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../testdata/synthea-patient.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// crashBody is the Patient with id (none when empty) and a name unique to
// this write, so that each version's content is recognisable.
func crashBody(t testing.TB, base map[string]any, id, tag string) []byte {
	m := make(map[string]any, len(base)+1)
	for k, v := range base {
		m[k] = v
	}
	delete(m, "id")
	if id != "" {
		m["id"] = id
	}
	m["name"] = []any{map[string]any{"use": "official", "family": "Crash", "given": []any{tag}}}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameExceptMeta compares two resources as JSON, ignoring meta (and id
// when the server chose it).
func sameExceptMeta(sent, got []byte, ignoreID bool) (bool, error) {
	var a, b map[string]any
	if err := json.Unmarshal(sent, &a); err != nil {
		return false, fmt.Errorf("sent: %w", err)
	}
	if err := json.Unmarshal(got, &b); err != nil {
		return false, fmt.Errorf("stored: %w", err)
	}
	delete(a, "meta")
	delete(b, "meta")
	if ignoreID {
		delete(a, "id")
		delete(b, "id")
	}
	return reflect.DeepEqual(a, b), nil
}

// crashClient is an HTTP client for one child: its own connections, so
// that a killed server's connections do not linger in the shared pool.
func crashClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: withToken(&http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}),
	}
}

// crashSend does one request and returns status, headers and body.
func crashSend(hc *http.Client, method, url string, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// crashLoad runs writers goroutines of creates and updates against c until
// ctx ends or the server stops answering, and returns the acknowledged
// writes and the number of requests cut off: sent before the time in
// killedAt (unix ns, 0 while unset) and never answered.
func crashLoad(t *testing.T, ctx context.Context, c *childServer, writers int, killedAt *atomic.Int64) ([]crashWrite, int) {
	base := crashPatient(t)
	hc := crashClient()
	defer hc.CloseIdleConnections()
	var (
		mu     sync.Mutex
		acked  []crashWrite
		cutOff atomic.Int64
		wg     sync.WaitGroup
	)
	for g := range writers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				tag := fmt.Sprintf("g%d-%d", g, i)
				w := crashWrite{typ: "Patient"}
				method, url := http.MethodPut, ""
				switch {
				case i%3 == 0:
					method, url, w.create = http.MethodPost, c.base+"/Patient", true
				case i%5 == 1:
					w.id = "crash-shared-" + strconv.Itoa(i%3) // every writer updates these
				default:
					w.id = fmt.Sprintf("crash-g%d-%d", g, i%4) // only this writer does
				}
				if url == "" {
					url = c.base + "/Patient/" + w.id
				}
				w.body = crashBody(t, base, w.id, tag)
				sent := time.Now().UnixNano()
				status, h, body, err := crashSend(hc, method, url, w.body)
				if err != nil {
					if k := killedAt.Load(); k != 0 && sent < k {
						cutOff.Add(1)
					}
					return // the server is gone
				}
				if status/100 != 2 {
					t.Errorf("%s %s: status %d: %s", method, url, status, body)
					return
				}
				v, ok := fhir.ParseVersionETag(h.Get("ETag"))
				if !ok {
					t.Errorf("%s %s: no version ETag: %q", method, url, h.Get("ETag"))
					return
				}
				w.version = v
				if w.create {
					var r struct{ ID string }
					if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
						t.Errorf("POST: no id in the response: %v %s", err, body)
						return
					}
					w.id = r.ID
				}
				mu.Lock()
				acked = append(acked, w)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return acked, int(cutOff.Load())
}

// TestCrashKeepsAcknowledgedWrites: SIGKILL the server in the middle of
// concurrent writes, restart it on the same data: it opens, every write it
// acknowledged is there and reads back as sent, and nothing half-written is
// visible.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	dir := childDataDir(t)
	c := startChild(t, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second) // a bound, should the kill not stop the writers
	defer cancel()
	var acked []crashWrite
	var cutOff int
	var killedAt atomic.Int64
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		acked, cutOff = crashLoad(t, ctx, c, 16, &killedAt)
	}()
	time.Sleep(1500 * time.Millisecond)
	killedAt.Store(time.Now().UnixNano())
	c.kill()
	<-loaded
	cancel()
	if c.state.ExitCode() != -1 {
		t.Fatalf("the child was not killed by the signal: %v", c.state)
	}
	t.Logf("%d writes acknowledged before SIGKILL, %d requests cut off by it", len(acked), cutOff)
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged in 1.5 s: too few to test anything", len(acked))
	}
	if cutOff == 0 {
		t.Errorf("no request was in flight at the kill: the crash did not happen mid-stream")
	}

	start := time.Now()
	c2 := startChild(t, dir)
	t.Logf("restarted after the crash in %s", time.Since(start).Round(time.Millisecond))
	hc := crashClient()
	defer hc.CloseIdleConnections()

	// Every acknowledged version reads back as sent; the current version is
	// at least the newest acknowledged one.
	newest := map[string]uint64{}
	for _, w := range acked {
		newest[w.id] = max(newest[w.id], w.version)
	}
	var wg sync.WaitGroup
	work := make(chan crashWrite)
	for range 8 {
		wg.Go(func() {
			for w := range work {
				url := c2.base + "/" + w.typ + "/" + w.id + "/_history/" + strconv.FormatUint(w.version, 10)
				status, _, body, err := crashSend(hc, http.MethodGet, url, nil)
				if err != nil || status != http.StatusOK {
					t.Errorf("acknowledged %s/%s version %d: vread gives %d %v %s", w.typ, w.id, w.version, status, err, body)
					continue
				}
				same, err := sameExceptMeta(w.body, body, w.create)
				if err != nil || !same {
					t.Errorf("acknowledged %s/%s version %d reads back different (%v):\n sent %s\n got  %s", w.typ, w.id, w.version, err, w.body, body)
				}
			}
		})
	}
	for _, w := range acked {
		work <- w
	}
	close(work)
	wg.Wait()
	for id, v := range newest {
		status, h, body, err := crashSend(hc, http.MethodGet, c2.base+"/Patient/"+id, nil)
		got, _ := fhir.ParseVersionETag(h.Get("ETag"))
		if err != nil || status != http.StatusOK || got < v {
			t.Errorf("Patient/%s: acknowledged version %d, read gives %d version %d %v %s", id, v, status, got, err, body)
		}
	}

	// Nothing half-written: walk the whole system history; each resource's
	// versions are 1..n with n its current version, each a JSON resource.
	versions := crashHistory(t, hc, c2.base+"/_history?_count=1000")
	for key, vs := range versions {
		for i, v := range vs {
			if v != uint64(len(vs)-i) {
				t.Errorf("%s: history versions %v are not n..1", key, vs)
				break
			}
		}
		status, h, _, err := crashSend(hc, http.MethodGet, c2.base+"/"+key, nil)
		if got, _ := fhir.ParseVersionETag(h.Get("ETag")); err != nil || status != http.StatusOK || got != vs[0] {
			t.Errorf("%s: history ends at version %d, read gives %d version %d %v", key, vs[0], status, got, err)
		}
	}
	for _, w := range acked {
		if vs := versions[w.typ+"/"+w.id]; len(vs) == 0 || vs[0] < w.version {
			t.Errorf("acknowledged %s/%s version %d is missing from the system history", w.typ, w.id, w.version)
		}
	}

	// Stop cleanly and check the file's invariants directly.
	c2.signal(syscall.SIGTERM)
	if code, err := c2.wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("SIGTERM after the restart: exit code %d, %v", code, err)
	}
	s, err := app.OpenStore(dir, store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("after the crash and restart, the store's invariants are broken:\n%v", err)
	}
}

// crashHistory pages through a history and returns, per Type/id, the
// versions seen, newest first. Every entry must be a whole resource or a
// deletion.
func crashHistory(t *testing.T, hc *http.Client, url string) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for pages := 0; url != ""; pages++ {
		if pages > 1000 {
			t.Fatal("history paging does not end")
		}
		status, _, body, err := crashSend(hc, http.MethodGet, url, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("GET %s: %d %v %s", url, status, err, body)
		}
		var b struct {
			Link  []struct{ Relation, URL string }
			Entry []struct {
				FullURL  string          `json:"fullUrl"`
				Resource json.RawMessage `json:"resource"`
				Request  struct{ Method string }
				Response struct{ Etag string }
			}
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatalf("GET %s: not a JSON Bundle: %v", url, err)
		}
		url = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				url = l.URL
			}
		}
		for _, e := range b.Entry {
			i := strings.Index(e.FullURL, "/fhir/")
			v, ok := fhir.ParseVersionETag(e.Response.Etag)
			if i < 0 || !ok {
				t.Errorf("history entry without fullUrl or etag: %q %q", e.FullURL, e.Response.Etag)
				continue
			}
			key := e.FullURL[i+len("/fhir/"):]
			if e.Request.Method != http.MethodDelete {
				var r struct {
					ResourceType string
					ID           string
					Meta         struct{ VersionID string }
				}
				if err := json.Unmarshal(e.Resource, &r); err != nil || r.ResourceType+"/"+r.ID != key || r.Meta.VersionID != strconv.FormatUint(v, 10) {
					t.Errorf("history entry %s version %d: resource %q/%q version %q (%v)", key, v, r.ResourceType, r.ID, r.Meta.VersionID, err)
				}
			}
			out[key] = append(out[key], v)
		}
	}
	return out
}

// TestSIGTERMFinishesInFlight: on SIGTERM the server stops accepting,
// finishes the requests it is serving (here, bodies still arriving),
// closes the database and exits 0; what it acknowledged is stored.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	t.Parallel()
	dir := childDataDir(t)
	c := startChild(t, dir)
	base := crashPatient(t)

	// Slow uploads: the headers and half the body now, the rest after the
	// signal.
	const slow = 3
	type slowResult struct {
		status int
		id     string
		body   []byte
		err    error
	}
	results := make(chan slowResult, slow)
	release := make(chan struct{})
	var started sync.WaitGroup
	hc := crashClient()
	defer hc.CloseIdleConnections()
	for i := range slow {
		started.Add(1)
		body := crashBody(t, base, "", fmt.Sprintf("slow-%d", i))
		go func() {
			pr, pw := io.Pipe()
			go func() {
				_, _ = pw.Write(body[:len(body)/2])
				started.Done()
				<-release
				_, _ = pw.Write(body[len(body)/2:])
				pw.Close()
			}()
			req, err := http.NewRequest(http.MethodPost, c.base+"/Patient", pr)
			if err != nil {
				results <- slowResult{err: err}
				return
			}
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			resp, err := hc.Do(req)
			if err != nil {
				results <- slowResult{err: err}
				return
			}
			defer resp.Body.Close()
			var r struct{ ID string }
			rb, err := io.ReadAll(resp.Body)
			_ = json.Unmarshal(rb, &r)
			results <- slowResult{status: resp.StatusCode, id: r.ID, body: body, err: err}
		}()
	}
	started.Wait()
	time.Sleep(300 * time.Millisecond) // let the server read the headers and start the handlers

	// Ordinary load at the same time.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var acked []crashWrite
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		acked, _ = crashLoad(t, ctx, c, 4, new(atomic.Int64))
	}()
	time.Sleep(200 * time.Millisecond)

	c.signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	if c.exited() {
		t.Fatalf("the server exited (%v) while requests were in flight", c.state)
	}
	if resp, err := (&http.Client{Timeout: time.Second}).Get(c.root + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("a new connection after SIGTERM was accepted and answered %d", resp.StatusCode)
	}
	close(release)
	var done []slowResult
	for range slow {
		r := <-results
		if r.err != nil || r.status != http.StatusCreated {
			t.Errorf("in-flight create during shutdown: status %d, %v", r.status, r.err)
			continue
		}
		done = append(done, r)
	}
	code, err := c.wait(15 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0", code)
	}
	if log := c.log(); !strings.Contains(log, "stopped cleanly") {
		t.Errorf("no \"stopped cleanly\" in the log:\n%s", c.logTail(10))
	}
	<-loaded
	cancel()
	t.Logf("%d quick writes acknowledged around the SIGTERM", len(acked))

	// Everything acknowledged is in the database, which closed cleanly.
	s, err := app.OpenStore(dir, store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, r := range done {
		acked = append(acked, crashWrite{typ: "Patient", id: r.id, version: 1, body: r.body, create: true})
	}
	err = s.View(context.Background(), func(tx store.Tx) error {
		for _, w := range acked {
			got, err := tx.Version(w.typ, w.id, w.version)
			if err != nil {
				t.Errorf("acknowledged %s/%s version %d: %v", w.typ, w.id, w.version, err)
				continue
			}
			if same, err := sameExceptMeta(w.body, got.JSON, w.create); err != nil || !same {
				t.Errorf("acknowledged %s/%s version %d differs (%v)", w.typ, w.id, w.version, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Errorf("store invariants after a clean stop:\n%v", err)
	}
}

// TestDataDirInUse: a second server pointed at a data directory another
// one holds exits non-zero within a few seconds with a clear message; the
// first keeps serving.
func TestDataDirInUse(t *testing.T) {
	t.Parallel()
	dir := childDataDir(t)
	first := startChild(t, dir)
	start := time.Now()
	second := spawnChild(t, dir)
	code, err := second.wait(10 * time.Second)
	if err != nil {
		t.Fatalf("a second server on a data dir in use hangs: %v\n%s", err, second.logTail(10))
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("the second server took %s to give up", took)
	}
	if code == 0 {
		t.Errorf("the second server exited 0")
	}
	if log := second.log(); !strings.Contains(log, "in use by another process") || !strings.Contains(log, dir) {
		t.Errorf("the second server's error does not say that %s is in use:\n%s", dir, log)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(first.base + "/metadata")
	if err != nil {
		t.Fatalf("the first server after the second gave up: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the first server after the second gave up: status %d", resp.StatusCode)
	}
}

// TestServeTunesRuntime: the serve process runs the collector at
// app.ServeGCPercent and app.ServeProcsPerCPU Go processors per CPU, as
// its /metrics shows, unless GOGC or GOMAXPROCS is set (then this test
// has nothing to check).
func TestServeTunesRuntime(t *testing.T) {
	t.Parallel()
	if os.Getenv("GOGC") != "" || os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOGC or GOMAXPROCS is set: serve keeps it")
	}
	c := startChild(t, childDataDir(t))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(c.root + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// The child's default GOMAXPROCS is this process's: same machine, same
	// limits.
	want := fmt.Sprintf("\ngo_sched_gomaxprocs_threads %d\n", app.ServeProcsPerCPU*runtime.GOMAXPROCS(0))
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics has no line %q", strings.TrimSpace(want))
	}
	// GOGC is ServeGCPercent, or more while the heap floor holds the goal
	// up (the floor waits for a first collection to measure the live heap).
	gogc, goal := metricValue(t, body, "go_gc_gogc_percent"), metricValue(t, body, "go_memstats_next_gc_bytes")
	switch {
	case gogc < app.ServeGCPercent:
		t.Errorf("GOGC %v, want at least %d", gogc, app.ServeGCPercent)
	case gogc > app.ServeGCPercent && goal < 0.9*app.ServeHeapFloor:
		t.Errorf("GOGC %v raised, but the heap goal %v is under the floor %d", gogc, goal, app.ServeHeapFloor)
	}
}

// metricValue is the value of an unlabelled metric in a /metrics body.
func metricValue(t *testing.T, body []byte, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// TestCutOffRequestIsLogged: a second SIGTERM cuts off the requests in
// flight, but each still gets its access log line before the process
// exits. A large transaction cut off may already be committing (closing
// the database waits for it), so its client has no answer while its
// Patients are stored: the log is where an operator finds out which
// request it was and how it ended.
func TestCutOffRequestIsLogged(t *testing.T) {
	t.Parallel()
	c := startChild(t, childDataDir(t), "--auth", "off")
	var entries []string
	for i := range 9000 {
		entries = append(entries, fmt.Sprintf(`{"fullUrl":"urn:uuid:%08d-0000-4000-8000-000000000000","resource":{"resourceType":"Patient","name":[{"family":"Cut%d"}],"birthDate":"1970-01-01"},"request":{"method":"POST","url":"Patient"}}`, i, i))
	}
	body := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`)
	answered := make(chan error, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPost, c.base, bytes.NewReader(body))
		if err != nil {
			answered <- err
			return
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("X-Request-Id", "cut-off-transaction")
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %d", resp.StatusCode)
		}
		answered <- err
	}()
	time.Sleep(100 * time.Millisecond) // sent, and being validated
	c.signal(syscall.SIGTERM)
	time.Sleep(20 * time.Millisecond)
	c.signal(syscall.SIGTERM)
	if _, err := c.wait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil && strings.HasPrefix(err.Error(), "answered") {
		t.Logf("the transaction finished before the signals (%v): nothing was cut off", err)
	}
	if log := c.log(); !strings.Contains(log, "cut-off-transaction") {
		t.Errorf("the transaction cut off has no log line:\n%s", c.logTail(10))
	}
}
