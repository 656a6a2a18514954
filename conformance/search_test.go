package conformance_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// loadSynthea starts a server and PUTs the Synthea Patients, Encounters,
// Organizations and Practitioners with their own ids (so references hold).
// It returns the resources by type, decoded, for computing answers
// independently of the server.
func loadSynthea(t *testing.T) (*server, map[string][]map[string]any) {
	t.Helper()
	if _, err := os.Stat(syntheaDir); err != nil {
		t.Skipf("skipping: %s is absent (the shared Synthea data sits beside the checkout)", syntheaDir)
	}
	s := startServer(t, app.Config{})
	byType := map[string][]map[string]any{}
	var raws [][]byte
	for _, typ := range []string{"Organization", "Practitioner", "Patient", "Encounter"} {
		f, err := os.Open(filepath.Join(syntheaDir, typ+".000.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			line := slices.Clone(sc.Bytes())
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			byType[typ] = append(byType[typ], m)
			raws = append(raws, line)
		}
		f.Close()
	}
	var wg sync.WaitGroup
	work := make(chan []byte)
	errs := make(chan string, len(raws))
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for raw := range work {
				var head struct{ ResourceType, ID string }
				_ = json.Unmarshal(raw, &head)
				r, err := send(http.MethodPut, s.base+"/"+head.ResourceType+"/"+head.ID, raw)
				if err != nil || r.status != http.StatusCreated {
					errs <- head.ResourceType + "/" + head.ID
				}
			}
		}()
	}
	for _, raw := range raws {
		work <- raw
	}
	close(work)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("loading %s failed", e)
	}
	return s, byType
}

// searchAll follows next links and returns the ids of every match, in the
// order served, and the Bundle total of the first page.
func searchAll(t *testing.T, s *server, path string, headers ...string) (ids []string, total int) {
	t.Helper()
	next := s.base + "/" + path
	total = -1
	for pages := 0; next != ""; pages++ {
		if pages > 500 {
			t.Fatalf("%s: more than 500 pages", path)
		}
		r := do(t, http.MethodGet, next, nil, headers...)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		var b struct {
			Total *int
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource map[string]any
				Search   struct{ Mode string }
			}
		}
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		if pages == 0 && b.Total != nil {
			total = *b.Total
		}
		for _, e := range b.Entry {
			if e.Search.Mode == "match" {
				ids = append(ids, e.Resource["id"].(string))
			}
		}
		rel := map[string]string{}
		for _, l := range b.Link {
			rel[l.Relation] = l.URL
		}
		// Every page names itself (with its cursor after the first) and
		// the first page; keyset cursors ("k...") go forward only.
		switch {
		case rel["self"] == "" || (pages > 0 && !strings.Contains(rel["self"], "_cursor=")):
			t.Errorf("%s: page %d self link %q", path, pages, rel["self"])
		case rel["next"] != "" && rel["first"] == "":
			t.Errorf("%s: page %d has next but no first link", path, pages)
		case strings.Contains(rel["next"], "_cursor=k") && rel["previous"] != "":
			t.Errorf("%s: a keyset page links a previous page", path)
		}
		next = rel["next"]
	}
	return ids, total
}

func idsWhere(rs []map[string]any, keep func(map[string]any) bool) []string {
	var out []string
	for _, r := range rs {
		if keep(r) {
			out = append(out, r["id"].(string))
		}
	}
	sort.Strings(out)
	return out
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return out
}

func str(v any) string { s, _ := v.(string); return s }

