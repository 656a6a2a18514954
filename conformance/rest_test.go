package conformance_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
)

// This file covers the REST interactions (read, vread, create, update,
// delete), versions, If-Match, conditional reads, Prefer, content
// negotiation, request ids and the operational endpoints. It also holds the
// helpers the other *_test.go files of the suite share.

// indepthTypes are tested in depth (issue 3); otherTypes show that the engine
// is generic over R4 resource types. Each has a fixture in
// ../testdata/resources/<Type>.json.
var (
	indepthTypes = []string{"Patient", "Encounter", "Observation", "Appointment", "Organization"}
	otherTypes   = []string{"Practitioner", "Condition", "Medication", "Basic"}
)

// loadFixture reads ../testdata/resources/<typ>.json.
func loadFixture(t testing.TB, typ string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "resources", typ+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeJSON decodes an object keeping numbers as written (json.Number), so
// that comparing two decodings also compares decimal spelling.
func decodeJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	m, err := decodeNumbers(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	return m
}

// decodeNumbers is decodeJSON for goroutines other than the test's.
func decodeNumbers(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object: null")
	}
	return m, nil
}

// encodeJSON is the inverse of decodeJSON; numbers keep their spelling.
func encodeJSON(t testing.TB, m map[string]any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b.Bytes())
}

// withMembers returns body with the given top-level members set (nil
// deletes one).
func withMembers(t testing.TB, body []byte, kv ...any) []byte {
	t.Helper()
	m := decodeJSON(t, body)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
		} else {
			m[kv[i].(string)] = kv[i+1]
		}
	}
	return encodeJSON(t, m)
}

// withIDRaw sets "id" in a body known to be a JSON object, for goroutines
// other than the test's.
func withIDRaw(body []byte, id string) []byte {
	m, err := decodeNumbers(body)
	if err != nil {
		panic(err)
	}
	m["id"] = id
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// withID returns body with "id" set.
func withID(t testing.TB, body []byte, id string) []byte { return withMembers(t, body, "id", id) }

// stripServerMeta removes what the server owns, meta.versionId and
// meta.lastUpdated (and meta when nothing else is left), and, when dropID,
// the id.
func stripServerMeta(m map[string]any, dropID bool) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	if dropID {
		delete(out, "id")
	}
	if meta, ok := out["meta"].(map[string]any); ok {
		rest := make(map[string]any, len(meta))
		for k, v := range meta {
			if k != "versionId" && k != "lastUpdated" {
				rest[k] = v
			}
		}
		if len(rest) == 0 {
			delete(out, "meta")
		} else {
			out["meta"] = rest
		}
	}
	return out
}

// sameResource reports whether got (as read back) equals sent except the
// server-owned meta, numbers compared by their spelling; the error shows both.
func sameResource(t testing.TB, sent, got []byte, dropID bool) error {
	t.Helper()
	return resourceDiff(sent, got, dropID)
}

// resourceDiff is sameResource for goroutines other than the test's.
func resourceDiff(sent, got []byte, dropID bool) error {
	a, err := decodeNumbers(sent)
	if err != nil {
		return fmt.Errorf("sent: %v", err)
	}
	b, err := decodeNumbers(got)
	if err != nil {
		return fmt.Errorf("got: %v: %q", err, got)
	}
	a, b = stripServerMeta(a, dropID), stripServerMeta(b, dropID)
	if reflect.DeepEqual(a, b) {
		return nil
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return fmt.Errorf("read back differs from what was sent (server meta removed):\n sent: %s\n  got: %s", ja, jb)
}

// metaOf returns meta.versionId and meta.lastUpdated of a resource body.
func metaOf(t testing.TB, body []byte) (versionID, lastUpdated string) {
	t.Helper()
	m, _ := decodeJSON(t, body)["meta"].(map[string]any)
	versionID, _ = m["versionId"].(string)
	lastUpdated, _ = m["lastUpdated"].(string)
	return versionID, lastUpdated
}

// utcInstant is an R4 instant in UTC, as the server writes meta.lastUpdated.
var utcInstant = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$`)

// checkVersion checks that r carries version v of a resource: ETag W/"v",
// a Last-Modified matching meta.lastUpdated, and (when it has a body)
// meta.versionId v and a UTC lastUpdated. It returns lastUpdated.
func checkVersion(t testing.TB, what string, r *response, v int) time.Time {
	t.Helper()
	if got, want := r.header.Get("ETag"), fmt.Sprintf(`W/"%d"`, v); got != want {
		t.Errorf("%s: ETag %q, want %q", what, got, want)
	}
	lm, err := http.ParseTime(r.header.Get("Last-Modified"))
	if err != nil {
		t.Errorf("%s: Last-Modified %q: %v", what, r.header.Get("Last-Modified"), err)
	}
	if len(r.body) == 0 {
		return lm
	}
	vid, lu := metaOf(t, r.body)
	if want := fmt.Sprint(v); vid != want {
		t.Errorf("%s: meta.versionId %q, want %q", what, vid, want)
	}
	if !utcInstant.MatchString(lu) {
		t.Errorf("%s: meta.lastUpdated %q is not a UTC instant", what, lu)
		return lm
	}
	ts, err := time.Parse(time.RFC3339Nano, lu)
	if err != nil {
		t.Errorf("%s: meta.lastUpdated %q: %v", what, lu, err)
	}
	if since := time.Since(ts); since < -time.Minute || since > time.Hour {
		t.Errorf("%s: meta.lastUpdated %s is not about now", what, lu)
	}
	if !lm.IsZero() && !lm.Equal(ts.Truncate(time.Second)) {
		t.Errorf("%s: Last-Modified %s does not match meta.lastUpdated %s", what, r.header.Get("Last-Modified"), lu)
	}
	return ts
}

// issueOf is an OperationOutcome issue, reduced to what the tests check.
type issueOf struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics"`
	Expression  []string `json:"expression"`
}

