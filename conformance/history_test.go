package conformance_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
	"healthhub/fhir/validate"
)

// historyBundle is a history Bundle, reduced to what the tests check.
type historyBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []historyEntry `json:"entry"`
}

type historyEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response struct {
		Status       string `json:"status"`
		Etag         string `json:"etag"`
		LastModified string `json:"lastModified"`
	} `json:"response"`
}

func (b *historyBundle) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

// key names an entry: "METHOD version", e.g. "PUT 3".
func (e historyEntry) key() string {
	return e.Request.Method + " " + strings.TrimSuffix(strings.TrimPrefix(e.Response.Etag, `W/"`), `"`)
}

// ref names an entry across resources: "Type/id version".
func (e historyEntry) ref(base string) string {
	return strings.TrimPrefix(e.FullURL, base+"/") + " " + e.key()
}

// getHistory fetches one page (fatal unless 200 and a history Bundle).
func getHistory(t testing.TB, url string) (*historyBundle, *response) {
	t.Helper()
	r := do(t, "GET", url, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", url, r.status, r.body)
	}
	var b historyBundle
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if b.ResourceType != "Bundle" || b.Type != "history" {
		t.Fatalf("GET %s: not a history Bundle: %s", url, r.body)
	}
	return &b, r
}

// historyEntries returns every entry, following next links.
func historyEntries(t testing.TB, url string) []historyEntry {
	t.Helper()
	var all []historyEntry
	for pages := 0; url != ""; pages++ {
		if pages > 1000 {
			t.Fatalf("history: more than 1000 pages; the next links loop?")
		}
		b, _ := getHistory(t, url)
		all = append(all, b.Entry...)
		url = b.link("next")
	}
	return all
}

// entryKeys and entryRefs return nil for no entries, so that a want of nil
// compares equal with reflect.DeepEqual.
func entryKeys(es []historyEntry) []string {
	if len(es) == 0 {
		return nil
	}
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.key()
	}
	return keys
}

func entryRefs(base string, es []historyEntry) []string {
	if len(es) == 0 {
		return nil
	}
	refs := make([]string, len(es))
	for i, e := range es {
		refs[i] = e.ref(base)
	}
	return refs
}

// instantOf returns meta.lastUpdated of a written resource.
func instantOf(t testing.TB, r *response) time.Time {
	t.Helper()
	_, lu := metaOf(t, r.body)
	ts, err := time.Parse(time.RFC3339Nano, lu)
	if err != nil {
		t.Fatalf("meta.lastUpdated %q: %v", lu, err)
	}
	return ts
}

