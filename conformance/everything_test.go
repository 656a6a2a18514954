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

// everythingData writes two patients' records: ev-p1 with Encounters,
// Observations and an Appointment referring to an Organization and a
// Practitioner, and ev-p2 with its own, which must never show in ev-p1's.
func everythingData(t *testing.T, s *server) (p1 []string) {
	t.Helper()
	put := func(typ, id, body string) {
		t.Helper()
		body = fmt.Sprintf(`{"resourceType":%q,"id":%q,%s}`, typ, id, body)
		if r := do(t, http.MethodPut, s.base+"/"+typ+"/"+id, []byte(body)); r.status >= 300 {
			t.Fatalf("PUT %s/%s: %d %s", typ, id, r.status, r.body)
		}
	}
	enc := `"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}`
	obs := `"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]}`
	put("Organization", "ev-org", `"name":"Everything General"`)
	put("Organization", "ev-org-other", `"name":"Only the other patient's"`)
	put("Practitioner", "ev-pr", `"name":[{"family":"Osler"}]`)
	put("Patient", "ev-p1", `"name":[{"family":"Whole"}],"managingOrganization":{"reference":"Organization/ev-org"}`)
	put("Patient", "ev-p2", `"name":[{"family":"Other"}]`)
	p1 = []string{"Patient/ev-p1"}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("ev-e%d", i)
		put("Encounter", id, enc+`,"subject":{"reference":"Patient/ev-p1"},"serviceProvider":{"reference":"Organization/ev-org"},"participant":[{"individual":{"reference":"Practitioner/ev-pr"}}]`)
		p1 = append(p1, "Encounter/"+id)
	}
	for i := 1; i <= 4; i++ {
		id := fmt.Sprintf("ev-o%d", i)
		put("Observation", id, obs+`,"subject":{"reference":"Patient/ev-p1"},"encounter":{"reference":"Encounter/ev-e1"},"performer":[{"reference":"Practitioner/ev-pr"}]`)
		p1 = append(p1, "Observation/"+id)
	}
	put("Appointment", "ev-a1", `"status":"booked","start":"2024-03-08T09:00:00Z","end":"2024-03-08T09:20:00Z","participant":[{"actor":{"reference":"Patient/ev-p1"},"status":"accepted"},{"actor":{"reference":"Practitioner/ev-pr"},"status":"accepted"}]`)
	p1 = append(p1, "Appointment/ev-a1")
	// The other patient's: one of its Observations names ev-p1 as focus
	// only (not a compartment parameter), and refers to an Organization
	// that ev-p1's records do not.
	put("Encounter", "ev-other-e", enc+`,"subject":{"reference":"Patient/ev-p2"},"serviceProvider":{"reference":"Organization/ev-org-other"}`)
	put("Observation", "ev-other-o", obs+`,"subject":{"reference":"Patient/ev-p2"},"focus":[{"reference":"Patient/ev-p1"}]`)
	put("Appointment", "ev-other-a", `"status":"booked","start":"2024-03-08T10:00:00Z","end":"2024-03-08T10:20:00Z","participant":[{"actor":{"reference":"Patient/ev-p2"},"status":"accepted"}]`)
	slices.Sort(p1)
	return p1
}

type everythingPage struct {
	Type  string
	Total *int
	Link  []struct{ Relation, URL string }
	Entry []struct {
		FullURL  string
		Resource struct{ ResourceType, ID string }
		Search   struct{ Mode string }
	}
}

// everythingAll follows next links from path and returns the matches and
// the includes of every page (Type/id, in order), and the page count.
func everythingAll(t *testing.T, s *server, path string) (matches, includes []string, pages int) {
	t.Helper()
	return followPages(t, s.base+"/"+path)
}