// outcomeIssues parses r's body as an OperationOutcome; error when it is not one.
func outcomeIssues(r *response) ([]issueOf, error) {
	var oo struct {
		ResourceType string    `json:"resourceType"`
		Issue        []issueOf `json:"issue"`
	}
	if err := json.Unmarshal(r.body, &oo); err != nil {
		return nil, fmt.Errorf("body is not JSON: %v: %q", err, r.body)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		return nil, fmt.Errorf("body is not an OperationOutcome with issues: %s", r.body)
	}
	for _, is := range oo.Issue {
		switch is.Severity {
		case "fatal", "error", "warning", "information":
		default:
			return nil, fmt.Errorf("issue severity %q is not an R4 severity: %s", is.Severity, r.body)
		}
		if is.Code == "" || is.Diagnostics == "" {
			return nil, fmt.Errorf("issue without code or diagnostics: %s", r.body)
		}
	}
	return oo.Issue, nil
}

// checkOutcome checks status, that the body is an OperationOutcome in the
// FHIR content type, and that one of its issues has code (when set) and
// expression (when set).
func checkOutcome(t testing.TB, what string, r *response, status int, code, expr string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("%s: Content-Type %q, want application/fhir+json", what, ct)
	}
	issues, err := outcomeIssues(r)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	for _, is := range issues {
		if (code == "" || is.Code == code) && (expr == "" || contains(is.Expression, expr)) {
			return
		}
	}
	t.Errorf("%s: no issue with code %q and expression %q: %s", what, code, expr, r.body)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// create POSTs body and returns the new id (fatal unless 201).
func create(t testing.TB, s *server, typ string, body []byte) (string, *response) {
	t.Helper()
	r := do(t, "POST", s.base+"/"+typ, body)
	if r.status != http.StatusCreated {
		t.Fatalf("POST %s: status %d, want 201: %s", typ, r.status, r.body)
	}
	id, _ := decodeJSON(t, r.body)["id"].(string)
	if id == "" {
		t.Fatalf("POST %s: no id in the body: %s", typ, r.body)
	}
	return id, r
}

// put PUTs body (fatal unless the status is 200 or 201).
func put(t testing.TB, s *server, typ, id string, body []byte) *response {
	t.Helper()
	r := do(t, "PUT", s.base+"/"+typ+"/"+id, withID(t, body, id))
	if r.status != http.StatusOK && r.status != http.StatusCreated {
		t.Fatalf("PUT %s/%s: status %d: %s", typ, id, r.status, r.body)
	}
	return r
}