func list(v any) []any { l, _ := v.([]any); return l }

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// TestSearchSynthea checks searches against answers computed here, from
// the same files, without the server's code.
func TestSearchSynthea(t *testing.T) {
	s, data := loadSynthea(t)
	patients, encounters := data["Patient"], data["Encounter"]
	p0 := patients[0]
	family := str(obj(list(p0["name"])[0])["family"])
	ident := obj(list(p0["identifier"])[1])
	birthYear := str(p0["birthDate"])[:4]

	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"family prefix, any case", "Patient?family=" + url.QueryEscape(strings.ToLower(family[:3])), idsWhere(patients, func(p map[string]any) bool {
			for _, n := range list(p["name"]) {
				if strings.HasPrefix(strings.ToLower(str(obj(n)["family"])), strings.ToLower(family[:3])) {
					return true
				}
			}
			return false
		})},
		{"identifier system|value", "Patient?identifier=" + url.QueryEscape(str(ident["system"])+"|"+str(ident["value"])), []string{str(p0["id"])}},
		{"birthdate by year", "Patient?birthdate=" + birthYear, idsWhere(patients, func(p map[string]any) bool { return strings.HasPrefix(str(p["birthDate"]), birthYear) })},
		{"birthdate lt", "Patient?birthdate=lt1970-01-01", idsWhere(patients, func(p map[string]any) bool { return str(p["birthDate"]) < "1970-01-01" })},
		{"gender", "Patient?gender=female", idsWhere(patients, func(p map[string]any) bool { return str(p["gender"]) == "female" })},
		{"gender OR", "Patient?gender=female,male", idsWhere(patients, func(p map[string]any) bool { return str(p["gender"]) == "female" || str(p["gender"]) == "male" })},
		{"encounters of a patient", "Encounter?patient=" + str(p0["id"]), idsWhere(encounters, func(e map[string]any) bool {
			return str(obj(e["subject"])["reference"]) == "Patient/"+str(p0["id"])
		})},
		{"encounters of a patient since 2015", "Encounter?subject=Patient/" + str(p0["id"]) + "&date=ge2015-01-01", idsWhere(encounters, func(e map[string]any) bool {
			return str(obj(e["subject"])["reference"]) == "Patient/"+str(p0["id"]) && str(obj(e["period"])["end"]) >= "2015-01-01"
		})},
		{"encounter class token", "Encounter?class=AMB", idsWhere(encounters, func(e map[string]any) bool { return str(obj(e["class"])["code"]) == "AMB" })},
		{"chained", "Encounter?subject:Patient.family=" + url.QueryEscape(family), idsWhere(encounters, func(e map[string]any) bool {
			ref := strings.TrimPrefix(str(obj(e["subject"])["reference"]), "Patient/")
			for _, p := range patients {
				if str(p["id"]) == ref {
					for _, n := range list(p["name"]) {
						if strings.HasPrefix(strings.ToLower(str(obj(n)["family"])), strings.ToLower(family)) {
							return true
						}
					}
				}
			}
			return false
		})},
		{"_has", "Patient?_has:Encounter:patient:class=EMER", idsWhere(patients, func(p map[string]any) bool {
			for _, e := range encounters {
				if str(obj(e["class"])["code"]) == "EMER" && str(obj(e["subject"])["reference"]) == "Patient/"+str(p["id"]) {
					return true
				}
			}
			return false
		})},
		{"_id", "Patient?_id=" + str(p0["id"]), []string{str(p0["id"])}},
		{"nothing", "Patient?family=zzzzzzz", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total := searchAll(t, s, tt.query+sepFor(tt.query)+"_count=7")
			if !slices.Equal(sorted(got), tt.want) {
				t.Errorf("%s:\n got %v\nwant %v", tt.query, sorted(got), tt.want)
			}
			// Without _total, a keyset-paged search reports the total only
			// when its first page holds every match.
			if total != -1 && total != len(tt.want) || total == -1 && len(tt.want) <= 7 {
				t.Errorf("%s: total %d, want %d", tt.query, total, len(tt.want))
			}
			got, total = searchAll(t, s, tt.query+sepFor(tt.query)+"_count=7&_total=accurate")
			if !slices.Equal(sorted(got), tt.want) || total != len(tt.want) {
				t.Errorf("%s&_total=accurate: total %d, got %v\nwant %v", tt.query, total, sorted(got), tt.want)
			}
			if len(got) != len(sorted(dedupe(got))) {
				t.Errorf("%s: a match was served twice: %v", tt.query, got)
			}
		})
	}

	t.Run("sort by birthdate descending", func(t *testing.T) {
		got, _ := searchAll(t, s, "Patient?_sort=-birthdate&_count=5")
		bd := map[string]string{}
		for _, p := range patients {
			bd[str(p["id"])] = str(p["birthDate"])
		}
		if len(got) != len(patients) {
			t.Fatalf("got %d patients, want %d", len(got), len(patients))
		}
		for i := 1; i < len(got); i++ {
			if bd[got[i-1]] < bd[got[i]] {
				t.Errorf("not descending at %d: %s then %s", i, bd[got[i-1]], bd[got[i]])
			}
		}
	})

	t.Run("paging is stable under writes", func(t *testing.T) {
		first := do(t, http.MethodGet, s.base+"/Encounter?class=AMB&_count=50", nil)
		var b struct {
			Total int
			Link  []struct{ Relation, URL string }
		}
		_ = json.Unmarshal(first.body, &b)
		// A write between pages must not shift what the next pages serve.
		do(t, http.MethodDelete, s.base+"/Encounter/"+str(encounters[len(encounters)-1]["id"]), nil)
		ids, _ := searchAll(t, s, "Encounter?class=AMB&_count=50")
		if len(dedupe(ids)) != len(ids) {
			t.Errorf("duplicates across pages")
		}
	})

	t.Run("include and revinclude", func(t *testing.T) {
		r := do(t, http.MethodGet, s.base+"/Encounter?_id="+str(encounters[0]["id"])+"&_include=Encounter:subject&_include=Encounter:service-provider", nil)
		var b struct {
			Entry []struct {
				Resource map[string]any
				Search   struct{ Mode string }
			}
		}
		_ = json.Unmarshal(r.body, &b)
		modes := map[string]string{}
		for _, e := range b.Entry {
			modes[str(e.Resource["resourceType"])+"/"+str(e.Resource["id"])] = e.Search.Mode
		}
		if modes["Patient/"+strings.TrimPrefix(str(obj(encounters[0]["subject"])["reference"]), "Patient/")] != "include" {
			t.Errorf("the encounter's patient is not included: %v", modes)
		}
		r = do(t, http.MethodGet, s.base+"/Patient?_id="+str(p0["id"])+"&_revinclude=Encounter:patient&_count=1", nil)
		n := strings.Count(string(r.body), `"mode":"include"`)
		want := len(idsWhere(encounters, func(e map[string]any) bool { return str(obj(e["subject"])["reference"]) == "Patient/"+str(p0["id"]) }))
		if n != min(want, 1000) {
			t.Errorf("_revinclude: %d encounters included, want %d", n, want)
		}
	})
}

