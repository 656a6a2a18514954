package conformance_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
)

// pagedBundle is one page of a searchset or history Bundle.
type pagedBundle struct {
	Total *int
	Link  []struct{ Relation, URL string }
	Entry []struct {
		Resource map[string]any
		Search   struct{ Mode string }
	}
}

func (b *pagedBundle) rel(r string) string {
	for _, l := range b.Link {
		if l.Relation == r {
			return l.URL
		}
	}
	return ""
}

func getPage(t *testing.T, u string) *pagedBundle {
	t.Helper()
	r := do(t, http.MethodGet, u, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, r.status, r.body)
	}
	var b pagedBundle
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	return &b
}

// matchKeys lists the Type/id of the page's entries of mode.
func (b *pagedBundle) keys(mode string) []string {
	var out []string
	for _, e := range b.Entry {
		if e.Search.Mode == mode {
			out = append(out, str(e.Resource["resourceType"])+"/"+str(e.Resource["id"]))
		}
	}
	return out
}

// walk follows next from first to the end, returning the matches of every
// page after the first and the pages seen.
func walk(t *testing.T, next string) (keys []string, pages []*pagedBundle) {
	t.Helper()
	for i := 0; next != ""; i++ {
		if i > 200 {
			t.Fatalf("next links loop")
		}
		b := getPage(t, next)
		pages = append(pages, b)
		keys = append(keys, b.keys("match")...)
		next = b.rel("next")
	}
	return keys, pages
}

func countOf(keys []string) map[string]int {
	m := map[string]int{}
	for _, k := range keys {
		m[k]++
	}
	return m
}

func putJSON(t *testing.T, s *server, path, body string) {
	t.Helper()
	if r := do(t, http.MethodPut, s.base+"/"+path, []byte(body)); r.status >= 300 {
		t.Fatalf("PUT %s: %d %s", path, r.status, r.body)
	}
}

func del(t *testing.T, s *server, path string) {
	t.Helper()
	if r := do(t, http.MethodDelete, s.base+"/"+path, nil); r.status >= 300 {
		t.Fatalf("DELETE %s: %d %s", path, r.status, r.body)
	}
}

func patientJSON(id, family, birth string) string {
	return fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":%q}],"birthDate":%q,"gender":"female"}`, id, family, birth)
}

func obsJSON(id, code, subject string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://x","code":%q}]},"subject":{"reference":%q}}`, id, code, subject)
}

// TestPagingSnapshotUnderWrites: a frozen search serves each match
// of the first page's result exactly once (those deleted meanwhile left
// out), and none created after it, whatever is written between pages.
func TestPagingSnapshotUnderWrites(t *testing.T) {
	s := startServer(t, app.Config{})
	var want []string
	for i := range 8 {
		id := fmt.Sprintf("sn%d", i)
		putJSON(t, s, "Patient/"+id, patientJSON(id, "Snapfam", "1970-01-01"))
		want = append(want, "Patient/"+id)
	}
	putJSON(t, s, "Patient/other", patientJSON("other", "Else", "1970-01-01"))
	for _, q := range []string{"Patient?family=snapfam&_count=3", "Patient?family=snapfam&_sort=birthdate&_count=3", "Patient?family=snapfam&_sort=-birthdate,gender&_count=3"} {
		t.Run(q, func(t *testing.T) {
			all := getPage(t, s.base+"/Patient?family=snapfam&_count=1000")
			want := all.keys("match")
			p1 := getPage(t, s.base+"/"+q)
			got := p1.keys("match")
			if p1.rel("next") == "" || !strings.Contains(p1.rel("next"), "_cursor=") {
				t.Fatalf("no snapshot next link: %v", p1.Link)
			}
			// Writes between pages.
			putJSON(t, s, "Patient/snnew"+fmt.Sprint(len(q)), patientJSON("snnew"+fmt.Sprint(len(q)), "Snapfam", "1960-01-01"))
			putJSON(t, s, "Patient/sn7", patientJSON("sn7", "Snapfam", "1950-01-01")) // still matches, sorts first now
			putJSON(t, s, "Patient/other", patientJSON("other", "Else", "1940-01-01"))
			rest, _ := walk(t, p1.rel("next"))
			got = append(got, rest...)
			c := countOf(got)
			for _, k := range want {
				if c[k] != 1 {
					t.Errorf("%s served %d times: %v", k, c[k], got)
				}
			}
			if len(got) != len(want) {
				t.Errorf("served %v, want each of %v once", got, want)
			}
		})
	}
	// A deletion between pages leaves that match out, and only it.
	want = getPage(t, s.base+"/Patient?family=snapfam&_count=1000").keys("match")
	p1 := getPage(t, s.base+"/Patient?family=snapfam&_count=3")
	first := p1.keys("match")
	del(t, s, "Patient/sn5")
	rest, _ := walk(t, p1.rel("next"))
	c := countOf(append(first, rest...))
	for _, k := range want {
		w := 1
		if k == "Patient/sn5" && !slices.Contains(first, k) {
			w = 0 // deleted before its page was served
		}
		if c[k] != w {
			t.Errorf("%s served %d times, want %d", k, c[k], w)
		}
	}
}