// send is do for goroutines other than the test's: it returns errors
// instead of failing the test.
func send(method, url string, body []byte, headers ...string) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// TestInteractions walks one resource of each type through its whole life:
// create, read, update, vread, delete, read after delete, vread of the
// deletion and of older versions, history, delete again, re-create.
func TestInteractions(t *testing.T) {
	s := startServer(t, app.Config{})
	idSyntax := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	for _, typ := range append(append([]string(nil), indepthTypes...), otherTypes...) {
		t.Run(typ, func(t *testing.T) {
			fixture := loadFixture(t, typ)

			// create: the id in the body is ignored, the server assigns one.
			sent := withID(t, fixture, "client-chosen")
			id, r := create(t, s, typ, sent)
			if id == "client-chosen" || !idSyntax.MatchString(id) {
				t.Errorf("create: server id %q: want a new valid id, not the body's", id)
			}
			if got, want := r.header.Get("Location"), s.base+"/"+typ+"/"+id+"/_history/1"; got != want {
				t.Errorf("create: Location %q, want %q", got, want)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				t.Errorf("create: Content-Type %q", ct)
			}
			if r := do(t, "GET", s.base+"/"+typ+"/client-chosen", nil); r.status != http.StatusNotFound {
				t.Errorf("create: GET %s/client-chosen: status %d, want 404: the body's id was used", typ, r.status)
			}
			t1 := checkVersion(t, "create", r, 1)
			if err := sameResource(t, fixture, r.body, true); err != nil {
				t.Errorf("create: %v", err)
			}

			// read
			r = do(t, "GET", s.base+"/"+typ+"/"+id, nil)
			if r.status != http.StatusOK {
				t.Fatalf("read: status %d: %s", r.status, r.body)
			}
			checkVersion(t, "read", r, 1)
			if err := sameResource(t, fixture, r.body, true); err != nil {
				t.Errorf("read: %v", err)
			}
			v1 := r.body

			// update twice: versions 2 and 3, no Location needed, 200.
			prev := t1
			bodies := [][]byte{v1}
			for _, step := range []struct {
				v    int
				lang string
			}{{2, "en-AU"}, {3, "de"}} {
				body := withMembers(t, fixture, "id", id, "language", step.lang)
				r = do(t, "PUT", s.base+"/"+typ+"/"+id, body)
				if r.status != http.StatusOK {
					t.Fatalf("update to v%d: status %d, want 200: %s", step.v, r.status, r.body)
				}
				ts := checkVersion(t, fmt.Sprintf("update to v%d", step.v), r, step.v)
				if ts.Before(prev) {
					t.Errorf("update to v%d: lastUpdated %s before the previous version's %s", step.v, ts, prev)
				}
				prev = ts
				if err := sameResource(t, body, r.body, false); err != nil {
					t.Errorf("update to v%d: %v", step.v, err)
				}
				bodies = append(bodies, r.body)
			}

			// vread every version: exactly the bytes returned when written.
			for v := 1; v <= 3; v++ {
				r = do(t, "GET", fmt.Sprintf("%s/%s/%s/_history/%d", s.base, typ, id, v), nil)
				if r.status != http.StatusOK {
					t.Fatalf("vread %d: status %d: %s", v, r.status, r.body)
				}
				checkVersion(t, fmt.Sprintf("vread %d", v), r, v)
				if !bytes.Equal(r.body, bodies[v-1]) {
					t.Errorf("vread %d: got %s, want %s", v, r.body, bodies[v-1])
				}
			}
			r = do(t, "GET", s.base+"/"+typ+"/"+id+"/_history/4", nil)
			checkOutcome(t, "vread of a version not yet written", r, http.StatusNotFound, "not-found", "")

			// delete: 204, later read 410, deletion kept in history.
			r = do(t, "DELETE", s.base+"/"+typ+"/"+id, nil)
			if r.status != http.StatusNoContent || len(r.body) != 0 {
				t.Fatalf("delete: status %d body %q, want 204 and no body", r.status, r.body)
			}
			r = do(t, "GET", s.base+"/"+typ+"/"+id, nil)
			checkOutcome(t, "read after delete", r, http.StatusGone, "deleted", "")
			r = do(t, "GET", s.base+"/"+typ+"/"+id+"/_history/4", nil)
			checkOutcome(t, "vread of the deleted version", r, http.StatusGone, "deleted", "")
			r = do(t, "GET", s.base+"/"+typ+"/"+id+"/_history/3", nil)
			if r.status != http.StatusOK || !bytes.Equal(r.body, bodies[2]) {
				t.Errorf("vread of the version before the deletion: status %d body %s", r.status, r.body)
			}
			entries := historyEntries(t, s.base+"/"+typ+"/"+id+"/_history")
			if got := entryKeys(entries); !reflect.DeepEqual(got, []string{"DELETE 4", "PUT 3", "PUT 2", "POST 1"}) {
				t.Errorf("history after delete: %v, want [DELETE 4, PUT 3, PUT 2, POST 1]", got)
			}
			if len(entries) > 0 && entries[0].Resource != nil {
				t.Errorf("history: the deletion entry has a resource: %s", entries[0].Resource)
			}

			// delete again: still 204, nothing new in history.
			r = do(t, "DELETE", s.base+"/"+typ+"/"+id, nil)
			if r.status != http.StatusNoContent {
				t.Errorf("second delete: status %d, want 204: %s", r.status, r.body)
			}
			if n := len(historyEntries(t, s.base+"/"+typ+"/"+id+"/_history")); n != 4 {
				t.Errorf("second delete: history has %d entries, want 4", n)
			}

			// update after delete brings it back as version 5, 201.
			r = do(t, "PUT", s.base+"/"+typ+"/"+id, withID(t, fixture, id))
			if r.status != http.StatusCreated {
				t.Errorf("update after delete: status %d, want 201: %s", r.status, r.body)
			}
			checkVersion(t, "update after delete", r, 5)
			if got, want := r.header.Get("Location"), s.base+"/"+typ+"/"+id+"/_history/5"; got != want {
				t.Errorf("update after delete: Location %q, want %q", got, want)
			}
		})
	}
}

// TestUpdateAsCreate: PUT with a client-chosen id creates (201, version 1,
// Location), then updates (200, version 2).
func TestUpdateAsCreate(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, typ := range indepthTypes {
		id := "client-" + strings.ToLower(typ) + "-1.a"
		body := withID(t, loadFixture(t, typ), id)
		r := do(t, "PUT", s.base+"/"+typ+"/"+id, body)
		if r.status != http.StatusCreated {
			t.Fatalf("%s: update-as-create: status %d, want 201: %s", typ, r.status, r.body)
		}
		checkVersion(t, typ+" update-as-create", r, 1)
		if got, want := r.header.Get("Location"), s.base+"/"+typ+"/"+id+"/_history/1"; got != want {
			t.Errorf("%s: update-as-create: Location %q, want %q", typ, got, want)
		}
		if got, _ := decodeJSON(t, r.body)["id"].(string); got != id {
			t.Errorf("%s: update-as-create: id %q, want %q", typ, got, id)
		}
		r = do(t, "PUT", s.base+"/"+typ+"/"+id, body)
		if r.status != http.StatusOK {
			t.Errorf("%s: second PUT: status %d, want 200", typ, r.status)
		}
		checkVersion(t, typ+" second PUT", r, 2)
		r = do(t, "GET", s.base+"/"+typ+"/"+id, nil)
		checkVersion(t, typ+" read", r, 2)
	}
}