func sepFor(q string) string {
	if strings.Contains(q, "?") {
		return "&"
	}
	return "?"
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func TestSearchErrors(t *testing.T) {
	s := startServer(t, app.Config{})
	tests := []struct {
		name, query string
		headers     []string
		status      int
		wantInBody  string
	}{
		{"unknown param ignored", "Patient?foo=bar", nil, 200, "foo"},
		{"unknown param strict", "Patient?foo=bar", []string{"Prefer", "handling=strict"}, 400, "foo"},
		{"bad date", "Patient?birthdate=1980-13", nil, 400, "birthdate"},
		{"bad prefix", "Patient?birthdate=xx1980", nil, 400, "birthdate"},
		{"bad count", "Patient?_count=-1", nil, 400, "_count"},
		{"modifier not for type", "Patient?birthdate:exact=1980", nil, 400, "birthdate"},
		{"search on a type without parameters", "Basic?code=x", nil, 404, "search"},
		{"unknown type", "Nope?x=1", nil, 404, "Nope"},
		{"expired cursor", "Patient?_cursor=abc.20", nil, 410, "cursor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodGet, s.base+"/"+tt.query, nil, tt.headers...)
			if r.status != tt.status || !strings.Contains(string(r.body), tt.wantInBody) {
				t.Errorf("GET %s: %d %s, want %d mentioning %q", tt.query, r.status, r.body, tt.status, tt.wantInBody)
			}
		})
	}
	// POST _search with a form body answers like GET.
	do(t, http.MethodPut, s.base+"/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","gender":"other"}`))
	r := do(t, http.MethodPost, s.base+"/Patient/_search", []byte("gender=other"), "Content-Type", "application/x-www-form-urlencoded")
	if r.status != 200 || !strings.Contains(string(r.body), `"id":"p1"`) {
		t.Errorf("POST _search: %d %s", r.status, r.body)
	}
	// A POST _search with its parameters in the URL, no body and no
	// Content-Type, has nothing to refuse; a body that is not a form is 415.
	r = do(t, http.MethodPost, s.base+"/Patient/_search?gender=other", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"id":"p1"`) {
		t.Errorf("POST _search?gender=other without a body: %d %s", r.status, r.body)
	}
	if r = do(t, http.MethodPost, s.base+"/Patient/_search", []byte("gender=other")); r.status != 415 {
		t.Errorf("POST _search with a JSON body: %d, want 415", r.status)
	}
	// POST [base]/_search is the system-level search (R4 http.html#search).
	r = do(t, http.MethodPost, s.base+"/_search", []byte("_type=Patient&gender=other"), "Content-Type", "application/x-www-form-urlencoded")
	if r.status != 200 || !strings.Contains(string(r.body), `"id":"p1"`) {
		t.Errorf("POST [base]/_search: %d %s", r.status, r.body)
	}
	// An unencoded "+" in _format arrives as a space; it can only mean "+".
	for _, q := range []string{"_format=application/fhir+json", "_format=application/fhir+json;fhirVersion=4.0", "_format=application/fhir+xml"} {
		r = do(t, http.MethodGet, s.base+"/Patient?gender=other&"+q, nil)
		if want := 200; strings.Contains(q, "xml") {
			if r.status != 406 {
				t.Errorf("GET Patient?%s: %d, want 406", q, r.status)
			}
		} else if r.status != want || !strings.Contains(string(r.body), `"id":"p1"`) {
			t.Errorf("GET Patient?%s: %d %s", q, r.status, r.body)
		}
	}
	// _format and _pretty in a POST _search's form body count as in the
	// URL: the page links carry them, so a format the links would be
	// refused with is refused at once, and page 1 is shaped as page 2.
	do(t, http.MethodPut, s.base+"/Patient/p2", []byte(`{"resourceType":"Patient","id":"p2","gender":"other"}`))
	for path, form := range map[string]string{"/Patient/_search": "gender=other", "/_search": "_type=Patient&gender=other"} {
		r = do(t, http.MethodPost, s.base+path, []byte(form+"&_format=application/fhir%2Bxml"), "Content-Type", "application/x-www-form-urlencoded")
		if r.status != 406 {
			t.Errorf("POST %s with _format=application/fhir+xml in the body: %d %s, want 406", path, r.status, r.body)
		}
		r = do(t, http.MethodPost, s.base+path, []byte(form+"&_count=1&_pretty=true&_format=application/fhir+json"), "Content-Type", "application/x-www-form-urlencoded")
		if r.status != 200 || !bytes.HasPrefix(r.body, []byte("{\n")) {
			t.Errorf("POST %s with _pretty=true in the body: %d %.60s, want 200, indented", path, r.status, r.body)
		}
		var b struct {
			Link []struct{ Relation, URL string }
		}
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		next := false
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = true
				if r := do(t, http.MethodGet, l.URL, nil); r.status != 200 || !bytes.HasPrefix(r.body, []byte("{\n")) {
					t.Errorf("GET %s (next of POST %s): %d %.60s, want 200, indented", l.URL, path, r.status, r.body)
				}
			}
		}
		if !next {
			t.Errorf("POST %s with _count=1: no next link in %s", path, r.body)
		}
	}
}