func followPages(t *testing.T, start string) (matches, includes []string, pages int) {
	t.Helper()
	for next := start; next != ""; pages++ {
		if pages > 100 {
			t.Fatalf("%s: more than 100 pages", start)
		}
		r := do(t, http.MethodGet, next, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		var b everythingPage
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Type != "searchset" {
			t.Errorf("Bundle.type %q, want searchset", b.Type)
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		for _, e := range b.Entry {
			key := e.Resource.ResourceType + "/" + e.Resource.ID
			if !strings.HasSuffix(e.FullURL, "/"+key) {
				t.Errorf("entry %s has fullUrl %q", key, e.FullURL)
			}
			switch e.Search.Mode {
			case "match":
				matches = append(matches, key)
			case "include":
				includes = append(includes, key)
			default:
				t.Errorf("entry %s: search.mode %q", key, e.Search.Mode)
			}
		}
	}
	return matches, includes, pages
}

// $everything returns the patient, its compartment among the indexed
// types, and what they refer to (Organization, Practitioner), and nothing
// of another patient; _type and _since narrow it.
func TestPatientEverything(t *testing.T) {
	s := startServer(t, app.Config{})
	want := everythingData(t, s)

	matches, includes, _ := everythingAll(t, s, "Patient/ev-p1/$everything")
	if !slices.Equal(sorted(matches), want) {
		t.Errorf("matches:\n got %v\nwant %v", sorted(matches), want)
	}
	if matches[0] != "Patient/ev-p1" {
		t.Errorf("the first entry is %s, want the patient", matches[0])
	}
	if got := sorted(includes); !slices.Equal(got, []string{"Organization/ev-org", "Practitioner/ev-pr"}) {
		t.Errorf("includes %v, want Organization/ev-org and Practitioner/ev-pr, each once", got)
	}
	for _, k := range append(matches, includes...) {
		if strings.Contains(k, "other") || k == "Patient/ev-p2" {
			t.Errorf("another patient's record leaked in: %s", k)
		}
	}
	r := do(t, http.MethodGet, s.base+"/Patient/ev-p1/$everything", nil)
	if total := r.json(t)["total"]; total != float64(len(want)) {
		t.Errorf("total %v, want %d", total, len(want))
	}

	t.Run("_type", func(t *testing.T) {
		matches, includes, _ := everythingAll(t, s, "Patient/ev-p1/$everything?_type=Observation,Appointment")
		for _, m := range matches {
			if !strings.HasPrefix(m, "Observation/") && !strings.HasPrefix(m, "Appointment/") {
				t.Errorf("_type=Observation,Appointment returned %s", m)
			}
		}
		if len(matches) != 5 {
			t.Errorf("_type=Observation,Appointment: %v, want 4 Observations and 1 Appointment", matches)
		}
		if len(includes) != 0 {
			t.Errorf("_type=Observation,Appointment includes %v, want none: _type limits every resource returned", includes)
		}
		matches, includes, _ = everythingAll(t, s, "Patient/ev-p1/$everything?_type=Encounter,Organization")
		if len(matches) != 3 || !slices.Equal(includes, []string{"Organization/ev-org"}) {
			t.Errorf("_type=Encounter,Organization: %v and includes %v, want 3 Encounters and Organization/ev-org", matches, includes)
		}
	})

	t.Run("_since", func(t *testing.T) {
		time.Sleep(5 * time.Millisecond)
		since := time.Now().UTC()
		time.Sleep(5 * time.Millisecond)
		body := `{"resourceType":"Observation","id":"ev-o2","status":"amended","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/ev-p1"}}`
		if r := do(t, http.MethodPut, s.base+"/Observation/ev-o2", []byte(body)); r.status != http.StatusOK {
			t.Fatalf("update: %d %s", r.status, r.body)
		}
		q := url.Values{"_since": {since.Format("2006-01-02T15:04:05.000Z07:00")}}
		matches, _, _ := everythingAll(t, s, "Patient/ev-p1/$everything?"+q.Encode())
		if !slices.Equal(matches, []string{"Observation/ev-o2"}) {
			t.Errorf("_since=%s: %v, want only Observation/ev-o2", since, matches)
		}
	})

	t.Run("paging", func(t *testing.T) {
		first := s.base + "/Patient/ev-p1/$everything?_count=3"
		r := do(t, http.MethodGet, first, nil)
		var page everythingPage
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		var next string
		for _, l := range page.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		if !strings.Contains(next, "_count=3") || !strings.Contains(next, "/Patient/ev-p1/$everything?") {
			t.Fatalf("next link %q does not repeat the operation and _count", next)
		}
		// Written after the first page: not part of the frozen result.
		body := `{"resourceType":"Observation","id":"ev-o-late","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/ev-p1"}}`
		if r := do(t, http.MethodPut, s.base+"/Observation/ev-o-late", []byte(body)); r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		var matches, includes []string
		for _, e := range page.Entry {
			key := e.Resource.ResourceType + "/" + e.Resource.ID
			if e.Search.Mode == "match" {
				matches = append(matches, key)
			} else {
				includes = append(includes, key)
			}
		}
		rest, restIncludes, pages := followPages(t, next)
		matches, includes = append(matches, rest...), append(includes, restIncludes...)
		// Pages of 3 matches, each with the resources its matches refer to.
		if pages != 2 {
			t.Errorf("%d pages of 3 after the first for 9 resources, want 2", pages)
		}
		if !slices.Equal(sorted(matches), want) {
			t.Errorf("paged matches (each must come once, the late one not):\n got %v\nwant %v", sorted(matches), want)
		}
		if !slices.Equal(slices.Compact(sorted(includes)), []string{"Organization/ev-org", "Practitioner/ev-pr"}) {
			t.Errorf("paged includes: %v", sorted(includes))
		}
		// A cursor of one patient's result does not serve another's.
		u, _ := url.Parse(next)
		other := s.base + "/Patient/ev-p2/$everything?_cursor=" + url.QueryEscape(u.Query().Get("_cursor"))
		if r := do(t, http.MethodGet, other, nil); r.status != http.StatusGone {
			t.Errorf("another patient's cursor: %d, want 410", r.status)
		}
	})

	t.Run("unknown parameters", func(t *testing.T) {
		r := do(t, http.MethodGet, s.base+"/Patient/ev-p1/$everything?start=2024-01-01", nil)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"mode":"outcome"`) || !strings.Contains(string(r.body), "start") {
			t.Errorf("start=: %d, want 200 with an outcome entry naming it: %s", r.status, r.body)
		}
		r = do(t, http.MethodGet, s.base+"/Patient/ev-p1/$everything?start=2024-01-01", nil, "Prefer", "handling=strict")
		if r.status != http.StatusBadRequest {
			t.Errorf("start= with handling=strict: %d, want 400", r.status)
		}
	})

	t.Run("errors", func(t *testing.T) {
		if r := do(t, http.MethodDelete, s.base+"/Patient/ev-p2", nil); r.status != http.StatusNoContent {
			t.Fatalf("delete: %d", r.status)
		}
		for path, want := range map[string]int{
			"Patient/nobody/$everything":            http.StatusNotFound,
			"Patient/ev-p2/$everything":             http.StatusGone,
			"Patient/ev-p1/$everything?_since=soon": http.StatusBadRequest,
			"Patient/ev-p1/$everything?_count=0":    http.StatusBadRequest,
			"Patient/ev-p1/$everything?_type=Nope":  http.StatusBadRequest,
			"Observation/ev-o1/$everything":         http.StatusNotFound,
		} {
			r := do(t, http.MethodGet, s.base+"/"+path, nil)
			if r.status != want {
				t.Errorf("GET %s: %d, want %d: %s", path, r.status, want, r.body)
			}
			if rt := r.json(t)["resourceType"]; rt != "OperationOutcome" {
				t.Errorf("GET %s: a %v, want an OperationOutcome", path, rt)
			}
		}
	})
}

// The CapabilityStatement declares $everything on Patient, and only there.
func TestCapabilityDeclaresEverything(t *testing.T) {
	s := startServer(t, app.Config{})
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type      string
				Operation []struct{ Name, Definition string }
			}
		}
	}
	if err := json.Unmarshal(do(t, http.MethodGet, s.base+"/metadata", nil).body, &cs); err != nil {
		t.Fatal(err)
	}
	for _, r := range cs.Rest[0].Resource {
		switch {
		case r.Type == "Patient":
			if len(r.Operation) != 1 || r.Operation[0].Name != "everything" || r.Operation[0].Definition != "http://hl7.org/fhir/OperationDefinition/Patient-everything" {
				t.Errorf("Patient operations %+v, want everything with its OperationDefinition", r.Operation)
			}
		case len(r.Operation) > 0:
			t.Errorf("%s declares operations %+v", r.Type, r.Operation)
		}
	}
}

// $everything shows a caller only the types its scopes let it read or
// search: "lab" (system/Patient.rs system/Observation.c) gets the patient,
// not the Observations it may only create, nor the Encounters,
// Appointments, Organizations and Practitioners it has no scope for.
func TestPatientEverythingRespectsScopes(t *testing.T) {
	s, key := authClientServer(t)
	everythingData(t, s) // as the harness client, which may do everything
	tok, err := labToken(t, s, key, "system/Patient.rs system/Observation.c")
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, http.MethodGet, s.base+"/Patient/ev-p1/$everything", nil, "Authorization", "Bearer "+tok)
	if r.status != http.StatusOK {
		t.Fatalf("lab's $everything: %d %s", r.status, r.body)
	}
	var b everythingPage
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range b.Entry {
		got = append(got, e.Resource.ResourceType+"/"+e.Resource.ID)
	}
	if !slices.Equal(got, []string{"Patient/ev-p1"}) || b.Total == nil || *b.Total != 1 {
		t.Errorf("lab's $everything: %v (total %v), want only Patient/ev-p1", got, b.Total)
	}
}

// TestEverythingAbsoluteOwnBaseReference: an Observation whose subject is
// <base>/Patient/ev-p1 (R4: the same reference as Patient/ev-p1) is in the
// patient's compartment, and either spelling finds it.
func TestEverythingAbsoluteOwnBaseReference(t *testing.T) {
	s := startServer(t, app.Config{})
	everythingData(t, s)
	body := `{"resourceType":"Observation","id":"ev-abs","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"` + s.base + `/Patient/ev-p1"}}`
	if r := do(t, http.MethodPut, s.base+"/Observation/ev-abs", []byte(body)); r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	matches, _, _ := everythingAll(t, s, "Patient/ev-p1/$everything?_type=Observation")
	if !slices.Contains(matches, "Observation/ev-abs") {
		t.Errorf("$everything of ev-p1 lacks Observation/ev-abs (subject %s/Patient/ev-p1): %v", s.base, matches)
	}
	for _, v := range []string{"Patient/ev-p1", s.base + "/Patient/ev-p1"} {
		ids, _ := searchAll(t, s, "Observation?subject="+url.QueryEscape(v))
		if !slices.Contains(ids, "ev-abs") {
			t.Errorf("Observation?subject=%s: %v, lacks ev-abs", v, ids)
		}
	}
}

// TestEverythingTypeSelectsReferencedTypes: _type selects what is returned
// among everything, referenced resources too: _type=Organization answers
// the organizations the record refers to.
func TestEverythingTypeSelectsReferencedTypes(t *testing.T) {
	s := startServer(t, app.Config{})
	everythingData(t, s)
	_, all, _ := everythingAll(t, s, "Patient/ev-p1/$everything")
	if !slices.Contains(all, "Organization/ev-org") {
		t.Fatalf("unfiltered includes %v lack Organization/ev-org", all)
	}
	for _, q := range []string{"_type=Organization", "_type=Observation,Organization"} {
		matches, includes, _ := everythingAll(t, s, "Patient/ev-p1/$everything?"+q)
		if got := append(matches, includes...); !slices.Contains(got, "Organization/ev-org") {
			t.Errorf("%s: %v, lacks Organization/ev-org, which the unfiltered result has", q, got)
		}
	}
}

// TestEverythingSinceAppliesToReferenced: _since applies to the referenced
// resources too (R4: only records that changed since).
func TestEverythingSinceAppliesToReferenced(t *testing.T) {
	s := startServer(t, app.Config{})
	everythingData(t, s)
	time.Sleep(5 * time.Millisecond)
	since := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	body := `{"resourceType":"Observation","id":"ev-late","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/ev-p1"},"performer":[{"reference":"Practitioner/ev-pr"}]}`
	if r := do(t, http.MethodPut, s.base+"/Observation/ev-late", []byte(body)); r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	q := url.Values{"_since": {since.Format("2006-01-02T15:04:05.000Z07:00")}}
	matches, includes, _ := everythingAll(t, s, "Patient/ev-p1/$everything?"+q.Encode())
	if !slices.Equal(matches, []string{"Observation/ev-late"}) || len(includes) != 0 {
		t.Errorf("_since=%s: matches %v includes %v; want only Observation/ev-late (Practitioner/ev-pr has not changed since)", since, matches, includes)
	}
}

// TestEverythingVersionSpecificReference: a version-specific reference
// brings that version in (R4: "SHOULD resolve version-specific references
// by returning the explicitly named version").
func TestEverythingVersionSpecificReference(t *testing.T) {
	s := startServer(t, app.Config{})
	everythingData(t, s)
	if r := do(t, http.MethodPut, s.base+"/Practitioner/ev-vpr", []byte(`{"resourceType":"Practitioner","id":"ev-vpr","name":[{"family":"Versioned"}]}`)); r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	body := `{"resourceType":"Observation","id":"ev-vo","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/ev-p1"},"performer":[{"reference":"Practitioner/ev-vpr/_history/1"}]}`
	if r := do(t, http.MethodPut, s.base+"/Observation/ev-vo", []byte(body)); r.status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	_, includes, _ := everythingAll(t, s, "Patient/ev-p1/$everything")
	if !slices.Contains(includes, "Practitioner/ev-vpr") {
		t.Errorf("includes %v lack Practitioner/ev-vpr, referred to as Practitioner/ev-vpr/_history/1", includes)
	}
}

// TestEverythingByPost: POST with a Parameters body is an operation's base
// form (R4 operations.html); GET is the extra one for operations that
// change nothing.
func TestEverythingByPost(t *testing.T) {
	s := startServer(t, app.Config{})
	want := everythingData(t, s)
	r := do(t, http.MethodPost, s.base+"/Patient/ev-p1/$everything", []byte(`{"resourceType":"Parameters"}`))
	if r.status != http.StatusOK {
		t.Fatalf("POST Patient/ev-p1/$everything: %d %s", r.status, r.body)
	}
	if total := r.json(t)["total"]; total != float64(len(want)) {
		t.Errorf("total %v, want %d", total, len(want))
	}
	// Parameters as the GET form's: _type and _count.
	r = do(t, http.MethodPost, s.base+"/Patient/ev-p1/$everything", []byte(`{"resourceType":"Parameters","parameter":[{"name":"_type","valueCode":"Encounter"},{"name":"_count","valueInteger":1}]}`))
	if body := string(r.body); r.status != http.StatusOK || !strings.Contains(body, `"resourceType":"Encounter"`) || strings.Contains(body, `"resourceType":"Observation"`) || !strings.Contains(body, `"next"`) {
		t.Errorf("POST with _type=Encounter, _count=1: %d %s", r.status, body)
	}
	for _, body := range []string{`{"resourceType":"Patient"}`, `{"resourceType":"Parameters","parameter":[{"valueCode":"x"}]}`, `{`} {
		if r := do(t, http.MethodPost, s.base+"/Patient/ev-p1/$everything", []byte(body)); r.status != http.StatusBadRequest {
			t.Errorf("POST %s: %d %s, want 400", body, r.status, r.body)
		}
	}
	// The operation is declared once.
	if n := strings.Count(string(do(t, http.MethodGet, s.base+"/metadata", nil).body), `"name":"everything"`); n != 1 {
		t.Errorf("metadata declares everything %d times, want once", n)
	}
}

// TestEverythingByPostContentType: the Parameters body of POST
// $everything is read as JSON, so a body labelled as another media type
// (XML, a form) is 415, as on every other request with a body, not a 400
// for JSON that does not parse.
func TestEverythingByPostContentType(t *testing.T) {
	s := startServer(t, app.Config{})
	everythingData(t, s)
	for _, c := range []struct{ contentType, body string }{
		{"application/fhir+xml", `<Parameters xmlns="http://hl7.org/fhir"/>`},
		{"application/x-www-form-urlencoded", `_count=1`},
		{"text/plain", `{"resourceType":"Parameters"}`},
	} {
		r := do(t, http.MethodPost, s.base+"/Patient/ev-p1/$everything", []byte(c.body), "Content-Type", c.contentType)
		checkOutcome(t, "POST $everything as "+c.contentType, r, http.StatusUnsupportedMediaType, "not-supported", "")
	}
	if r := do(t, http.MethodPost, s.base+"/Patient/ev-p1/$everything", []byte(`{"resourceType":"Parameters"}`), "Content-Type", "application/fhir+json; charset=utf-8"); r.status != http.StatusOK {
		t.Errorf("POST $everything as application/fhir+json: %d %s", r.status, r.body)
	}
}
