package conformance_test

import (
	"cmp"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// patientWith is a Patient with one identifier sys|val and a family name.
func patientWith(sys, val, family string) []byte {
	return []byte(`{"resourceType":"Patient","identifier":[{"system":"` + sys + `","value":"` + val + `"}],"name":[{"family":"` + family + `"}]}`)
}

// idsOf returns the ids of the Patients matching query (fatal on errors).
func idsOf(t *testing.T, s *server, query string) []string {
	t.Helper()
	ids, _ := searchAll(t, s, query)
	return ids
}

// seedConditional stores: one Patient with identifier urn:s|one, two with
// urn:s|two; it returns their ids.
func seedConditional(t *testing.T, s *server) (one string, two []string) {
	t.Helper()
	one, _ = create(t, s, "Patient", patientWith("urn:s", "one", "One"))
	for range 2 {
		id, _ := create(t, s, "Patient", patientWith("urn:s", "two", "Two"))
		two = append(two, id)
	}
	return one, two
}

func TestConditionalCreate(t *testing.T) {
	s := startServer(t, app.Config{})
	one, _ := seedConditional(t, s)
	cases := []struct {
		name, ifNoneExist string
		status            int
		code              string // OperationOutcome issue code on errors
		wantID            string // 200: the existing resource
		stored            int    // Patients with identifier urn:s|new afterwards
	}{
		{name: "none matches: created", ifNoneExist: "identifier=urn:s|new", status: 201, stored: 1},
		{name: "same again: the one just created", ifNoneExist: "identifier=urn:s|new", status: 200, stored: 1},
		{name: "one matches: 200 with it, nothing written", ifNoneExist: "identifier=urn:s|one", status: 200, wantID: one, stored: 1},
		{name: "Type? prefix accepted", ifNoneExist: "Patient?identifier=urn:s|one", status: 200, wantID: one, stored: 1},
		{name: "several match: 412", ifNoneExist: "identifier=urn:s|two", status: 412, code: "multiple-matches", stored: 1},
		{name: "unknown parameter: 400, never ignored", ifNoneExist: "identifer=urn:s|new", status: 400, code: "not-supported", stored: 1},
		{name: "only result parameters: 400", ifNoneExist: "_count=1", status: 400, code: "required", stored: 1},
		{name: "not a query string: 400", ifNoneExist: "identifier=%zz", status: 400, code: "value", stored: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := patientWith("urn:s", "new", "New")
			before := len(idsOf(t, s, "Patient"))
			r := do(t, "POST", s.base+"/Patient", body, "If-None-Exist", tc.ifNoneExist)
			if tc.code != "" {
				checkOutcome(t, tc.name, r, tc.status, tc.code, "")
				if after := len(idsOf(t, s, "Patient")); after != before {
					t.Errorf("refused conditional create stored something: %d Patients, were %d", after, before)
				}
			} else if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.wantID != "" {
				if got := decodeJSON(t, r.body)["id"]; got != tc.wantID {
					t.Errorf("returned id %v, want the existing %s", got, tc.wantID)
				}
				if v := r.header.Get("ETag"); v != `W/"1"` {
					t.Errorf("ETag %q: the existing version 1 was not left alone", v)
				}
			}
			if n := len(idsOf(t, s, "Patient?identifier=urn:s|new")); n != tc.stored {
				t.Errorf("%d Patients with urn:s|new, want %d", n, tc.stored)
			}
		})
	}
}