// TestSearchCodeElementSystem: a code element (Patient.gender,
// Observation.status) means the codes of the one system its binding
// names, so system|code finds it as code alone does.
func TestSearchCodeElementSystem(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/g1", []byte(`{"resourceType":"Patient","id":"g1","gender":"female","address":[{"use":"home","city":"Athens"}],"name":[{"family":"Οδυσσεύς"}]}`))
	do(t, http.MethodPut, s.base+"/Observation/o1", []byte(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/g1"}}`))
	tests := []struct {
		query string
		hits  int
	}{
		{"Patient?gender=female", 1},
		{"Patient?gender=http://hl7.org/fhir/administrative-gender%7Cfemale", 1},
		{"Patient?gender=http://hl7.org/fhir/administrative-gender%7C", 1},
		{"Patient?gender=http://example.org/other%7Cfemale", 0},
		{"Patient?gender=%7Cfemale", 0}, // the code has a system: the binding's
		{"Patient?gender:not=http://hl7.org/fhir/administrative-gender%7Cmale", 1},
		{"Patient?address-use=http://hl7.org/fhir/address-use%7Chome", 1},
		{"Observation?status=http://hl7.org/fhir/observation-status%7Cfinal", 1},
		{"Observation?subject:Patient.gender=http://hl7.org/fhir/administrative-gender%7Cfemale", 1},
		// Greek final sigma: ς and σ are one letter to search.
		{"Patient?family=%CE%9F%CE%94%CE%A5%CE%A3%CE%A3%CE%95%CE%A5%CE%A3", 1}, // ΟΔΥΣΣΕΥΣ
		{"Patient?family:contains=%CE%B5%CF%85%CF%83", 1},                      // ευσ, the end
	}
	for _, tt := range tests {
		r := do(t, http.MethodGet, s.base+"/"+tt.query+"&_total=accurate", nil)
		var b struct{ Total int }
		if err := json.Unmarshal(r.body, &b); r.status != 200 || err != nil || b.Total != tt.hits {
			t.Errorf("GET %s: %d, total %d, want %d: %s", tt.query, r.status, b.Total, tt.hits, r.body)
		}
	}
}

func TestSearchSummaryAndElements(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/e1", []byte(`{"resourceType":"Patient","id":"e1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"gender":"female","birthDate":"1970-01-01","deceasedBoolean":false,"maritalStatus":{"text":"single"},"meta":{"tag":[{"code":"mine"}]}}`))
	tests := []struct {
		query         string
		want, notWant []string
		subsetted     bool
	}{
		{"_elements=gender", []string{`"gender"`, `"id":"e1"`, `"code":"mine"`}, []string{`"birthDate"`, `"text"`}, true},
		{"_summary=data", []string{`"gender"`, `"birthDate"`}, []string{`"div"`}, true},
		{"_summary=text", []string{`"div"`}, []string{`"gender"`}, true},
		{"_summary=true", []string{`"gender"`, `"birthDate"`, `"deceasedBoolean"`, `"code":"mine"`}, []string{`"div"`, `"maritalStatus"`}, true},
		{"_summary=false", []string{`"div"`, `"gender"`}, nil, false},
		{"_summary=count", []string{`"total":1`}, []string{`"entry"`}, false},
		// _count=0 is _summary=count (R4 search.html#count): the total, no
		// entries, no next link.
		{"_count=0", []string{`"total":1`}, []string{`"entry"`, `"next"`}, false},
	}
	for _, tt := range tests {
		r := do(t, http.MethodGet, s.base+"/Patient?_id=e1&"+tt.query, nil)
		body := string(r.body)
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: body lacks %s: %s", tt.query, w, body)
			}
		}
		for _, w := range tt.notWant {
			if strings.Contains(body, w) {
				t.Errorf("%s: body has %s: %s", tt.query, w, body)
			}
		}
		if strings.Contains(body, "SUBSETTED") != tt.subsetted {
			t.Errorf("%s: SUBSETTED tag %v, want %v", tt.query, !tt.subsetted, tt.subsetted)
		}
	}
	// The same for a search paged by keyset (one index value).
	for _, q := range []string{"gender=female&_count=0", "gender=female&_summary=count"} {
		r := do(t, http.MethodGet, s.base+"/Patient?"+q, nil)
		if body := string(r.body); r.status != http.StatusOK || !strings.Contains(body, `"total":1`) || strings.Contains(body, `"entry"`) || strings.Contains(body, `"next"`) {
			t.Errorf("Patient?%s: %d %s, want the total alone", q, r.status, body)
		}
	}
	// Read and vread take _summary too.
	for _, path := range []string{"/Patient/e1?_summary=true", "/Patient/e1/_history/1?_summary=true"} {
		r := do(t, http.MethodGet, s.base+path, nil)
		body := string(r.body)
		if r.status != http.StatusOK || !strings.Contains(body, `"gender"`) || strings.Contains(body, `"maritalStatus"`) || !strings.Contains(body, "SUBSETTED") || r.header.Get("ETag") != `W/"1"` {
			t.Errorf("GET %s: %d ETag %q %s, want the summary with SUBSETTED and the version's ETag", path, r.status, r.header.Get("ETag"), body)
		}
	}
	// A type whose summary elements the server does not know is refused,
	// not answered whole.
	do(t, http.MethodPut, s.base+"/Basic/b1", []byte(`{"resourceType":"Basic","id":"b1","code":{"text":"x"}}`))
	r := do(t, http.MethodGet, s.base+"/Basic/b1?_summary=true", nil)
	if body := string(r.body); r.status != http.StatusBadRequest || !strings.Contains(body, "OperationOutcome") || !strings.Contains(body, "_summary=true is not supported for Basic") {
		t.Errorf("GET Basic/b1?_summary=true: %d %s, want 400 naming Basic", r.status, body)
	}
}

func TestSearchSystemLevelAndAbsoluteReferences(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/s1", []byte(`{"resourceType":"Patient","id":"s1"}`))
	do(t, http.MethodPut, s.base+"/Organization/o1", []byte(`{"resourceType":"Organization","id":"o1","name":"O1"}`))
	do(t, http.MethodPut, s.base+"/Encounter/e1", []byte(`{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/s1"}}`))

	ids, total := searchAll(t, s, "?_type=Patient,Organization&_count=1")
	if total != 2 || len(ids) != 2 {
		t.Errorf("system search over Patient and Organization: %v (total %d), want s1 and o1", ids, total)
	}
	ids, _ = searchAll(t, s, "Encounter?subject="+url.QueryEscape(s.base+"/Patient/s1"))
	if !slices.Equal(ids, []string{"e1"}) {
		t.Errorf("search by an absolute reference to this server: %v, want [e1]", ids)
	}
	ids, _ = searchAll(t, s, "Encounter?subject="+url.QueryEscape("http://elsewhere.example/fhir/Patient/s1"))
	if len(ids) != 0 {
		t.Errorf("a reference to another server matched: %v", ids)
	}
	// Conditional criteria and a batch's searches read them alike.
	own := url.QueryEscape(s.base + "/Patient/s1")
	r := do(t, http.MethodPut, s.base+"/Encounter?subject="+own, []byte(`{"resourceType":"Encounter","status":"in-progress","class":{"code":"AMB"},"subject":{"reference":"Patient/s1"}}`))
	if r.status != http.StatusOK || r.header.Get("ETag") != `W/"2"` {
		t.Errorf("conditional update by an absolute reference to this server: %d %s, want Encounter/e1 updated", r.status, r.body)
	}
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Encounter?subject=` + own + `"}}]}`
	if r := do(t, http.MethodPost, s.base, []byte(batch)); r.status != http.StatusOK || !strings.Contains(string(r.body), `"id":"e1"`) {
		t.Errorf("batch search by an absolute reference to this server: %d %s", r.status, r.body)
	}
}

// TestSearchOwnBaseInNonReferenceValues: only reference values under the
// server's base are read as Type/id; a uri or a token system that starts
// with the base is matched as written.
func TestSearchOwnBaseInNonReferenceValues(t *testing.T) {
	s := startServer(t, app.Config{})
	profile := s.base + "/StructureDefinition/hie-patient"
	system := s.base + "/sid/mrn"
	r := do(t, http.MethodPut, s.base+"/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1",`+
		`"meta":{"profile":["`+profile+`"]},"identifier":[{"system":"`+system+`","value":"123"}]}`))
	if r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	for _, q := range []string{
		"_profile=" + url.QueryEscape(profile),
		"identifier=" + url.QueryEscape(system+"|123"),
	} {
		ids, _ := searchAll(t, s, "Patient?"+q)
		if !slices.Equal(ids, []string{"p1"}) {
			t.Errorf("Patient?%s: %v, want [p1]", q, ids)
		}
	}
}

// TestSearchStoredAbsoluteOwnReference: a stored reference may name a
// resource of this server by its absolute URL (as a client that copied a
// fullUrl writes it); search by any form, _include, _revinclude, _has and
// $everything read it as the relative reference it means (R4: a relative
// reference is relative to the service base).
func TestSearchStoredAbsoluteOwnReference(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/s1", []byte(`{"resourceType":"Patient","id":"s1"}`))
	r := do(t, http.MethodPut, s.base+"/Encounter/e1", []byte(`{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"`+s.base+`/Patient/s1"}}`))
	if r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	do(t, http.MethodPut, s.base+"/Encounter/e2", []byte(`{"resourceType":"Encounter","id":"e2","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/s1"}}`))
	for _, q := range []string{"subject=Patient/s1", "patient=s1", "subject=s1", "subject=" + url.QueryEscape(s.base+"/Patient/s1"), "subject=Patient/s1&_count=1"} {
		ids, _ := searchAll(t, s, "Encounter?"+q)
		if !slices.Equal(sorted(ids), []string{"e1", "e2"}) {
			t.Errorf("Encounter?%s: %v, want [e1 e2]", q, ids)
		}
	}
	for path, want := range map[string]string{
		"Patient?_id=s1&_revinclude=Encounter:subject":   "Encounter/e1",
		"Encounter?_id=e1&_include=Encounter:subject":    "Patient/s1",
		"Patient?_has:Encounter:subject:status=finished": "Patient/s1",
		"Patient/s1/$everything":                         "Encounter/e1",
	} {
		r := do(t, http.MethodGet, s.base+"/"+path, nil)
		if !slices.Contains(entryPaths(t, r), want) {
			t.Errorf("%s: %d %v, want %s among them", path, r.status, entryPaths(t, r), want)
		}
	}
}

// TestSearchSystemLevelSortSpansTypes: _sort orders the whole result of a
// system-level search, not each type's share of it (R4 search.html#sort:
// "_sort ... indicate[s] which order to return the results").
func TestSearchSystemLevelSortSpansTypes(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/b", []byte(`{"resourceType":"Patient","id":"b"}`))
	do(t, http.MethodPut, s.base+"/Patient/d", []byte(`{"resourceType":"Patient","id":"d"}`))
	do(t, http.MethodPut, s.base+"/Organization/a", []byte(`{"resourceType":"Organization","id":"a","name":"A"}`))
	do(t, http.MethodPut, s.base+"/Organization/c", []byte(`{"resourceType":"Organization","id":"c","name":"C"}`))
	for q, want := range map[string][]string{
		"?_type=Patient,Organization&_sort=_id":          {"a", "b", "c", "d"},
		"?_type=Patient,Organization&_sort=-_id":         {"d", "c", "b", "a"},
		"?_type=Patient,Organization&_sort=_id&_count=1": {"a", "b", "c", "d"},
	} {
		ids, _ := searchAll(t, s, q)
		if !slices.Equal(ids, want) {
			t.Errorf("GET %s: %v, want %v", q, ids, want)
		}
	}
}

// TestSearchSystemLevelCommonParameter: a parameter defined once for
// several types (individual-gender: Patient.gender | Practitioner.gender
// ...) is common to them for a _type search, though each type has its own
// expression of it: it filters and sorts each type by its own element.
func TestSearchSystemLevelCommonParameter(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","gender":"female","name":[{"family":"Zimmer"}]}`))
	do(t, http.MethodPut, s.base+"/Patient/p2", []byte(`{"resourceType":"Patient","id":"p2","gender":"male","name":[{"family":"Adams"}]}`))
	do(t, http.MethodPut, s.base+"/Practitioner/r1", []byte(`{"resourceType":"Practitioner","id":"r1","gender":"female","name":[{"family":"Meyer"}]}`))
	do(t, http.MethodPut, s.base+"/Practitioner/r2", []byte(`{"resourceType":"Practitioner","id":"r2","gender":"male","name":[{"family":"Zimmer"}]}`))
	for q, want := range map[string][]string{
		"?_type=Patient,Practitioner&gender=female&_sort=_id":                                           {"p1", "r1"},
		"?_type=Patient,Practitioner&gender=http://hl7.org/fhir/administrative-gender%7Cmale&_sort=_id": {"p2", "r2"},
		"?_type=Patient,Practitioner&family=zimmer&_sort=_id":                                           {"p1", "r2"},
		"?_type=Patient,Practitioner&_sort=family,_id":                                                  {"p2", "r1", "p1", "r2"},
		"?_type=Patient,Practitioner&gender:missing=true":                                               nil,
	} {
		r := do(t, http.MethodGet, s.base+q, nil)
		if r.status != 200 || strings.Contains(string(r.body), `"OperationOutcome"`) {
			t.Errorf("GET %s: %d %s", q, r.status, r.body)
			continue
		}
		if ids, _ := searchAll(t, s, q); !slices.Equal(ids, want) {
			t.Errorf("GET %s: %v, want %v", q, ids, want)
		}
	}
	// Not common: Patient's and Practitioner's active are two definitions.
	if r := do(t, http.MethodGet, s.base+"?_type=Patient,Practitioner&active=true", nil, "Prefer", "handling=strict"); r.status != 400 {
		t.Errorf("active across two definitions, strict: %d, want 400: %s", r.status, r.body)
	}
}