func fhirInstant(ts time.Time) string { return ts.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// TestHistoryLevels: instance, type and system history list every version,
// newest first, deletions included, as a valid R4 history Bundle.
func TestHistoryLevels(t *testing.T) {
	s := startServer(t, app.Config{})
	pat := loadFixture(t, "Patient")
	obs := loadFixture(t, "Observation")
	put(t, s, "Patient", "h1", pat)                                       // Patient/h1 1 (PUT-created)
	idB, _ := create(t, s, "Patient", pat)                                // Patient/B 1
	put(t, s, "Patient", "h1", withMembers(t, pat, "language", "de"))     // Patient/h1 2
	idO, _ := create(t, s, "Observation", obs)                            // Observation/O 1
	put(t, s, "Observation", idO, withMembers(t, obs, "language", "de"))  // Observation/O 2
	if r := do(t, "DELETE", s.base+"/Patient/h1", nil); r.status != 204 { // Patient/h1 3
		t.Fatalf("delete: %d", r.status)
	}
	put(t, s, "Patient", "h1", pat) // Patient/h1 4, re-created

	cases := []struct {
		name, path string
		want       []string // entry refs, newest first
	}{
		{"instance", "/Patient/h1/_history", []string{
			"Patient/h1 PUT 4", "Patient/h1 DELETE 3", "Patient/h1 PUT 2", "Patient/h1 PUT 1"}},
		{"type Patient", "/Patient/_history", []string{
			"Patient/h1 PUT 4", "Patient/h1 DELETE 3", "Patient/h1 PUT 2", "Patient/" + idB + " POST 1", "Patient/h1 PUT 1"}},
		{"type Observation", "/Observation/_history", []string{
			"Observation/" + idO + " PUT 2", "Observation/" + idO + " POST 1"}},
		{"type never written", "/Encounter/_history", nil},
		{"system", "/_history", []string{
			"Patient/h1 PUT 4", "Patient/h1 DELETE 3", "Observation/" + idO + " PUT 2", "Observation/" + idO + " POST 1",
			"Patient/h1 PUT 2", "Patient/" + idB + " POST 1", "Patient/h1 PUT 1"}},
	}
	v := validate.New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, r := getHistory(t, s.base+c.path)
			// Version 1 of h1 was created by PUT (update-as-create), of B and
			// O by POST: each entry names the interaction that made it.
			got := entryRefs(s.base, b.Entry)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("GET %s:\n got %q\nwant %q", c.path, got, c.want)
			}
			if self := b.link("self"); !strings.HasPrefix(self, s.base+c.path) {
				t.Errorf("GET %s: self link %q", c.path, self)
			}
			if next := b.link("next"); next != "" {
				t.Errorf("GET %s: a next link %q on the only page", c.path, next)
			}
			if b.Total != nil && *b.Total != len(c.want) {
				t.Errorf("GET %s: total %d, want %d", c.path, *b.Total, len(c.want))
			}
			checkHistoryEntries(t, s, b.Entry)
			if err := v.Validate("Bundle", r.body); err != nil {
				t.Errorf("GET %s: the history Bundle is not valid R4: %v\n%s", c.path, err, r.body)
			}
		})
	}

	// The status each version's interaction answered: an update that
	// (re)created the resource 201, one that changed it 200.
	var statuses []string
	for _, e := range historyEntries(t, s.base+"/Patient/h1/_history") {
		statuses = append(statuses, e.key()+" "+e.Response.Status)
	}
	if want := []string{"PUT 4 201 Created", "DELETE 3 204 No Content", "PUT 2 200 OK", "PUT 1 201 Created"}; !reflect.DeepEqual(statuses, want) {
		t.Errorf("Patient/h1 history statuses:\n got %q\nwant %q", statuses, want)
	}

	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/Patient/absent/_history", 404, "not-found"},
		{"/Foo/_history", 404, ""},
		{"/Foo/1/_history", 404, ""},
		{"/Patient/bad_id/_history", 400, "value"},
	} {
		checkOutcome(t, "GET "+c.path, do(t, "GET", s.base+c.path, nil), c.status, c.code, "")
	}
}

// checkHistoryEntries checks each entry's parts against its resource.
func checkHistoryEntries(t *testing.T, s *server, es []historyEntry) {
	t.Helper()
	var prev time.Time
	for i, e := range es {
		lm, err := time.Parse(time.RFC3339Nano, e.Response.LastModified)
		if err != nil || !utcInstant.MatchString(e.Response.LastModified) {
			t.Errorf("entry %d: response.lastModified %q is not a UTC instant", i, e.Response.LastModified)
		}
		if i > 0 && lm.After(prev) {
			t.Errorf("entry %d: lastModified %s after the previous entry's %s: not newest first", i, lm, prev)
		}
		prev = lm
		path := strings.TrimPrefix(e.FullURL, s.base+"/")
		if path == e.FullURL || strings.Count(path, "/") != 1 {
			t.Errorf("entry %d: fullUrl %q is not <base>/Type/id", i, e.FullURL)
		}
		version := strings.TrimSuffix(strings.TrimPrefix(e.Response.Etag, `W/"`), `"`)
		switch e.Request.Method {
		case "DELETE":
			if e.Resource != nil {
				t.Errorf("entry %d: a DELETE entry with a resource", i)
			}
			if e.Request.URL != path {
				t.Errorf("entry %d: DELETE request.url %q, want %q", i, e.Request.URL, path)
			}
		case "POST", "PUT":
			if e.Resource == nil {
				t.Errorf("entry %d: a %s entry without the resource", i, e.Request.Method)
				continue
			}
			res := decodeJSON(t, e.Resource)
			vid, lu := metaOf(t, e.Resource)
			if vid != version || lu != e.Response.LastModified {
				t.Errorf("entry %d: resource meta %s/%s, response etag %s lastModified %s", i, vid, lu, e.Response.Etag, e.Response.LastModified)
			}
			if got := fmt.Sprintf("%s/%s", res["resourceType"], res["id"]); got != path {
				t.Errorf("entry %d: resource %s under fullUrl %s", i, got, e.FullURL)
			}
			// The vread of this version gives the same resource.
			r := do(t, "GET", e.FullURL+"/_history/"+version, nil)
			if err := sameResource(t, e.Resource, r.body, false); err != nil || r.status != 200 {
				t.Errorf("entry %d: vread %s: status %d: %v", i, version, r.status, err)
			}
			// 201 for every version 1; a later PUT answers 201 too when it
			// re-created a deleted resource (TestHistoryLevels checks which).
			created := strings.HasPrefix(e.Response.Status, "201")
			if (version == "1" && !created) || (e.Request.Method == "POST" && version != "1") || (!created && e.Response.Status != "200 OK") {
				t.Errorf("entry %d: %s version %s with response.status %q", i, e.Request.Method, version, e.Response.Status)
			}
		default:
			t.Errorf("entry %d: request.method %q", i, e.Request.Method)
		}
	}
}