// TestDeleteAbsent: deleting what never existed is 204 and stores nothing.
func TestDeleteAbsent(t *testing.T) {
	s := startServer(t, app.Config{})
	create(t, s, "Patient", loadFixture(t, "Patient"))
	before := len(historyEntries(t, s.base+"/_history"))
	for _, id := range []string{"never-existed", "x"} {
		r := do(t, "DELETE", s.base+"/Patient/"+id, nil)
		if r.status != http.StatusNoContent {
			t.Errorf("DELETE Patient/%s: status %d, want 204: %s", id, r.status, r.body)
		}
		checkOutcome(t, "read of "+id, do(t, "GET", s.base+"/Patient/"+id, nil), http.StatusNotFound, "not-found", "")
	}
	if after := len(historyEntries(t, s.base+"/_history")); after != before {
		t.Errorf("deleting absent resources changed the system history: %d entries, want %d", after, before)
	}
}

// TestUnknownType: a type outside the R4 schema is 404 with an
// OperationOutcome, whatever the interaction.
func TestUnknownType(t *testing.T) {
	s := startServer(t, app.Config{})
	body := []byte(`{"resourceType":"Foo","id":"1"}`)
	for _, c := range []struct{ method, path string }{
		{"GET", "/Foo/1"},
		{"GET", "/Foo/1/_history/1"},
		{"GET", "/Foo/1/_history"},
		{"GET", "/Foo/_history"},
		{"POST", "/Foo"},
		{"PUT", "/Foo/1"},
		{"DELETE", "/Foo/1"},
		{"GET", "/patient/1"},        // type names are case-sensitive
		{"GET", "/DomainResource/1"}, // abstract
		{"POST", "/Resource"},
	} {
		var b []byte
		if c.method == "POST" || c.method == "PUT" {
			b = body
		}
		r := do(t, c.method, s.base+c.path, b)
		checkOutcome(t, c.method+" "+c.path, r, http.StatusNotFound, "", "")
	}
}

// TestIfMatch: optimistic locking on update and delete.
func TestIfMatch(t *testing.T) {
	s := startServer(t, app.Config{})
	body := withID(t, loadFixture(t, "Patient"), "locked")
	put(t, s, "Patient", "locked", body) // v1
	put(t, s, "Patient", "locked", body) // v2
	url := s.base + "/Patient/locked"
	cases := []struct {
		name, method, ifMatch string
		status, version       int // version: the ETag expected on success
		code                  string
	}{
		{"stale version", "PUT", `W/"1"`, 412, 0, "conflict"},
		{"future version", "PUT", `W/"9"`, 412, 0, "conflict"},
		{"malformed", "PUT", `W/"two"`, 400, 0, "value"},
		{"malformed zero", "PUT", `W/"0"`, 400, 0, "value"},
		{"malformed garbage", "PUT", `abc`, 400, 0, "value"},
		{"current version", "PUT", `W/"2"`, 200, 3, ""},
		{"stale after the update", "PUT", `W/"2"`, 412, 0, "conflict"},
		{"delete stale", "DELETE", `W/"2"`, 412, 0, "conflict"},
		{"delete malformed", "DELETE", `"x"`, 400, 0, "value"},
		{"delete current", "DELETE", `W/"3"`, 204, 4, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b []byte
			if c.method == "PUT" {
				b = body
			}
			r := do(t, c.method, url, b, "If-Match", c.ifMatch)
			if c.code != "" {
				checkOutcome(t, c.method+" If-Match "+c.ifMatch, r, c.status, c.code, "")
				return
			}
			if r.status != c.status {
				t.Fatalf("%s If-Match %s: status %d, want %d: %s", c.method, c.ifMatch, r.status, c.status, r.body)
			}
			if got, want := r.header.Get("ETag"), fmt.Sprintf(`W/"%d"`, c.version); got != want {
				t.Errorf("%s If-Match %s: ETag %q, want %q", c.method, c.ifMatch, got, want)
			}
		})
	}
	// If-Match on something that does not exist cannot match.
	r := do(t, "PUT", s.base+"/Patient/absent", withID(t, body, "absent"), "If-Match", `W/"1"`)
	checkOutcome(t, "PUT If-Match on an absent resource", r, http.StatusPreconditionFailed, "conflict", "")
	checkOutcome(t, "read after refused PUT", do(t, "GET", s.base+"/Patient/absent", nil), http.StatusNotFound, "not-found", "")
}

// TestConcurrentIfMatch: of 20 concurrent updates that all say If-Match
// W/"1", exactly one wins.
func TestConcurrentIfMatch(t *testing.T) {
	s := startServer(t, app.Config{})
	const n = 20
	for _, typ := range []string{"Patient", "Observation"} {
		id := "race-" + strings.ToLower(typ)
		put(t, s, typ, id, loadFixture(t, typ))
		url := s.base + "/" + typ + "/" + id
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			counts = map[int]int{}
			errs   []error
			start  = make(chan struct{})
		)
		for i := 0; i < n; i++ {
			body := withMembers(t, loadFixture(t, typ), "id", id, "language", fmt.Sprintf("x-%d", i))
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := send("PUT", url, body, "If-Match", `W/"1"`)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				counts[r.status]++
			}()
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
		if counts[200] != 1 || counts[412] != n-1 {
			t.Errorf("%s: statuses %v, want exactly one 200 and %d 412", typ, counts, n-1)
		}
		r := do(t, "GET", url, nil)
		checkVersion(t, typ+" read after the race", r, 2)
		if h := historyEntries(t, url+"/_history"); len(h) != 2 {
			t.Errorf("%s: history has %d versions, want 2", typ, len(h))
		}
	}
}