// TestSearchChainThenHas: a forward chain may end in a reverse chain
// (subject:Patient._has:Observation:patient:code=x: Encounters whose
// subject is a Patient that some Observation with code x points at). The
// parser accepts it; the answer must not be silently empty.
func TestSearchChainThenHas(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1"}`))
	do(t, http.MethodPut, s.base+"/Patient/p2", []byte(`{"resourceType":"Patient","id":"p2"}`))
	do(t, http.MethodPut, s.base+"/Encounter/e1", []byte(`{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"}}`))
	do(t, http.MethodPut, s.base+"/Encounter/e2", []byte(`{"resourceType":"Encounter","id":"e2","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/p2"}}`))
	do(t, http.MethodPut, s.base+"/Observation/o1", []byte(`{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"x1"}]},"subject":{"reference":"Patient/p1"}}`))
	// The _has alone works:
	if ids, _ := searchAll(t, s, "Patient?_has:Observation:patient:code=x1"); !slices.Equal(ids, []string{"p1"}) {
		t.Fatalf("Patient?_has:Observation:patient:code=x1: %v, want [p1]", ids)
	}
	// A nested _has: the Organizations of Patients with such an Observation.
	do(t, http.MethodPut, s.base+"/Organization/org1", []byte(`{"resourceType":"Organization","id":"org1","name":"Org 1"}`))
	do(t, http.MethodPut, s.base+"/Patient/p1", []byte(`{"resourceType":"Patient","id":"p1","managingOrganization":{"reference":"Organization/org1"}}`))
	if r := do(t, http.MethodGet, s.base+"/Organization?_has:Patient:organization:_has:Observation:patient:code=x1", nil); !slices.Equal(entryPaths(t, r), []string{"Organization/org1"}) {
		t.Errorf("nested _has: %d %v, want [Organization/org1]", r.status, entryPaths(t, r))
	}
	for _, q := range []string{
		"Encounter?subject:Patient._has:Observation:patient:code=x1",
		"Encounter?subject._has:Observation:patient:code=x1",
		"Encounter?patient._has:Observation:patient:code=x1",
	} {
		r := do(t, http.MethodGet, s.base+"/"+q, nil)
		if got := entryPaths(t, r); r.status == http.StatusOK && !slices.Equal(got, []string{"Encounter/e1"}) {
			t.Errorf("GET %s: %d %v, want [Encounter/e1] (or an error saying it is not supported)", q, r.status, got)
		}
	}
}