func TestConditionalUpdate(t *testing.T) {
	s := startServer(t, app.Config{})
	one, _ := seedConditional(t, s)
	other, _ := create(t, s, "Patient", patientWith("urn:s", "other", "Other"))
	cases := []struct {
		name, query, body string
		status            int
		code              string
		check             func(t *testing.T, r *response)
	}{
		{name: "one matches: updated", query: "identifier=urn:s|one", body: string(patientWith("urn:s", "one", "Updated")), status: 200,
			check: func(t *testing.T, r *response) {
				m := decodeJSON(t, r.body)
				if m["id"] != one || r.header.Get("ETag") != `W/"2"` {
					t.Errorf("updated %v with ETag %s, want %s version 2", m["id"], r.header.Get("ETag"), one)
				}
			}},
		{name: "one matches, same id in the body", query: "identifier=urn:s|one", body: `{"resourceType":"Patient","id":"` + one + `","identifier":[{"system":"urn:s","value":"one"}]}`, status: 200},
		{name: "one matches, another id in the body: 400", query: "identifier=urn:s|one", body: `{"resourceType":"Patient","id":"` + other + `","identifier":[{"system":"urn:s","value":"one"}]}`, status: 400, code: "invalid"},
		{name: "none matches: created with a server id", query: "identifier=urn:s|fresh", body: string(patientWith("urn:s", "fresh", "Fresh")), status: 201,
			check: func(t *testing.T, r *response) {
				if !strings.Contains(r.header.Get("Location"), "/Patient/") {
					t.Errorf("Location %q", r.header.Get("Location"))
				}
			}},
		{name: "none matches, id in the body: created with it", query: "identifier=urn:s|client", body: `{"resourceType":"Patient","id":"client-id","identifier":[{"system":"urn:s","value":"client"}]}`, status: 201,
			check: func(t *testing.T, r *response) {
				if got := decodeJSON(t, r.body)["id"]; got != "client-id" {
					t.Errorf("id %v, want client-id", got)
				}
			}},
		{name: "none matches, id of a resource that does not match: 409", query: "identifier=urn:s|nobody", body: `{"resourceType":"Patient","id":"` + other + `"}`, status: 409, code: "conflict"},
		{name: "several match: 412", query: "identifier=urn:s|two", body: string(patientWith("urn:s", "two", "Two")), status: 412, code: "multiple-matches"},
		{name: "no parameters: 400", query: "", body: string(patientWith("urn:s", "x", "X")), status: 400, code: "required"},
		{name: "unknown parameter: 400", query: "identifer=urn:s|one", body: string(patientWith("urn:s", "one", "X")), status: 400, code: "not-supported"},
		{name: "unsearchable type: 400", query: "identifier=urn:s|one", body: `{"resourceType":"Basic","code":{"text":"x"}}`, status: 400, code: "not-supported"},
		{name: "invalid body: 422", query: "identifier=urn:s|one", body: `{"resourceType":"Patient","birthDate":"2023-02-30"}`, status: 422},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			typ := "Patient"
			if strings.Contains(tc.body, `"Basic"`) {
				typ = "Basic"
			}
			before := len(idsOf(t, s, "Patient"))
			r := do(t, "PUT", s.base+"/"+typ+"?"+tc.query, []byte(tc.body))
			if tc.code != "" || tc.status >= 400 {
				checkOutcome(t, tc.name, r, tc.status, tc.code, "")
				if after := len(idsOf(t, s, "Patient")); after != before {
					t.Errorf("refused conditional update stored something: %d Patients, were %d", after, before)
				}
			} else if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
	if r := do(t, "GET", s.base+"/Patient/"+other, nil); r.status != 200 || r.header.Get("ETag") != `W/"1"` {
		t.Errorf("Patient/%s was touched: %d %s", other, r.status, r.header.Get("ETag"))
	}
}

func TestConditionalDelete(t *testing.T) {
	for _, mode := range []string{"single", "multiple"} {
		t.Run(mode, func(t *testing.T) {
			s := startServer(t, app.Config{ConditionalDelete: mode})
			one, two := seedConditional(t, s)
			cases := []struct {
				name, query string
				status      int
				code        string
				gone        []string // deleted afterwards
			}{
				{name: "none matches: 200 saying so", query: "identifier=urn:s|nobody", status: 200, code: "not-found"},
				{name: "no parameters: 400", query: "", status: 400, code: "required"},
				{name: "unknown parameter: 400", query: "identifer=urn:s|one", status: 400, code: "not-supported"},
				{name: "one matches: deleted", query: "identifier=urn:s|one", status: 204, gone: []string{one}},
			}
			if mode == "single" {
				cases = append(cases, struct {
					name, query string
					status      int
					code        string
					gone        []string
				}{name: "several match: 412", query: "identifier=urn:s|two", status: 412, code: "multiple-matches"})
			} else {
				cases = append(cases, struct {
					name, query string
					status      int
					code        string
					gone        []string
				}{name: "several match: all deleted", query: "identifier=urn:s|two", status: 204, gone: two})
			}
			for _, tc := range cases {
				before := len(idsOf(t, s, "Patient"))
				r := do(t, "DELETE", s.base+"/Patient?"+tc.query, nil)
				if tc.code != "" {
					checkOutcome(t, tc.name, r, tc.status, tc.code, "")
				} else if r.status != tc.status {
					t.Fatalf("%s: status %d, want %d: %s", tc.name, r.status, tc.status, r.body)
				}
				if after := len(idsOf(t, s, "Patient")); after != before-len(tc.gone) {
					t.Errorf("%s: %d Patients left, want %d", tc.name, after, before-len(tc.gone))
				}
				for _, id := range tc.gone {
					if r := do(t, "GET", s.base+"/Patient/"+id, nil); r.status != http.StatusGone {
						t.Errorf("%s: GET Patient/%s: %d, want 410", tc.name, id, r.status)
					}
				}
			}
			cs := decodeJSON(t, do(t, "GET", s.base+"/metadata", nil).body)
			var res map[string]any
			for _, r := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
				if r.(map[string]any)["type"] == "Patient" {
					res = r.(map[string]any)
				}
			}
			if res["conditionalDelete"] != mode || res["conditionalCreate"] != true || res["conditionalUpdate"] != true {
				t.Errorf("CapabilityStatement: conditionalDelete %v, conditionalCreate %v, conditionalUpdate %v", res["conditionalDelete"], res["conditionalCreate"], res["conditionalUpdate"])
			}
		})
	}
}