// TestHistoryPaging follows next links with a small _count while new
// writes happen between pages: every version that existed when paging
// started comes exactly once, newest first, and new writes do not shift
// the pages.
func TestHistoryPaging(t *testing.T) {
	s := startServer(t, app.Config{})
	pat := loadFixture(t, "Patient")
	obs := loadFixture(t, "Observation")
	// Seed concurrently (writes share a group commit): 4 Patients with 1 to
	// 4 versions, one with 10, 5 Observations.
	type write struct{ method, url string }
	var seed []write
	for i := 0; i < 4; i++ {
		for v := 0; v <= i; v++ {
			seed = append(seed, write{"PUT", fmt.Sprintf("%s/Patient/pg%d", s.base, i)})
		}
	}
	for v := 0; v < 10; v++ {
		seed = append(seed, write{"PUT", s.base + "/Patient/pg-long"})
	}
	for i := 0; i < 5; i++ {
		seed = append(seed, write{"POST", s.base + "/Observation"})
	}
	errs := make(chan error, len(seed))
	for _, w := range seed {
		go func() {
			body := obs
			if w.method == "PUT" {
				body = withIDRaw(pat, w.url[strings.LastIndexByte(w.url, '/')+1:])
			}
			r, err := send(w.method, w.url, body)
			if err == nil && r.status != 200 && r.status != 201 {
				err = fmt.Errorf("%s %s: status %d: %s", w.method, w.url, r.status, r.body)
			}
			errs <- err
		}()
	}
	for range seed {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	do(t, "DELETE", s.base+"/Patient/pg3", nil)
	if h := historyEntries(t, s.base+"/Patient/pg-long/_history"); len(h) != 10 {
		t.Fatalf("Patient/pg-long has %d versions, want 10", len(h))
	}

	n := 0
	levels := []struct {
		name, path string
		write      func() // a write that this listing would show
	}{
		{"instance", "/Patient/pg-long/_history", func() { put(t, s, "Patient", "pg-long", pat) }},
		{"type", "/Patient/_history", func() { n++; put(t, s, "Patient", fmt.Sprintf("new%d", n), pat) }},
		{"system", "/_history", func() { create(t, s, "Observation", obs) }},
	}
	for _, lv := range levels {
		for _, count := range []int{1, 3, 7} {
			t.Run(fmt.Sprintf("%s/_count=%d", lv.name, count), func(t *testing.T) {
				want := entryRefs(s.base, historyEntries(t, s.base+lv.path+"?_count=1000"))
				seen := map[string]bool{}
				for _, ref := range want {
					if seen[ref] {
						t.Fatalf("one page lists %s twice", ref)
					}
					seen[ref] = true
				}
				var got []historyEntry
				next := fmt.Sprintf("%s%s?_count=%d", s.base, lv.path, count)
				for pages := 0; next != ""; pages++ {
					if pages > len(want)+1 {
						t.Fatalf("more pages than entries: next links loop")
					}
					b, _ := getHistory(t, next)
					if len(b.Entry) > count || len(b.Entry) == 0 {
						t.Fatalf("page %d has %d entries, want 1 to %d", pages, len(b.Entry), count)
					}
					got = append(got, b.Entry...)
					next = b.link("next")
					if next != "" && !strings.Contains(next, fmt.Sprintf("_count=%d", count)) {
						t.Errorf("next link %q lost _count", next)
					}
					if next != "" && !strings.HasPrefix(next, s.base+lv.path+"?") {
						t.Errorf("next link %q is not on %s", next, s.base+lv.path)
					}
					if pages < 4 {
						lv.write() // the history grows between pages
					}
				}
				if refs := entryRefs(s.base, got); !reflect.DeepEqual(refs, want) {
					t.Errorf("paged listing differs from the one-page listing:\n got %q\nwant %q", refs, want)
				}
				checkHistoryEntries(t, s, got)
			})
		}
	}

	// _count larger than the server's cap still answers.
	if b, _ := getHistory(t, s.base+"/_history?_count=100000"); len(b.Entry) == 0 {
		t.Errorf("_count=100000: no entries")
	}
}

// writeSpaced writes versions at least gap apart (meta.lastUpdated has
// millisecond precision) and returns each one's lastUpdated.
func writeSpaced(t *testing.T, s *server, typ, id string, body []byte, versions int, gap time.Duration) []time.Time {
	t.Helper()
	var ts []time.Time
	for v := 0; v < versions; v++ {
		if v > 0 {
			time.Sleep(gap)
		}
		r := put(t, s, typ, id, withMembers(t, body, "language", fmt.Sprintf("x-%d", v)))
		ts = append(ts, instantOf(t, r))
	}
	return ts
}

// TestHistorySince: _since keeps the versions written at or after it.
func TestHistorySince(t *testing.T) {
	s := startServer(t, app.Config{})
	pat := loadFixture(t, "Patient")
	const gap = 15 * time.Millisecond
	ts := writeSpaced(t, s, "Patient", "s1", pat, 2, gap)
	time.Sleep(gap)
	put(t, s, "Observation", "o1", loadFixture(t, "Observation"))
	time.Sleep(gap)
	ts = append(ts, writeSpaced(t, s, "Patient", "s1", pat, 1, gap)...) // version 3

	since := url.QueryEscape(fhirInstant(ts[1]))
	// The same instant written in another zone.
	sinceZoned := url.QueryEscape(ts[1].In(time.FixedZone("", 14*3600)).Format("2006-01-02T15:04:05.000-07:00"))
	cases := []struct {
		name, path string
		want       []string
	}{
		{"instance", "/Patient/s1/_history?_since=" + since, []string{"Patient/s1 PUT 3", "Patient/s1 PUT 2"}},
		{"instance, zone +14:00", "/Patient/s1/_history?_since=" + sinceZoned, []string{"Patient/s1 PUT 3", "Patient/s1 PUT 2"}},
		{"type", "/Patient/_history?_since=" + since, []string{"Patient/s1 PUT 3", "Patient/s1 PUT 2"}},
		{"system", "/_history?_since=" + since, []string{"Patient/s1 PUT 3", "Observation/o1 PUT 1", "Patient/s1 PUT 2"}},
		{"system, 1 ms later", "/_history?_since=" + url.QueryEscape(fhirInstant(ts[1].Add(time.Millisecond))), []string{"Patient/s1 PUT 3", "Observation/o1 PUT 1"}},
		{"system, paged", "/_history?_count=1&_since=" + since, []string{"Patient/s1 PUT 3", "Observation/o1 PUT 1", "Patient/s1 PUT 2"}},
		{"long ago", "/_history?_since=2000", []string{"Patient/s1 PUT 3", "Observation/o1 PUT 1", "Patient/s1 PUT 2", "Patient/s1 PUT 1"}},
		{"future", "/_history?_since=2999-01-01", nil},
		{"instance future", "/Patient/s1/_history?_since=2999-01-01T00:00:00Z", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := entryRefs(s.base, historyEntries(t, s.base+c.path))
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("GET %s:\n got %q\nwant %q", c.path, got, c.want)
			}
		})
	}
}

