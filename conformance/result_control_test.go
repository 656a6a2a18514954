package conformance_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// resultControlServer holds two Patients, a Practitioner and two
// Observations: o1 performed by the Practitioner, o2 by a Patient.
func resultControlServer(t *testing.T) *server {
	t.Helper()
	s := startServer(t, app.Config{})
	for path, body := range map[string]string{
		"Patient/p1":       `{"resourceType":"Patient","id":"p1","name":[{"family":"Zed"}]}`,
		"Patient/p2":       `{"resourceType":"Patient","id":"p2","name":[{"family":"Abe"}]}`,
		"Practitioner/pr1": `{"resourceType":"Practitioner","id":"pr1","name":[{"family":"Doc"}]}`,
		"Observation/o1":   `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/pr1"}],"valueString":"a"}`,
		"Observation/o2":   `{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p2"},"performer":[{"reference":"Patient/p2"}],"valueString":"b"}`,
	} {
		if r := do(t, http.MethodPut, s.base+"/"+path, []byte(body)); r.status >= 300 {
			t.Fatalf("PUT %s: %d %s", path, r.status, r.body)
		}
	}
	return s
}

// bundleEntries returns, per search mode, the Type/id of the entries.
func bundleEntries(t *testing.T, r *response) map[string][]string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	out := map[string][]string{}
	for _, e := range list(r.json(t)["entry"]) {
		res := obj(obj(e)["resource"])
		mode := str(obj(obj(e)["search"])["mode"])
		out[mode] = append(out[mode], str(res["resourceType"])+"/"+str(res["id"]))
	}
	return out
}

// TestRevIncludeTargetType: _revinclude=Observation:performer:Patient
// includes the Observations whose performer is one of the Patients found,
// not those performed by a Practitioner also found (R4 search.html#include:
// the optional third part restricts the target type).
func TestRevIncludeTargetType(t *testing.T) {
	s := resultControlServer(t)
	q := "?_type=Patient,Practitioner&_revinclude=Observation:performer:Patient"
	got := bundleEntries(t, do(t, http.MethodGet, s.base+q, nil))
	if len(got["include"]) != 1 || got["include"][0] != "Observation/o2" {
		t.Errorf("GET %s: included %v, want [Observation/o2] (o1's performer is a Practitioner)", q, got["include"])
	}
}

// TestElementsKeepsMandatoryElements: R4 search.html#elements, "Servers
// SHOULD always return mandatory elements whether they are requested or
// not": _elements=subject on Observation still carries status and code
// (1..1), and the resource is tagged SUBSETTED.
func TestElementsKeepsMandatoryElements(t *testing.T) {
	s := resultControlServer(t)
	r := do(t, http.MethodGet, s.base+"/Observation?_id=o1&_elements=subject", nil)
	body := string(r.body)
	for _, w := range []string{`"subject"`, `"status":"final"`, `"code":{"text":"x"}`, "SUBSETTED"} {
		if !strings.Contains(body, w) {
			t.Errorf("_elements=subject: body lacks %s: %s", w, body)
		}
	}
	for _, w := range []string{`"valueString"`, `"performer"`} {
		if strings.Contains(body, w) {
			t.Errorf("_elements=subject: body has %s: %s", w, body)
		}
	}
}

// TestCapabilityStatementDeclaresIncludes: the CapabilityStatement lists,
// per searchable type, the _include and _revinclude values search answers
// (R4 capabilitystatement.html: rest.resource.searchInclude and
// searchRevInclude), and a strict search takes every one of them.
func TestCapabilityStatementDeclaresIncludes(t *testing.T) {
	s := startServer(t, app.Config{})
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type             string   `json:"type"`
				SearchInclude    []string `json:"searchInclude"`
				SearchRevInclude []string `json:"searchRevInclude"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(do(t, http.MethodGet, s.base+"/metadata", nil).body, &cs); err != nil {
		t.Fatal(err)
	}
	got := map[string][2][]string{}
	for _, res := range cs.Rest[0].Resource {
		got[res.Type] = [2][]string{res.SearchInclude, res.SearchRevInclude}
		for i, vals := range got[res.Type] {
			name := []string{"_include", "_revinclude"}[i]
			for _, v := range vals {
				u := s.base + "/" + res.Type + "?_count=1&" + name + "=" + url.QueryEscape(v)
				if r := do(t, http.MethodGet, u, nil, "Prefer", "handling=strict"); r.status != http.StatusOK {
					t.Errorf("%s declares %s=%s, but a strict search answers %d %s", res.Type, name, v, r.status, r.body)
				}
			}
		}
	}
	for _, w := range []struct {
		typ, include, revinclude string
	}{
		{"Observation", "Observation:subject", "Observation:has-member"},
		{"Patient", "Patient:general-practitioner", "Observation:subject"},
		{"Encounter", "Encounter:subject", "Observation:encounter"},
	} {
		if !slices.Contains(got[w.typ][0], w.include) || !slices.Contains(got[w.typ][0], "*") {
			t.Errorf("%s: searchInclude %v lacks %s or *", w.typ, got[w.typ][0], w.include)
		}
		if !slices.Contains(got[w.typ][1], w.revinclude) || !slices.Contains(got[w.typ][1], "*") {
			t.Errorf("%s: searchRevInclude %v lacks %s or *", w.typ, got[w.typ][1], w.revinclude)
		}
	}
	if len(got["Library"][0])+len(got["Library"][1]) > 0 {
		t.Errorf("Library (not searchable) declares includes %v", got["Library"])
	}
}