// TestSearchURIAbove: R4 search.html#uri: :above is "search for any value
// set above a given specific URL", and "the :above and :below modifiers only
// apply to URLs, and not URNS such as OIDs". A URL is above another when it
// is one of its parents (path segments), not any leading substring of it.
func TestSearchURIAbove(t *testing.T) {
	s := startServer(t, app.Config{})
	for id, meta := range map[string]string{
		"u1": `{"profile":["http://example.org/fhir/StructureDefinition/enc"],"source":"urn:oid:1.2.34"}`,
		"u2": `{"profile":["http://example.org/fhir/StructureDefinition/enc/v2"],"source":"urn:oid:1.2"}`,
	} {
		body := `{"resourceType":"Encounter","id":"` + id + `","meta":` + meta + `,"status":"finished","class":{"code":"AMB"}}`
		if r := do(t, http.MethodPut, s.base+"/Encounter/"+id, []byte(body)); r.status != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", id, r.status, r.body)
		}
	}
	for q, want := range map[string][]string{
		// .../enc/v2 and .../enc are both parents of .../enc/v2/x.
		"Encounter?_profile:above=" + url.QueryEscape("http://example.org/fhir/StructureDefinition/enc/v2/x"): {"u1", "u2"},
		// .../enc is not a parent of .../encounter.
		"Encounter?_profile:above=" + url.QueryEscape("http://example.org/fhir/StructureDefinition/encounter"): nil,
		// An OID is not a URL; and urn:oid:1.2 is not "above" urn:oid:1.23 anyway.
		"Encounter?_source:above=" + url.QueryEscape("urn:oid:1.23"): nil,
	} {
		if r := do(t, http.MethodGet, s.base+"/"+q, nil); r.status == http.StatusBadRequest {
			continue // refusing :above on a URN is a fair answer too
		}
		if got, _ := searchAll(t, s, q); !slices.Equal(sorted(got), want) {
			t.Errorf("GET %s: %v, want %v", q, sorted(got), want)
		}
	}
}