func TestPatch(t *testing.T) {
	s := startServer(t, app.Config{})
	id, _ := create(t, s, "Patient", loadFixture(t, "Patient"))
	const jp = "application/json-patch+json"
	version := 1
	cases := []struct {
		name, path, ctype, body string
		headers                 []string
		status                  int
		code, expr              string
		check                   func(t *testing.T, m map[string]any)
	}{
		{name: "replace and add", ctype: jp, body: `[{"op":"replace","path":"/gender","value":"female"},{"op":"add","path":"/name/0/given/-","value":"Jo"},{"op":"add","path":"/_birthDate","value":{"extension":[{"url":"http://example.org/x","valueString":"<b>"}]}}]`, status: 200,
			check: func(t *testing.T, m map[string]any) {
				given := m["name"].([]any)[0].(map[string]any)["given"].([]any)
				if m["gender"] != "female" || given[len(given)-1] != "Jo" || m["_birthDate"] == nil || m["address"] == nil {
					t.Errorf("patched resource: %v", m)
				}
			}},
		{name: "If-Match current", ctype: jp, body: `[{"op":"replace","path":"/active","value":false}]`, headers: []string{"If-Match", `W/"2"`}, status: 200},
		{name: "test op passing", ctype: jp, body: `[{"op":"test","path":"/active","value":false},{"op":"remove","path":"/telecom"}]`, status: 200},
		{name: "If-Match stale: 412", ctype: jp, body: `[{"op":"replace","path":"/active","value":true}]`, headers: []string{"If-Match", `W/"1"`}, status: 412, code: "conflict"},
		{name: "test op failing: 422", ctype: jp, body: `[{"op":"test","path":"/gender","value":"male"},{"op":"replace","path":"/active","value":true}]`, status: 422, code: "processing"},
		{name: "path not there: 422", ctype: jp, body: `[{"op":"remove","path":"/deceasedBoolean"}]`, status: 422, code: "processing"},
		{name: "unknown op: 400", ctype: jp, body: `[{"op":"frobnicate","path":"/active"}]`, status: 400, code: "structure"},
		{name: "not a patch: 400", ctype: jp, body: `{"op":"replace"}`, status: 400, code: "structure"},
		{name: "malformed JSON: 400", ctype: jp, body: `[{"op":`, status: 400, code: "structure"},
		{name: "result invalid: 422", ctype: jp, body: `[{"op":"replace","path":"/birthDate","value":"2023-02-30"}]`, status: 422, expr: "Patient.birthDate"},
		{name: "result has unknown element: 422", ctype: jp, body: `[{"op":"add","path":"/foo","value":1}]`, status: 422, expr: "Patient.foo"},
		{name: "id change: 400", ctype: jp, body: `[{"op":"replace","path":"/id","value":"other"}]`, status: 400, code: "invalid", expr: "Patient.id"},
		{name: "id removed: 400", ctype: jp, body: `[{"op":"remove","path":"/id"}]`, status: 400, code: "invalid"},
		{name: "resourceType change: 400", ctype: jp, body: `[{"op":"replace","path":"/resourceType","value":"Practitioner"}]`, status: 400, code: "invalid", expr: "resourceType"},
		{name: "FHIRPath Patch: 415", ctype: "application/fhir+json", body: `{"resourceType":"Parameters","parameter":[]}`, status: 415, code: "not-supported"},
		{name: "other media type: 415", ctype: "text/plain", body: `x`, status: 415, code: "not-supported"},
		{name: "unknown id: 404", path: "/Patient/nobody", ctype: jp, body: `[{"op":"replace","path":"/active","value":true}]`, status: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := cmp.Or(tc.path, "/Patient/"+id)
			r := do(t, "PATCH", s.base+path, []byte(tc.body), append([]string{"Content-Type", tc.ctype}, tc.headers...)...)
			if tc.status != 200 {
				checkOutcome(t, tc.name, r, tc.status, tc.code, tc.expr)
			} else {
				version++
				checkVersion(t, tc.name, r, version)
				if tc.check != nil {
					tc.check(t, decodeJSON(t, r.body))
				}
			}
			if got := do(t, "GET", s.base+"/Patient/"+id, nil); got.header.Get("ETag") != `W/"`+strconv.Itoa(version)+`"` {
				t.Errorf("after %s: ETag %s, want version %d", tc.name, got.header.Get("ETag"), version)
			}
		})
	}
	// The patched JSON is the stored JSON: what the patch did not touch is
	// kept byte for byte, "<" is not escaped.
	got := do(t, "GET", s.base+"/Patient/"+id, nil)
	if !strings.Contains(string(got.body), `"valueString":"<b>"`) {
		t.Errorf("stored JSON was re-escaped: %s", got.body)
	}
}

