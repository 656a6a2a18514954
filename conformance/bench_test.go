package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
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

// HTTP benchmarks against the real server on loopback, 32 concurrent
// connections each. By default the server is a child process (the real
// binary, logging to a file), so the figures are the server's, not shared
// with the load generator's heap. HEALTHHUB_BENCH_INPROCESS=1 serves
// in-process instead, so that -cpuprofile sees the server's code;
// HEALTHHUB_BENCH_CONNS=n changes the number of connections,
// HEALTHHUB_BENCH_RATE=r paces them at r requests/s in all (GETs from one
// epoll loop on Linux, pacedloop_linux_test.go), and
// HEALTHHUB_BENCH_CLIENT=nethttp sends through net/http's client, =raw
// through the lean one (rawclient_test.go) from a goroutine per connection
// even when paced. With
// GOMAXPROCS not a divisor of 32, slightly more goroutines than 32 run.
//
//	go test -run '^$' -bench HTTP -benchtime 3s ./conformance/

const (
	benchConns     = 32
	benchPatients  = 1000 // read/vread/update pick from these
	benchHistories = 100  // Patients with benchVersions versions each
	benchVersions  = 10
)

// benchTarget is a running server with seeded data.
type benchTarget struct {
	pid  int    // the server's process; 0 when in-process
	root string // http://127.0.0.1:port, for /metrics
	base string
	hc   *http.Client
	body []byte // the Synthea Patient
}

func BenchmarkHTTP(b *testing.B) {
	tg := startBenchTarget(b, false)
	ids := make([]string, benchPatients)
	for i := range ids {
		ids[i] = "bench-" + strconv.Itoa(i)
	}
	// update bodies: one per id, the id in place
	updates := make([][]byte, benchPatients)
	for i, id := range ids {
		updates[i] = benchWithID(b, tg.body, id)
	}

	b.Run("read", func(b *testing.B) {
		benchHTTP(b, tg, "read", http.StatusOK, func(r *rand.Rand) (string, string, []byte) {
			return http.MethodGet, tg.base + "/Patient/" + ids[r.IntN(len(ids))], nil
		})
	})
	b.Run("vread", func(b *testing.B) {
		benchHTTP(b, tg, "vread", http.StatusOK, func(r *rand.Rand) (string, string, []byte) {
			return http.MethodGet, tg.base + "/Patient/bench-h" + strconv.Itoa(r.IntN(benchHistories)) + "/_history/" + strconv.Itoa(1+r.IntN(benchVersions)), nil
		})
	})
	b.Run("history", func(b *testing.B) {
		// instance history: a Bundle of 10 Synthea Patients (~40 kB)
		benchHTTP(b, tg, "history-instance", http.StatusOK, func(r *rand.Rand) (string, string, []byte) {
			return http.MethodGet, tg.base + "/Patient/bench-h" + strconv.Itoa(r.IntN(benchHistories)) + "/_history", nil
		})
	})
	b.Run("create", func(b *testing.B) {
		benchHTTP(b, tg, "create", http.StatusCreated, func(*rand.Rand) (string, string, []byte) {
			return http.MethodPost, tg.base + "/Patient", tg.body
		})
	})
	b.Run("update", func(b *testing.B) {
		benchHTTP(b, tg, "update", http.StatusOK, func(r *rand.Rand) (string, string, []byte) {
			i := r.IntN(len(ids))
			return http.MethodPut, tg.base + "/Patient/" + ids[i], updates[i]
		})
	})
}

// BenchmarkReadAuth compares read throughput with auth on (every request
// carries a bearer token that is verified and scope-checked) and off.
//
//	go test -run '^$' -bench ReadAuth -benchtime 3s ./conformance/
func BenchmarkReadAuth(b *testing.B) {
	for _, mode := range []struct {
		name string
		off  bool
	}{{"on", false}, {"off", true}} {
		b.Run(mode.name, func(b *testing.B) {
			tg := startBenchTarget(b, mode.off)
			benchHTTP(b, tg, "read", http.StatusOK, func(r *rand.Rand) (string, string, []byte) {
				return http.MethodGet, tg.base + "/Patient/bench-" + strconv.Itoa(r.IntN(benchPatients)), nil
			})
		})
	}
}