// TestSearchSortOwnAbsoluteReference: a stored reference to this server by
// its absolute URL means Type/id (README, Search), so _sort on a reference
// parameter orders it as Type/id, not after every relative reference.
func TestSearchSortOwnAbsoluteReference(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/a", []byte(`{"resourceType":"Patient","id":"a"}`))
	do(t, http.MethodPut, s.base+"/Patient/b", []byte(`{"resourceType":"Patient","id":"b"}`))
	for id, ref := range map[string]string{"e1": s.base + "/Patient/a", "e2": "Patient/b"} {
		r := do(t, http.MethodPut, s.base+"/Encounter/"+id, []byte(`{"resourceType":"Encounter","id":"`+id+`","status":"finished","class":{"code":"AMB"},"subject":{"reference":"`+ref+`"}}`))
		if r.status != http.StatusCreated {
			t.Fatalf("PUT Encounter/%s: %d %s", id, r.status, r.body)
		}
	}
	for q, want := range map[string][]string{
		"Encounter?_sort=subject":  {"e1", "e2"},
		"Encounter?_sort=-subject": {"e2", "e1"},
		"Encounter?_sort=patient":  {"e1", "e2"},
	} {
		if ids, _ := searchAll(t, s, q); !slices.Equal(ids, want) {
			t.Errorf("GET %s: %v, want %v", q, ids, want)
		}
	}
}