// TestConditionalRead: If-None-Match and If-Modified-Since give 304.
func TestConditionalRead(t *testing.T) {
	s := startServer(t, app.Config{})
	body := withID(t, loadFixture(t, "Patient"), "cond")
	put(t, s, "Patient", "cond", body)
	r := put(t, s, "Patient", "cond", body) // v2
	lastMod := r.header.Get("Last-Modified")
	lm, _ := http.ParseTime(lastMod)
	url := s.base + "/Patient/cond"
	cases := []struct {
		name    string
		headers []string
		status  int
	}{
		{"none", nil, 200},
		{"If-None-Match current", []string{"If-None-Match", `W/"2"`}, 304},
		{"If-None-Match star", []string{"If-None-Match", `*`}, 304},
		{"If-None-Match stale", []string{"If-None-Match", `W/"1"`}, 200},
		{"If-Modified-Since future", []string{"If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, 304},
		{"If-Modified-Since Last-Modified", []string{"If-Modified-Since", lastMod}, 304},
		{"If-Modified-Since past", []string{"If-Modified-Since", lm.Add(-time.Second).Format(http.TimeFormat)}, 200},
		{"If-Modified-Since long ago", []string{"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}, 200},
		{"If-Modified-Since unparsable", []string{"If-Modified-Since", "yesterday"}, 200},
		// RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since.
		{"stale If-None-Match, future If-Modified-Since", []string{"If-None-Match", `W/"1"`, "If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, "GET", url, nil, c.headers...)
			if r.status != c.status {
				t.Fatalf("%v: status %d, want %d", c.headers, r.status, c.status)
			}
			if c.status == 304 && len(r.body) != 0 {
				t.Errorf("%v: 304 with a body: %q", c.headers, r.body)
			}
			if got := r.header.Get("ETag"); got != `W/"2"` {
				t.Errorf("%v: ETag %q, want W/\"2\"", c.headers, got)
			}
		})
	}
}

// TestPrefer: return=minimal | representation | OperationOutcome.
func TestPrefer(t *testing.T) {
	s := startServer(t, app.Config{})
	body := loadFixture(t, "Patient")
	cases := []struct {
		name, method, id, prefer string
		status                   int
		want                     string // "empty", "resource" or "outcome"
	}{
		{"create default", "POST", "", "", 201, "resource"},
		{"create minimal", "POST", "", "return=minimal", 201, "empty"},
		{"create representation", "POST", "", "return=representation", 201, "resource"},
		{"create OperationOutcome", "POST", "", "return=OperationOutcome", 201, "outcome"},
		{"create quoted minimal", "POST", "", `handling=strict, return="minimal"`, 201, "empty"},
		{"update-as-create minimal", "PUT", "pref", "return=minimal", 201, "empty"},
		{"update minimal", "PUT", "pref", "return=minimal", 200, "empty"},
		{"update representation", "PUT", "pref", "return=representation", 200, "resource"},
		{"update OperationOutcome", "PUT", "pref", "return=OperationOutcome", 200, "outcome"},
		{"update unknown preference", "PUT", "pref", "return=everything", 200, "resource"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url, b := s.base+"/Patient", body
			if c.id != "" {
				url, b = url+"/"+c.id, withID(t, body, c.id)
			}
			var h []string
			if c.prefer != "" {
				h = []string{"Prefer", c.prefer}
			}
			r := do(t, c.method, url, b, h...)
			if r.status != c.status {
				t.Fatalf("Prefer %q: status %d, want %d: %s", c.prefer, r.status, c.status, r.body)
			}
			if r.header.Get("ETag") == "" || r.header.Get("Last-Modified") == "" {
				t.Errorf("Prefer %q: ETag %q, Last-Modified %q: want both", c.prefer, r.header.Get("ETag"), r.header.Get("Last-Modified"))
			}
			if c.status == 201 && r.header.Get("Location") == "" {
				t.Errorf("Prefer %q: no Location", c.prefer)
			}
			switch c.want {
			case "empty":
				if len(r.body) != 0 {
					t.Errorf("Prefer %q: body %q, want none", c.prefer, r.body)
				}
			case "resource":
				if rt, _ := decodeJSON(t, r.body)["resourceType"].(string); rt != "Patient" {
					t.Errorf("Prefer %q: body %s, want the Patient", c.prefer, r.body)
				}
			case "outcome":
				issues, err := outcomeIssues(r)
				if err != nil {
					t.Errorf("Prefer %q: %v", c.prefer, err)
				} else if issues[0].Severity != "information" {
					t.Errorf("Prefer %q: severity %q, want information", c.prefer, issues[0].Severity)
				}
			}
		})
	}
	// Delete with return=OperationOutcome: 200 with an informational outcome.
	put(t, s, "Patient", "pref-del", body)
	r := do(t, "DELETE", s.base+"/Patient/pref-del", nil, "Prefer", "return=OperationOutcome")
	checkOutcome(t, "DELETE Prefer return=OperationOutcome", r, http.StatusOK, "informational", "")
}

// TestContentNegotiation: JSON in its three spellings is served, XML is 406,
// a body that is not JSON is 415, _pretty indents.
func TestContentNegotiation(t *testing.T) {
	s := startServer(t, app.Config{})
	body := withID(t, loadFixture(t, "Patient"), "fmt")
	put(t, s, "Patient", "fmt", body)
	cases := []struct {
		name, method, path string
		headers            []string
		status             int
		contentType        string // media type of the response; "" = any JSON
	}{
		{"no Accept", "GET", "/Patient/fmt", nil, 200, "application/fhir+json"},
		{"Accept fhir+json", "GET", "/Patient/fmt", []string{"Accept", "application/fhir+json"}, 200, "application/fhir+json"},
		{"Accept json", "GET", "/Patient/fmt", []string{"Accept", "application/json"}, 200, ""},
		{"Accept any", "GET", "/Patient/fmt", []string{"Accept", "*/*"}, 200, "application/fhir+json"},
		{"Accept xml then json", "GET", "/Patient/fmt", []string{"Accept", "application/fhir+xml, application/fhir+json;q=0.5"}, 200, "application/fhir+json"},
		{"Accept fhir+json with charset", "GET", "/Patient/fmt", []string{"Accept", "application/fhir+json; charset=utf-8"}, 200, "application/fhir+json"},
		{"_format=json", "GET", "/Patient/fmt?_format=json", nil, 200, ""},
		{"_format=fhir+json", "GET", "/Patient/fmt?_format=application/fhir%2Bjson", nil, 200, ""},
		{"_format=application/json", "GET", "/Patient/fmt?_format=application/json", nil, 200, ""},
		{"_format=json beats Accept xml", "GET", "/Patient/fmt?_format=json", []string{"Accept", "application/fhir+xml"}, 200, ""},
		{"_format=json on metadata", "GET", "/metadata?_format=json", nil, 200, ""},
		{"_format=json on history", "GET", "/Patient/fmt/_history?_format=json", nil, 200, ""},
		{"Accept xml", "GET", "/Patient/fmt", []string{"Accept", "application/fhir+xml"}, 406, ""},
		{"Accept application/xml", "GET", "/Patient/fmt", []string{"Accept", "application/xml"}, 406, ""},
		{"Accept html", "GET", "/Patient/fmt", []string{"Accept", "text/html"}, 406, ""},
		{"Accept json with q=0", "GET", "/Patient/fmt", []string{"Accept", "application/fhir+json;q=0"}, 406, ""},
		{"_format=xml", "GET", "/Patient/fmt?_format=xml", nil, 406, ""},
		{"_format=fhir+xml", "GET", "/Patient/fmt?_format=application/fhir%2Bxml", nil, 406, ""},
		{"_format=xml on metadata", "GET", "/metadata?_format=xml", nil, 406, ""},
		{"_format=xml on history", "GET", "/_history?_format=xml", nil, 406, ""},
		{"_format=xml on vread", "GET", "/Patient/fmt/_history/1?_format=xml", nil, 406, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, s.base+c.path, nil, c.headers...)
			if c.status == 406 {
				checkOutcome(t, c.path+" "+strings.Join(c.headers, ": "), r, 406, "not-supported", "")
				return
			}
			if r.status != c.status {
				t.Fatalf("%s %v: status %d, want %d: %s", c.path, c.headers, r.status, c.status, r.body)
			}
			ct := r.header.Get("Content-Type")
			mt := strings.TrimSpace(strings.SplitN(ct, ";", 2)[0])
			if c.contentType != "" && mt != c.contentType {
				t.Errorf("%s %v: Content-Type %q, want %s", c.path, c.headers, ct, c.contentType)
			}
			if mt != "application/fhir+json" && mt != "application/json" {
				t.Errorf("%s %v: Content-Type %q is not JSON", c.path, c.headers, ct)
			}
			decodeJSON(t, r.body)
		})
	}

	// Request bodies: what Content-Type is read.
	before := len(historyEntries(t, s.base+"/_history"))
	created := 0
	for _, c := range []struct {
		name, contentType string
		query             string
		status            int
	}{
		{"fhir+json", "application/fhir+json", "", 201},
		{"fhir+json charset", "application/fhir+json; charset=utf-8", "", 201},
		{"json", "application/json", "", 201},
		{"fhir+json, fhir version", "application/fhir+json; fhirVersion=4.0", "", 201},
		{"xml", "application/xml", "", 415},
		{"fhir+xml", "application/fhir+xml", "", 415},
		{"text", "text/plain", "", 415},
		{"form", "application/x-www-form-urlencoded", "", 415},
		{"garbage", "not a media type", "", 415},
		{"json but xml wanted", "application/fhir+json", "?_format=xml", 406},
	} {
		t.Run("body "+c.name, func(t *testing.T) {
			r := do(t, "POST", s.base+"/Patient"+c.query, loadFixture(t, "Patient"), "Content-Type", c.contentType)
			if c.status == 201 {
				created++
				if r.status != 201 {
					t.Errorf("Content-Type %q: status %d, want 201: %s", c.contentType, r.status, r.body)
				}
				return
			}
			checkOutcome(t, "Content-Type "+c.contentType, r, c.status, "not-supported", "")
		})
	}
	if after := len(historyEntries(t, s.base+"/_history")); after != before+created {
		t.Errorf("system history grew by %d, want %d: refused bodies were stored", after-before, created)
	}

	// _pretty=true indents; the content is the same.
	compact := do(t, "GET", s.base+"/Patient/fmt", nil)
	pretty := do(t, "GET", s.base+"/Patient/fmt?_pretty=true", nil)
	if !bytes.Contains(pretty.body, []byte("\n  \"")) {
		t.Errorf("_pretty=true: body is not indented: %s", pretty.body)
	}
	if bytes.Contains(compact.body, []byte("\n")) {
		t.Errorf("no _pretty: body is indented: %s", compact.body)
	}
	var a, b bytes.Buffer
	_ = json.Compact(&a, compact.body)
	_ = json.Compact(&b, pretty.body)
	if a.String() != b.String() {
		t.Errorf("_pretty=true changed the content:\n%s\n%s", a.String(), b.String())
	}
	if p := do(t, "GET", s.base+"/Patient/nope?_pretty=true", nil); !bytes.Contains(p.body, []byte("\n  \"")) {
		t.Errorf("_pretty=true on an error: OperationOutcome not indented: %s", p.body)
	}
	if p := do(t, "GET", s.base+"/_history?_pretty=true", nil); !bytes.Contains(p.body, []byte("\n  \"")) {
		t.Errorf("_pretty=true on history: not indented: %s", p.body)
	}
}

// TestRequestID: X-Request-Id is echoed when sent, generated when not, on
// successes and errors alike.
func TestRequestID(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, path := range []string{"/fhir/metadata", "/fhir/Patient/nope", "/fhir/Foo/1", "/healthz", "/no/such/path"} {
		r := do(t, "GET", s.root+path, nil, "X-Request-Id", "req-42.abc")
		if got := r.header.Get("X-Request-Id"); got != "req-42.abc" {
			t.Errorf("GET %s: X-Request-Id %q, want the one sent", path, got)
		}
		a := do(t, "GET", s.root+path, nil).header.Get("X-Request-Id")
		b := do(t, "GET", s.root+path, nil).header.Get("X-Request-Id")
		if a == "" || b == "" || a == b {
			t.Errorf("GET %s without X-Request-Id: got %q and %q, want two different generated ids", path, a, b)
		}
	}
	// An id that could forge log lines or is absurdly long is replaced.
	long := strings.Repeat("a", 200)
	for _, bad := range []string{long, "has space"} {
		r := do(t, "GET", s.base+"/metadata", nil, "X-Request-Id", bad)
		if got := r.header.Get("X-Request-Id"); got == bad || got == "" {
			t.Errorf("X-Request-Id %q: echoed %q, want a generated id", bad, got)
		}
	}
}

// TestOperationalEndpoints: /healthz, /readyz and /metrics.
func TestOperationalEndpoints(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := do(t, "GET", s.root+p, nil); r.status != 200 {
			t.Errorf("GET %s: status %d, want 200: %s", p, r.status, r.body)
		}
	}
	put(t, s, "Patient", "m1", loadFixture(t, "Patient"))
	if r := do(t, "GET", s.base+"/Patient/m1", nil); r.status != 200 {
		t.Fatalf("read: %d", r.status)
	}
	do(t, "GET", s.base+"/Patient/absent", nil)
	r := do(t, "GET", s.root+"/metrics", nil)
	if r.status != 200 {
		t.Fatalf("GET /metrics: status %d", r.status)
	}
	text := string(r.body)
	for _, re := range []string{
		`(?m)^healthhub_http_requests_total\{[^}]*interaction="read"[^}]*\} [1-9]`,
		`(?m)^healthhub_http_requests_total\{interaction="read",status="200",type="Patient"\} 1$`,
		`(?m)^healthhub_http_requests_total\{interaction="read",status="404",type="Patient"\} 1$`,
		`(?m)^healthhub_http_requests_total\{interaction="update",status="201",type="Patient"\} 1$`,
		`(?m)^healthhub_http_request_duration_seconds_bucket\{interaction="read",le="[^"]+"\} \d+$`,
		`(?m)^healthhub_db_size_bytes [1-9][0-9.e+]*$`,
		`(?m)^healthhub_db_transactions_total\{kind="write"\} [1-9]`,
		`(?m)^healthhub_db_commits_total [1-9]`,
		`(?m)^healthhub_db_page_writes_total [1-9]`,
		`(?m)^healthhub_index_journal_keys [0-9]`,
		`(?m)^healthhub_index_journal_folds_total [0-9]`,
		`(?m)^healthhub_index_journal_folds_planned_total [0-9]`,
		`(?m)^healthhub_index_journal_fold_seconds_total [0-9]`,
		`(?m)^healthhub_index_journal_fold_plan_seconds_total [0-9]`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
}

// TestAcceptQZeroSpellings: RFC 9110 12.4.2: a qvalue of 0 ("0", "0.0",
// "0.00", "0.000") marks a media type "not acceptable". An Accept that
// refuses JSON in any of these spellings and asks only for XML is 406,
// as TestContentNegotiation already requires for "q=0".
func TestAcceptQZeroSpellings(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "q0", []byte(`{"resourceType":"Patient"}`))
	for _, q := range []string{"0", "0.0", "0.00", "0.000"} {
		accept := "application/fhir+json;q=" + q + ", application/fhir+xml"
		if r := do(t, "GET", s.base+"/Patient/q0", nil, "Accept", accept); r.status != http.StatusNotAcceptable {
			t.Errorf("Accept: %s: status %d, want 406", accept, r.status)
		}
	}
}