// TestHistoryAt: _at keeps the versions that were current at that time.
func TestHistoryAt(t *testing.T) {
	s := startServer(t, app.Config{})
	pat := loadFixture(t, "Patient")
	const gap = 15 * time.Millisecond
	put(t, s, "Patient", "at-c", pat) // current throughout
	time.Sleep(gap)
	ta := writeSpaced(t, s, "Patient", "at-a", pat, 3, gap)
	time.Sleep(gap)
	r := do(t, "DELETE", s.base+"/Patient/at-a", nil)
	if r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	time.Sleep(gap)
	put(t, s, "Patient", "at-b", pat) // created after everything else
	afterAll := time.Now().UTC().Add(time.Second)

	at := func(ts time.Time) string { return url.QueryEscape(fhirInstant(ts)) }
	mid := ta[1].Add(gap / 3) // while version 2 of at-a was current
	cases := []struct {
		name, path string
		want       []string
	}{
		{"instance, version 2 current", "/Patient/at-a/_history?_at=" + at(mid), []string{"Patient/at-a PUT 2"}},
		{"instance, the instant of version 2", "/Patient/at-a/_history?_at=" + at(ta[1]), []string{"Patient/at-a PUT 2"}},
		{"instance, the last millisecond of version 1", "/Patient/at-a/_history?_at=" + at(ta[1].Add(-time.Millisecond)), []string{"Patient/at-a PUT 1"}},
		{"type, version 2 current", "/Patient/_history?_at=" + at(mid), []string{"Patient/at-a PUT 2", "Patient/at-c PUT 1"}},
		{"system, version 2 current", "/_history?_at=" + at(mid), []string{"Patient/at-a PUT 2", "Patient/at-c PUT 1"}},
		{"instance, after the deletion", "/Patient/at-a/_history?_at=" + at(afterAll), []string{"Patient/at-a DELETE 4"}},
		{"type, after everything", "/Patient/_history?_at=" + at(afterAll), []string{"Patient/at-b PUT 1", "Patient/at-a DELETE 4", "Patient/at-c PUT 1"}},
		{"type, before anything", "/Patient/_history?_at=2000-01-01T00:00:00Z", nil},
		{"instance, the whole year", "/Patient/at-a/_history?_at=" + ta[0].Format("2006"), []string{"Patient/at-a DELETE 4", "Patient/at-a PUT 3", "Patient/at-a PUT 2", "Patient/at-a PUT 1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := entryRefs(s.base, historyEntries(t, s.base+c.path))
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("GET %s:\n got %q\nwant %q", c.path, got, c.want)
			}
		})
	}
}