// TestPagingKeysetUnderWrites: a keyset-paged search (one token
// value) serves each match of the first page's time exactly once, with
// writes between pages; one created after the cursor shows up once.
func TestPagingKeysetUnderWrites(t *testing.T) {
	s := startServer(t, app.Config{})
	putJSON(t, s, "Patient/kp", patientJSON("kp", "Key", "1970-01-01"))
	var want []string
	for i := range 8 {
		id := fmt.Sprintf("k%d", i)
		putJSON(t, s, "Observation/"+id, obsJSON(id, "c1", "Patient/kp"))
		want = append(want, "Observation/"+id)
	}
	putJSON(t, s, "Observation/kx", obsJSON("kx", "c2", "Patient/kp"))
	p1 := getPage(t, s.base+"/Observation?code=http://x|c1&_count=3&_include=Observation:subject")
	next := p1.rel("next")
	if !strings.Contains(next, "_cursor=k") {
		t.Fatalf("not keyset paged: %v", p1.Link)
	}
	if inc := p1.keys("include"); !slices.Equal(inc, []string{"Patient/kp"}) {
		t.Errorf("page 1 includes %v", inc)
	}
	got := p1.keys("match")
	putJSON(t, s, "Observation/k00", obsJSON("k00", "c1", "Patient/kp")) // before the cursor
	putJSON(t, s, "Observation/k9", obsJSON("k9", "c1", "Patient/kp"))   // after it
	putJSON(t, s, "Observation/k6", obsJSON("k6", "c1", "Patient/kp"))   // updated, still matching
	putJSON(t, s, "Observation/kx", obsJSON("kx", "c3", "Patient/kp"))   // non-matching
	rest, pages := walk(t, next)
	got = append(got, rest...)
	c := countOf(got)
	for _, k := range append(want, "Observation/k9") {
		if c[k] != 1 {
			t.Errorf("%s served %d times: %v", k, c[k], got)
		}
	}
	if c["Observation/k00"] != 0 || c["Observation/kx"] != 0 {
		t.Errorf("served %v", got)
	}
	for i, p := range pages {
		if inc := p.keys("include"); !slices.Equal(inc, []string{"Patient/kp"}) {
			t.Errorf("page %d includes %v", i+2, inc)
		}
	}
}