func TestConditionalPatch(t *testing.T) {
	s := startServer(t, app.Config{})
	one, _ := seedConditional(t, s)
	const jp = "application/json-patch+json"
	patch := []byte(`[{"op":"replace","path":"/name/0/family","value":"Patched"}]`)
	r := do(t, "PATCH", s.base+"/Patient?identifier="+url.QueryEscape("urn:s|one"), patch, "Content-Type", jp)
	if r.status != 200 || decodeJSON(t, r.body)["id"] != one {
		t.Fatalf("conditional patch: %d %s", r.status, r.body)
	}
	checkOutcome(t, "several", do(t, "PATCH", s.base+"/Patient?identifier=urn:s|two", patch, "Content-Type", jp), 412, "multiple-matches", "")
	checkOutcome(t, "none", do(t, "PATCH", s.base+"/Patient?identifier=urn:s|nobody", patch, "Content-Type", jp), 404, "not-found", "")
	checkOutcome(t, "no criteria", do(t, "PATCH", s.base+"/Patient", patch, "Content-Type", jp), 400, "required", "")
	if ids := idsOf(t, s, "Patient?family=Patched"); len(ids) != 1 {
		t.Errorf("Patched: %v", ids)
	}
}

// TestConditionalDeleteIfMatch: If-Match on a conditional delete is a
// version precondition on the one resource the criteria select (RFC 9110
// 13.1.1: with no selected representation, or several, it cannot be
// true), so it fails with 412 and deletes nothing unless exactly one
// matches at that version, whatever --conditional-delete says.
func TestConditionalDeleteIfMatch(t *testing.T) {
	for _, mode := range []string{"single", "multiple"} {
		t.Run(mode, func(t *testing.T) {
			s := startServer(t, app.Config{ConditionalDelete: mode})
			one, two := seedConditional(t, s)
			for _, tc := range []struct {
				name, query, ifMatch string
				status               int
				gone                 []string
			}{
				{"several match", "identifier=urn:s|two", `W/"1"`, 412, nil},
				{"none matches", "identifier=urn:s|nobody", `W/"1"`, 412, nil},
				{"one matches, stale", "identifier=urn:s|one", `W/"2"`, 412, nil},
				{"one matches, current", "identifier=urn:s|one", `W/"1"`, 204, []string{one}},
			} {
				before := len(idsOf(t, s, "Patient"))
				r := do(t, "DELETE", s.base+"/Patient?"+tc.query, nil, "If-Match", tc.ifMatch)
				if tc.status == 412 {
					checkOutcome(t, tc.name, r, 412, "", "")
				} else if r.status != tc.status {
					t.Errorf("%s: status %d, want %d: %s", tc.name, r.status, tc.status, r.body)
				}
				if after := len(idsOf(t, s, "Patient")); after != before-len(tc.gone) {
					t.Errorf("%s: %d Patients left, want %d", tc.name, after, before-len(tc.gone))
				}
			}
			for _, id := range two {
				if r := do(t, "GET", s.base+"/Patient/"+id, nil); r.status != http.StatusOK {
					t.Errorf("Patient/%s: %d after the refused deletes, want 200", id, r.status)
				}
			}
		})
	}
}