// TestHistoryBadParameters: unparsable _count, _since, _at are 400.
func TestHistoryBadParameters(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "bp", loadFixture(t, "Patient"))
	for _, level := range []string{"/_history", "/Patient/_history", "/Patient/bp/_history"} {
		for _, q := range []string{
			"_count=0", "_count=-1", "_count=abc", "_count=1.5", "_count=",
			"_since=bad", "_since=2023-02-30", "_since=2024-13-01", "_since=2024-01-01T25:00:00Z", "_since=",
			"_at=bad", "_at=2023-02-30", "_at=",
			"_cursor=abc", "_cursor=0", "_cursor=5.", "_cursor=.5", "_cursor=5.0", "_cursor=0.5", "_cursor=5.x", "_cursor=5.6.7",
		} {
			r := do(t, "GET", s.base+level+"?"+q, nil)
			checkOutcome(t, "GET "+level+"?"+q, r, http.StatusBadRequest, "value", "")
		}
	}
}

// TestHistoryMadeUpCursor: a cursor whose snapshot no listing had (past
// the change log's end, or at 1) pages as well: the listing answers as of
// it, never with a 500.
func TestHistoryMadeUpCursor(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, id := range []string{"mc1", "mc2", "mc3"} {
		put(t, s, "Patient", id, loadFixture(t, "Patient"))
	}
	for _, level := range []string{"/_history", "/Patient/_history", "/Patient/mc2/_history"} {
		for _, cursor := range []string{"2.999999", "2.1", "99.1", "1.2"} {
			u := s.base + level + "?_at=" + url.QueryEscape(fhirInstant(time.Now().Add(time.Hour))) + "&_cursor=" + cursor
			getHistory(t, u)
		}
	}
}

// TestHistoryNamesTheInteractionOfBundleEntries: a transaction's PUT that
// creates a resource shows in history as PUT, its POST as POST, as for the
// same interactions made alone.
func TestHistoryNamesTheInteractionOfBundleEntries(t *testing.T) {
	s := startServer(t, app.Config{})
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"resource":{"resourceType":"Patient","id":"tx-put"},"request":{"method":"PUT","url":"Patient/tx-put"}},
	 {"fullUrl":"urn:uuid:0b1e2f3a-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}}]}`
	r := do(t, http.MethodPost, s.base, []byte(tx), "Content-Type", "application/fhir+json")
	if r.status != http.StatusOK {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	var resp struct {
		Entry []struct{ Response struct{ Location string } }
	}
	if err := json.Unmarshal(r.body, &resp); err != nil || len(resp.Entry) != 2 {
		t.Fatalf("transaction response: %v %s", err, r.body)
	}
	// Location: [base/]Patient/id/_history/1
	loc := strings.Split(strings.TrimPrefix(resp.Entry[1].Response.Location, s.base+"/"), "/")
	if len(loc) < 2 || loc[0] != "Patient" {
		t.Fatalf("POST entry's location %q", resp.Entry[1].Response.Location)
	}
	posted := loc[1]
	got := entryRefs(s.base, historyEntries(t, s.base+"/Patient/_history"))
	slices.Sort(got)
	want := []string{"Patient/" + posted + " POST 1", "Patient/tx-put PUT 1"}
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("history: got %q, want %q", got, want)
	}
}