// TestPagingSystemType: a system-level _type search pages a frozen
// list across types.
func TestPagingSystemType(t *testing.T) {
	s := startServer(t, app.Config{})
	var want []string
	for i := range 4 {
		id := fmt.Sprintf("sy%d", i)
		putJSON(t, s, "Patient/"+id, patientJSON(id, "Sys", "1970-01-01"))
		putJSON(t, s, "Observation/o"+id, obsJSON("o"+id, "c1", "Patient/"+id))
		want = append(want, "Patient/"+id, "Observation/o"+id)
	}
	p1 := getPage(t, s.base+"?_type=Patient,Observation&_count=3&_lastUpdated=gt2000")
	got := p1.keys("match")
	putJSON(t, s, "Patient/synew", patientJSON("synew", "Sys", "1970-01-01"))
	putJSON(t, s, "Patient/sy0", patientJSON("sy0", "Sys2", "1970-01-01"))
	rest, _ := walk(t, p1.rel("next"))
	got = append(got, rest...)
	c := countOf(got)
	for _, k := range want {
		if c[k] != 1 {
			t.Errorf("%s served %d times: %v", k, c[k], got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("served %v", got)
	}
}

// TestPagingLinksKeepParameters: next, previous, first and self keep
// _count, _format, _elements and _summary, in both paging modes; a _count
// changed on a later page is honoured.
func TestPagingLinksKeepParameters(t *testing.T) {
	s := startServer(t, app.Config{})
	putJSON(t, s, "Patient/lp", patientJSON("lp", "Link", "1970-01-01"))
	for i := range 10 {
		id := fmt.Sprintf("lp%d", i)
		putJSON(t, s, "Patient/"+id, patientJSON(id, "Linkfam", "1970-01-01"))
		putJSON(t, s, "Observation/"+id, obsJSON(id, "c1", "Patient/lp"))
	}
	for _, q := range []string{
		"Patient?family=linkfam&_count=3&_format=json&_elements=name",
		"Patient?family=linkfam&_count=3&_format=json&_summary=true",
		"Observation?code=http://x|c1&_count=3&_format=json&_elements=status",
		"Observation?code=http://x|c1&_count=3&_format=json&_summary=data",
	} {
		t.Run(q, func(t *testing.T) {
			u, _ := url.Parse(s.base + "/" + q)
			wantQ := u.Query()
			next := u.String()
			for i := 0; next != ""; i++ {
				b := getPage(t, next)
				for _, l := range b.Link {
					lu, err := url.Parse(l.URL)
					if err != nil {
						t.Fatal(err)
					}
					for k := range wantQ {
						if lu.Query().Get(k) != wantQ.Get(k) {
							t.Errorf("page %d %s link %s: %s=%q, want %q", i, l.Relation, l.URL, k, lu.Query().Get(k), wantQ.Get(k))
						}
					}
				}
				for _, e := range b.Entry {
					if e.Search.Mode == "match" && wantQ.Has("_elements") && !hasSubsetted(e.Resource) {
						t.Errorf("page %d: %v not subsetted", i, e.Resource)
					}
				}
				next = b.rel("next")
			}
			// _count changed on page 2: pages of the new size, every match once.
			p1 := getPage(t, u.String())
			n2, _ := url.Parse(p1.rel("next"))
			v := n2.Query()
			v.Set("_count", "4")
			n2.RawQuery = v.Encode()
			got := p1.keys("match")
			rest, pages := walk(t, n2.String())
			got = append(got, rest...)
			if len(pages[0].keys("match")) != 4 {
				t.Errorf("page 2 with _count=4 has %d matches", len(pages[0].keys("match")))
			}
			c := countOf(got)
			if len(c) != 10 || len(got) != 10 {
				t.Errorf("with _count changed: %v", got)
			}
		})
	}
}

func hasSubsetted(r map[string]any) bool {
	for _, tg := range list(obj(r["meta"])["tag"]) {
		if str(obj(tg)["code"]) == "SUBSETTED" {
			return true
		}
	}
	return false
}

// TestPagingEverything: $everything pages a frozen result, each
// resource once, under writes; the links keep _count and _format, and a
// _count changed on a later page is honoured as search honours it.
func TestPagingEverything(t *testing.T) {
	s := startServer(t, app.Config{})
	putJSON(t, s, "Patient/ev", patientJSON("ev", "Every", "1970-01-01"))
	want := []string{"Patient/ev"}
	for i := range 9 {
		id := fmt.Sprintf("ev%d", i)
		putJSON(t, s, "Observation/"+id, obsJSON(id, "c1", "Patient/ev"))
		want = append(want, "Observation/"+id)
	}
	first := s.base + "/Patient/ev/$everything?_count=3&_format=json"
	p1 := getPage(t, first)
	got := p1.keys("match")
	putJSON(t, s, "Observation/evnew", obsJSON("evnew", "c1", "Patient/ev"))
	putJSON(t, s, "Observation/ev8", obsJSON("ev8", "c2", "Patient/ev"))
	rest, pages := walk(t, p1.rel("next"))
	got = append(got, rest...)
	c := countOf(got)
	for _, k := range want {
		if c[k] != 1 {
			t.Errorf("%s served %d times: %v", k, c[k], got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("served %v", got)
	}
	for i, p := range append([]*pagedBundle{p1}, pages...) {
		for _, l := range p.Link {
			if !strings.Contains(l.URL, "_count=3") || !strings.Contains(l.URL, "_format=json") {
				t.Errorf("page %d %s link %s lost _count or _format", i, l.Relation, l.URL)
			}
		}
	}
	// _count changed on page 2.
	want = getPage(t, s.base+"/Patient/ev/$everything?_count=1000").keys("match")
	p1 = getPage(t, first)
	n2 := strings.Replace(p1.rel("next"), "_count=3", "_count=4", 1)
	r := do(t, http.MethodGet, n2, nil)
	if r.status != http.StatusOK {
		t.Fatalf("next with _count=4: %d %s", r.status, r.body)
	}
	got = p1.keys("match")
	rest, _ = walk(t, n2)
	got = append(got, rest...)
	if c := countOf(got); len(c) != len(got) || len(got) != len(want) {
		t.Errorf("with _count changed: %v", got)
	}
}

// TestPagingHistoryUnderWrites: history pages, with _since and a
// _count changed midway, serve each version of the first page's time once,
// while versions are written.
func TestPagingHistoryUnderWrites(t *testing.T) {
	s := startServer(t, app.Config{})
	for i := range 3 {
		for v := range 3 {
			putJSON(t, s, fmt.Sprintf("Patient/h%d", i), patientJSON(fmt.Sprintf("h%d", i), fmt.Sprintf("V%d", v), "1970-01-01"))
		}
	}
	for _, path := range []string{"/Patient/h1/_history", "/Patient/_history", "/_history"} {
		t.Run(path, func(t *testing.T) {
			u := s.base + path + "?_since=2000-01-01&_count=2&_format=json"
			want := entryKeys(historyEntries(t, s.base+path+"?_since=2000-01-01&_count=1000"))
			b, _ := getHistory(t, u)
			got := entryKeys(b.Entry)
			next := strings.Replace(b.link("next"), "_count=2", "_count=3", 1)
			for i := 0; next != ""; i++ {
				putJSON(t, s, "Patient/h1", patientJSON("h1", fmt.Sprint("W", i), "1970-01-01"))
				del(t, s, "Patient/h2")
				putJSON(t, s, "Patient/h2", patientJSON("h2", "Back", "1970-01-01"))
				b, _ = getHistory(t, next)
				got = append(got, entryKeys(b.Entry)...)
				next = b.link("next")
				if next != "" && (!strings.Contains(next, "_count=3") || !strings.Contains(next, "_since=") || !strings.Contains(next, "_format=json")) {
					t.Errorf("next %s lost a parameter", next)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestPagingKeysetCursorEntryDeleted: the entry a keyset cursor names
// deleted before next is followed: the walk goes on after it.
func TestPagingKeysetCursorEntryDeleted(t *testing.T) {
	s := startServer(t, app.Config{})
	putJSON(t, s, "Patient/kd", patientJSON("kd", "Key", "1970-01-01"))
	for i := range 6 {
		id := fmt.Sprintf("kd%d", i)
		putJSON(t, s, "Observation/"+id, obsJSON(id, "c1", "Patient/kd"))
	}
	p1 := getPage(t, s.base+"/Observation?code=http://x|c1&_count=3")
	got := p1.keys("match")
	del(t, s, got[len(got)-1])
	rest, _ := walk(t, p1.rel("next"))
	got = append(got, rest...)
	if c := countOf(got); len(got) != 6 || len(c) != 6 {
		t.Errorf("served %v", got)
	}
}

// TestPagingSnapshotCursorBoundToQuery: a snapshot cursor walks the
// search that made it; put on another search of the same type it answers
// 410, as a keyset cursor on another value does, rather than serving the
// first search's matches under the second one's self link. Paging
// parameters (_count, _format, _elements, _summary, _include) may change.
func TestPagingSnapshotCursorBoundToQuery(t *testing.T) {
	s := startServer(t, app.Config{})
	for i := range 4 {
		id := fmt.Sprintf("ba%d", i)
		putJSON(t, s, "Patient/"+id, patientJSON(id, "Alpha", "1970-01-01"))
		id = fmt.Sprintf("bb%d", i)
		putJSON(t, s, "Patient/"+id, patientJSON(id, "Beta", "1970-01-01"))
	}
	p1 := getPage(t, s.base+"/Patient?family=alpha&_count=2")
	next, _ := url.Parse(p1.rel("next"))
	v := next.Query()
	v.Set("family", "beta")
	next.RawQuery = v.Encode()
	if r := do(t, http.MethodGet, next.String(), nil); r.status != http.StatusGone {
		t.Errorf("a cursor of family=alpha on family=beta: %d %s", r.status, r.body)
	}
	next, _ = url.Parse(p1.rel("next"))
	v = next.Query()
	v.Set("_count", "5")
	v.Set("_elements", "name")
	v.Set("_format", "json")
	v.Set("_revinclude", "Observation:subject")
	next.RawQuery = v.Encode()
	if r := do(t, http.MethodGet, next.String(), nil); r.status != http.StatusOK {
		t.Errorf("next with paging parameters changed: %d %s", r.status, r.body)
	}
}

// TestPagingPreviousAndFirst: walking a snapshot back with previous
// and from first again gives the pages walked forward, under writes.
func TestPagingPreviousAndFirst(t *testing.T) {
	s := startServer(t, app.Config{})
	for i := range 7 {
		id := fmt.Sprintf("pf%d", i)
		putJSON(t, s, "Patient/"+id, patientJSON(id, "Prevfam", "1970-01-01"))
	}
	p := getPage(t, s.base+"/Patient?family=prevfam&_count=3&_elements=name")
	fwd := [][]string{p.keys("match")}
	for p.rel("next") != "" {
		putJSON(t, s, "Patient/pfx"+fmt.Sprint(len(fwd)), patientJSON("pfx"+fmt.Sprint(len(fwd)), "Prevfam", "1970-01-01"))
		p = getPage(t, p.rel("next"))
		fwd = append(fwd, p.keys("match"))
	}
	for i := len(fwd) - 1; i >= 0; i-- {
		if got := p.keys("match"); !slices.Equal(got, fwd[i]) {
			t.Errorf("page %d walked back: %v, forward %v", i, got, fwd[i])
		}
		if i > 0 {
			if p.rel("previous") == "" {
				t.Fatalf("page %d has no previous link", i)
			}
			p = getPage(t, p.rel("previous"))
		} else if p.rel("previous") != "" {
			t.Errorf("first page links previous %s", p.rel("previous"))
		}
	}
	if got := getPage(t, p.rel("first")).keys("match"); !slices.Equal(got, fwd[0]) {
		t.Errorf("first: %v, want %v", got, fwd[0])
	}
}

// TestPagingHistoryAt: _at history pages under writes. A listing answers
// as of its first page: a resource updated between two pages stays in an
// _at that reaches now, with the version that was current then.
func TestPagingHistoryAt(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, tc := range []struct {
		name string
		at   func() string // after the subtest's Patients are written
	}{
		{"past", func() string { return fhirInstant(time.Now()) }},
		{"reaching now", func() string { return fhirInstant(time.Now().Add(time.Hour)) }},
		{"the whole day", func() string { return time.Now().UTC().Format("2006-01-02") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := make([]string, 5)
			for i := range ids {
				ids[i] = fmt.Sprintf("ha-%s-%d", strings.ReplaceAll(tc.name, " ", "-"), i)
				putJSON(t, s, "Patient/"+ids[i], patientJSON(ids[i], "A", "1970-01-01"))
			}
			time.Sleep(5 * time.Millisecond)
			at := url.QueryEscape(tc.at())
			time.Sleep(5 * time.Millisecond)
			want := entryRefs(s.base, historyEntries(t, s.base+"/Patient/_history?_at="+at+"&_count=1000"))
			b, _ := getHistory(t, s.base+"/Patient/_history?_at="+at+"&_count=2")
			got := entryRefs(s.base, b.Entry)
			for next := b.link("next"); next != ""; next = b.link("next") {
				// The first two written are on later pages: newest first.
				putJSON(t, s, "Patient/"+ids[1], patientJSON(ids[1], "B", "1970-01-01"))
				putJSON(t, s, "Patient/"+ids[0], patientJSON(ids[0], "B", "1970-01-01"))
				b, _ = getHistory(t, next)
				got = append(got, entryRefs(s.base, b.Entry)...)
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestPagingConcurrentWrites: both paging modes, and _revinclude per
// page, while a writer creates, updates and deletes matching resources.
func TestPagingConcurrentWrites(t *testing.T) {
	s := startServer(t, app.Config{})
	putJSON(t, s, "Patient/cw", patientJSON("cw", "Conc", "1970-01-01"))
	for i := range 40 {
		id := fmt.Sprintf("cw%02d", i)
		putJSON(t, s, "Observation/"+id, obsJSON(id, "c1", "Patient/cw"))
		putJSON(t, s, "Patient/"+id, patientJSON(id, "Concfam", "1970-01-01"))
		putJSON(t, s, "Encounter/e"+id, fmt.Sprintf(`{"resourceType":"Encounter","id":"e%s","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/%s"}}`, id, id))
	}
	for _, q := range []string{"Observation?code=http://x|c1&_count=7", "Patient?family=concfam&_count=7&_revinclude=Encounter:subject"} {
		t.Run(q, func(t *testing.T) {
			want := getPage(t, s.base+"/"+strings.Replace(q, "_count=7", "_count=1000", 1)).keys("match")
			typ := strings.SplitN(q, "?", 2)[0]
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("cwn%d", i)
					body := obsJSON(id, "c1", "Patient/cw")
					if typ == "Patient" {
						body = patientJSON(id, "Concfam", "1970-01-01")
					}
					send("PUT", s.base+"/"+typ+"/"+id, []byte(body))
					send("PUT", s.base+"/"+typ+"/cw10", []byte(strings.ReplaceAll(body, id, "cw10")))
				}
			}()
			p1 := getPage(t, s.base+"/"+q)
			got := p1.keys("match")
			rest, pages := walk(t, p1.rel("next"))
			close(stop)
			<-done
			got = append(got, rest...)
			c := countOf(got)
			for _, k := range want {
				if c[k] != 1 {
					t.Errorf("%s served %d times", k, c[k])
				}
			}
			for k, n := range c {
				if n != 1 {
					t.Errorf("%s served %d times", k, n)
				}
			}
			if typ == "Patient" {
				for i, p := range append([]*pagedBundle{p1}, pages...) {
					if inc, m := p.keys("include"), p.keys("match"); len(inc) < len(m)-1 {
						t.Errorf("page %d: %d matches, %d included", i, len(m), len(inc))
					}
				}
			}
		})
	}
}