// TestConditionalReadETagList: R4 http.html (conditional read) uses HTTP's
// If-None-Match, whose value is "*" or a list of entity tags (RFC 9110
// 13.1.2); the condition is false, and the answer 304, when any tag in
// the list weakly matches the current one.
func TestConditionalReadETagList(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "inm", []byte(`{"resourceType":"Patient"}`))
	for _, inm := range []string{`W/"1", W/"2"`, `W/"7",W/"1"`} {
		if r := do(t, "GET", s.base+"/Patient/inm", nil, "If-None-Match", inm); r.status != http.StatusNotModified {
			t.Errorf("If-None-Match: %s on version 1: status %d, want 304", inm, r.status)
		}
	}
}

// TestUpdateIfNoneMatch: If-None-Match: * on an update is "create only"
// (RFC 9110 13.1.2; R5 http.html keeps it for conditional update): 412,
// nothing written, when the resource exists; a create otherwise, a
// deleted resource included. An origin server must evaluate the
// preconditions it receives (RFC 9110 13.2.1): another value, which this
// server does not evaluate on a write, is refused rather than ignored.
func TestUpdateIfNoneMatch(t *testing.T) {
	s := startServer(t, app.Config{})
	body := withID(t, loadFixture(t, "Patient"), "inm")
	url := s.base + "/Patient/inm"
	if r := do(t, "PUT", url, body, "If-None-Match", "*"); r.status != http.StatusCreated {
		t.Fatalf("If-None-Match: * on an absent resource: status %d, want 201: %s", r.status, r.body)
	}
	checkOutcome(t, "If-None-Match: * on an existing resource", do(t, "PUT", url, body, "If-None-Match", "*"), http.StatusPreconditionFailed, "conflict", "")
	checkOutcome(t, "If-None-Match: * with a current If-Match", do(t, "PUT", url, body, "If-None-Match", "*", "If-Match", `W/"1"`), http.StatusPreconditionFailed, "", "")
	checkOutcome(t, "If-None-Match with an ETag", do(t, "PUT", url, body, "If-None-Match", `W/"1"`), http.StatusBadRequest, "not-supported", "")
	checkVersion(t, "read after the refused updates", do(t, "GET", url, nil), 1)
	if r := do(t, "DELETE", url, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.status)
	}
	r := do(t, "PUT", url, body, "If-None-Match", "*")
	if r.status != http.StatusCreated {
		t.Fatalf("If-None-Match: * on a deleted resource: status %d, want 201: %s", r.status, r.body)
	}
	checkVersion(t, "re-created", r, 3)
}