// startBenchTarget seeds a data directory through the store (bench-0 ...
// with one version, bench-h0 ... with benchVersions), then serves it, with
// auth on (requests carry the harness client's token) or off.
func startBenchTarget(b *testing.B, authOff bool) *benchTarget {
	b.Helper()
	dir, body := seedBenchData(b)
	tg := &benchTarget{body: body}
	tr := &http.Transport{MaxIdleConns: 2 * benchConns, MaxIdleConnsPerHost: 2 * benchConns, DisableCompression: true}
	tg.hc = &http.Client{Transport: withToken(tr), Timeout: 30 * time.Second}
	b.Cleanup(tr.CloseIdleConnections)
	if os.Getenv("HEALTHHUB_BENCH_INPROCESS") == "1" {
		s := startServer(b, app.Config{DataDir: dir, AuthOff: authOff})
		tg.root, tg.base = s.root, s.base
	} else {
		var args []string
		if authOff {
			args = []string{"--auth", "off"}
		}
		c := startChild(b, dir, args...)
		tg.root, tg.base, tg.pid = c.root, c.base, c.cmd.Process.Pid
	}
	return tg
}

// seedBenchData makes a data directory with the benchmarks' Patients and
// returns it and the Synthea Patient they are copies of.
func seedBenchData(b *testing.B) (dir string, body []byte) {
	b.Helper()
	body, err := os.ReadFile("../testdata/synthea-patient.json")
	if err != nil {
		b.Fatal(err)
	}
	body = bytes.TrimSpace(body)
	dir = childDataDir(b)
	s, err := app.OpenStore(dir, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx store.Tx) error {
		o, err := fhir.ParseObject(body)
		if err != nil {
			return err
		}
		for i := range benchPatients {
			if _, err := tx.Put("Patient", "bench-"+strconv.Itoa(i), o); err != nil {
				return err
			}
		}
		for range benchVersions {
			for i := range benchHistories {
				if _, err := tx.Put("Patient", "bench-h"+strconv.Itoa(i), o); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	return dir, body
}

func benchWithID(b *testing.B, body []byte, id string) []byte {
	b.Helper()
	o, err := fhir.ParseObject(body)
	if err != nil {
		b.Fatal(err)
	}
	o.Set("id", []byte(strconv.Quote(id)))
	return o.Bytes("resourceType", "id")
}

// benchHTTP runs next's requests from benchConns goroutines, each mostly on
// its own keep-alive connection, and reports throughput and latency
// percentiles as seen by the client.
func benchHTTP(b *testing.B, tg *benchTarget, interaction string, want int, next func(*rand.Rand) (method, url string, body []byte)) {
	conns := benchConns
	if n, err := strconv.Atoi(os.Getenv("HEALTHHUB_BENCH_CONNS")); err == nil && n > 0 {
		conns = n // to draw the latency/throughput curve; the targets are at 32
	}
	// HEALTHHUB_BENCH_RATE=r paces the load at r requests/s in all (open
	// loop): each connection sends on a fixed schedule, and a latency is
	// measured from the time the request was due, so a server that falls
	// behind is charged for the wait (no coordinated omission). Without it,
	// every connection sends as fast as it can: the maximum throughput, with
	// latencies that are mostly queueing (Little's law: 32 connections at
	// 16k req/s wait 2 ms on average whatever the server does).
	var interval time.Duration
	if rate, err := strconv.Atoi(os.Getenv("HEALTHHUB_BENCH_RATE")); err == nil && rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(conns) / float64(rate))
	}
	b.SetParallelism((conns + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var (
		mu        sync.Mutex
		latencies []time.Duration
		seed      atomic.Uint64
		failed    atomic.Bool
	)
	before := tg.serverLatency(b, interaction)
	srvCPU, cliCPU := tg.serverCPU(b), clientCPU(b)
	ticks := machineTicks(b)
	b.ReportAllocs()
	b.ResetTimer()
	raw := os.Getenv("HEALTHHUB_BENCH_CLIENT") != "nethttp"
	token := ""
	if raw {
		var err error
		if token, err = harnessToken(context.Background(), tg.root, harnessScope); err != nil {
			token = "" // auth is off on this server
		}
	}
	looped := false
	if interval > 0 && raw && os.Getenv("HEALTHHUB_BENCH_CLIENT") == "" {
		// Paced GETs go through one epoll loop (pacedloop_linux_test.go),
		// whose CPU is a fraction of a goroutine per connection's.
		r := rand.New(rand.NewPCG(1, 42))
		if method, _, body := next(r); method == http.MethodGet && body == nil {
			bearer := ""
			if token != "" {
				bearer = "Bearer " + token
			}
			prefix := strings.TrimSuffix(tg.base, "/fhir")
			lat, err := pacedLoop(tg.base, bearer, conns, interval, b.N, func() (string, string, []byte) {
				method, url, body := next(r)
				return method, strings.TrimPrefix(url, prefix), body
			}, want)
			switch {
			case err == nil:
				latencies, looped = lat, true
			case !errors.Is(err, errors.ErrUnsupported):
				b.Fatal(err)
			}
		}
	}
	clients := func(pb *testing.PB) {
		g := seed.Add(1)
		r := rand.New(rand.NewPCG(g, 42))
		lat := make([]time.Duration, 0, 1024)
		buf := make([]byte, 0, 64<<10)
		var rc *rawConn
		if raw {
			var err error
			if rc, err = newRawConn(tg.base, token); err != nil {
				b.Error(err)
				return
			}
			defer rc.Close()
		}
		// Spread the connections' schedules over one interval.
		due := time.Now().Add(time.Duration(g) * interval / time.Duration(conns))
		for pb.Next() {
			if interval > 0 {
				time.Sleep(time.Until(due))
			}
			method, url, body := next(r)
			if raw {
				start := time.Now()
				if interval > 0 {
					start = due
					due = due.Add(interval)
				}
				var status int
				var err error
				status, buf, err = rc.do(method, url, body, buf)
				lat = append(lat, time.Since(start))
				if err != nil || status != want {
					if failed.CompareAndSwap(false, true) {
						b.Errorf("%s %s: status %d, want %d: %v %s", method, url, status, want, err, buf)
					}
					return
				}
				continue
			}
			var rd io.Reader
			if body != nil {
				rd = bytes.NewReader(body)
			}
			req, err := http.NewRequest(method, url, rd)
			if err != nil {
				b.Error(err)
				return
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/fhir+json")
			}
			start := time.Now()
			if interval > 0 {
				start = due
				due = due.Add(interval)
			}
			resp, err := tg.hc.Do(req)
			if err == nil {
				buf, err = readAllInto(buf[:0], resp.Body)
				resp.Body.Close()
			}
			lat = append(lat, time.Since(start))
			if err != nil || resp.StatusCode != want {
				if failed.CompareAndSwap(false, true) {
					msg := fmt.Sprint(err)
					if err == nil {
						msg = fmt.Sprintf("status %d, want %d: %s", resp.StatusCode, want, buf)
					}
					b.Errorf("%s %s: %s", method, url, msg)
				}
				return
			}
		}
		mu.Lock()
		latencies = append(latencies, lat...)
		mu.Unlock()
	}
	if !looped { // the loop has sent the b.N requests
		b.RunParallel(clients)
	}
	elapsed := b.Elapsed()
	b.StopTimer()
	srvCPU, cliCPU = tg.serverCPU(b)-srvCPU, clientCPU(b)-cliCPU
	ticks = machineTicks(b).sub(ticks)
	if len(latencies) == 0 {
		return
	}
	after := tg.serverLatency(b, interaction)
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(after.sub(before).quantile(0.99)*1000, "srv-p99-ms")
	if tg.pid != 0 {
		// CPU per request: what decides throughput when the two cores are
		// the limit, and hardly disturbed by other load on the machine.
		b.ReportMetric(float64(srvCPU.Microseconds())/float64(len(latencies)), "srv-cpu-µs/op")
		b.ReportMetric(float64(cliCPU.Microseconds())/float64(len(latencies)), "cli-cpu-µs/op")
	}
	// The machine is a virtual one: time its CPUs were runnable but the
	// host ran something else (steal) stalls whatever thread was on them,
	// and shows in the tail latency. Idle says how much headroom was left.
	b.ReportMetric(ticks.percent(ticks.steal), "steal-%")
	b.ReportMetric(ticks.percent(ticks.idle), "idle-%")
}

// serverCPU is the CPU time (user and system) the server process has used;
// 0 in-process.
func (tg *benchTarget) serverCPU(b *testing.B) time.Duration {
	if tg.pid == 0 {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(tg.pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the whole line, in clock ticks (100 a second on
	// Linux).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", tg.pid, stat)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// cpuTicks is the machine's CPU time by state, from /proc/stat's first
// line, in clock ticks.
type cpuTicks struct{ total, idle, steal int64 }

func machineTicks(b *testing.B) cpuTicks {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	// cpu user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already counted in user.
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: %q", line)
	}
	var t cpuTicks
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %q", line)
		}
		t.total += n
		switch i {
		case 3, 4: // idle, iowait
			t.idle += n
		case 7:
			t.steal = n
		}
	}
	return t
}

func (t cpuTicks) sub(o cpuTicks) cpuTicks {
	return cpuTicks{total: t.total - o.total, idle: t.idle - o.idle, steal: t.steal - o.steal}
}

func (t cpuTicks) percent(n int64) float64 {
	if t.total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(t.total)
}

// clientCPU is the CPU time this process (the load generator) has used.
func clientCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// histogram is the server's request latency histogram for one interaction
// (cumulative counts by upper bound, as /metrics has it).
type histogram struct {
	le    []float64
	count []float64
}

var bucketLine = regexp.MustCompile(`^healthhub_http_request_duration_seconds_bucket\{interaction="([^"]+)",le="([^"]+)"\} (\S+)$`)

// serverLatency scrapes the server's own latency histogram: the time from
// the handler chain's start to its end, without the kernel, the client or
// the scheduler queueing between them.
func (tg *benchTarget) serverLatency(b *testing.B, interaction string) histogram {
	b.Helper()
	resp, err := tg.hc.Get(tg.root + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var h histogram
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		m := bucketLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != interaction {
			continue
		}
		le, err1 := strconv.ParseFloat(m[2], 64)
		n, err2 := strconv.ParseFloat(m[3], 64)
		if err1 != nil || err2 != nil {
			b.Fatalf("/metrics: %q", sc.Text())
		}
		h.le, h.count = append(h.le, le), append(h.count, n)
	}
	return h
}

func (h histogram) sub(o histogram) histogram {
	d := histogram{le: h.le, count: slices.Clone(h.count)}
	if len(o.count) == len(h.count) {
		for i := range d.count {
			d.count[i] -= o.count[i]
		}
	}
	return d
}

// quantile is the upper bound of the bucket holding quantile q, in
// seconds: coarse, but an upper bound.
func (h histogram) quantile(q float64) float64 {
	if len(h.count) == 0 || h.count[len(h.count)-1] == 0 {
		return math.NaN()
	}
	total := h.count[len(h.count)-1]
	for i, n := range h.count {
		if n >= q*total {
			return h.le[i]
		}
	}
	return math.Inf(1)
}

// readAllInto reads r to the end, reusing buf.
func readAllInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