// TestWriteIfNoneMatchNotIgnored: If-None-Match on a write other than
// PUT [type]/[id] (which takes *, create only) is not evaluated, so it is
// refused (400), as Bundle.entry.request.ifNoneMatch on a write is:
// ignored, If-None-Match: * ("only if nothing is there") let a conditional
// update overwrite, a delete delete and a patch change an existing
// resource (RFC 9110 13.1.2, 13.2.1).
func TestWriteIfNoneMatchNotIgnored(t *testing.T) {
	s := startServer(t, app.Config{})
	body := withMembers(t, withID(t, loadFixture(t, "Patient"), "winm"), "identifier", []any{map[string]any{"system": "urn:test", "value": "winm"}})
	put(t, s, "Patient", "winm", body)
	patch := []byte(`[{"op":"replace","path":"/active","value":false}]`)
	for _, c := range []struct {
		name, method, path string
		body               []byte
		headers            []string
	}{
		{"conditional update", "PUT", "/Patient?identifier=urn:test|winm", body, nil},
		{"delete", "DELETE", "/Patient/winm", nil, nil},
		{"conditional delete", "DELETE", "/Patient?identifier=urn:test|winm", nil, nil},
		{"patch", "PATCH", "/Patient/winm", patch, []string{"Content-Type", "application/json-patch+json"}},
		{"conditional patch", "PATCH", "/Patient?identifier=urn:test|winm", patch, []string{"Content-Type", "application/json-patch+json"}},
		{"create", "POST", "/Patient", loadFixture(t, "Patient"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := append([]string{"If-None-Match", "*"}, c.headers...)
			checkOutcome(t, c.method+" "+c.path+" If-None-Match: *", do(t, c.method, s.base+c.path, c.body, h...), http.StatusBadRequest, "not-supported", "")
		})
	}
	checkVersion(t, "read after the refused writes", do(t, "GET", s.base+"/Patient/winm", nil), 1)
	if n := len(historyEntries(t, s.base+"/Patient/_history")); n != 1 {
		t.Errorf("Patient history has %d entries after the refused writes, want 1", n)
	}
}

// TestConditionalReadIfNoneMatchLines: If-None-Match is a list (RFC 9110
// 13.1.2), and a list may come as several header lines, which mean the
// same as one comma-separated line (RFC 9110 5.3): a tag on the second
// line that names the current version makes the read 304.
func TestConditionalReadIfNoneMatchLines(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "inml", []byte(`{"resourceType":"Patient","id":"inml"}`))
	req, err := http.NewRequest("GET", s.base+"/Patient/inml", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("If-None-Match", `W/"7"`)
	req.Header.Add("If-None-Match", `W/"1"`)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf(`If-None-Match: W/"7" and If-None-Match: W/"1" on version 1: status %d, want 304`, resp.StatusCode)
	}
}
