package conformance_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestHasAndChainNeedScopeOnTheLinkedType: _has and chained parameters
// are searches of the type they go through. The lab may read and search
// Patients (system/Patient.rs) but has no scope on Observation nor on
// Organization: it must not learn, by which Patients come back, which
// Patients have an Observation with a given code, nor search
// Organizations by name.
func TestHasAndChainNeedScopeOnTheLinkedType(t *testing.T) {
	s, key := authClientServer(t)
	tok, err := labToken(t, s, key, "system/Patient.rs")
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + tok
	seed := func(path, body string) {
		t.Helper()
		if r := do(t, http.MethodPut, s.base+"/"+path, []byte(body)); r.status != http.StatusCreated {
			t.Fatalf("seed %s: %d %s", path, r.status, r.body)
		}
	}
	seed("Organization/org-secret", `{"resourceType":"Organization","id":"org-secret","name":"Addiction Clinic"}`)
	seed("Patient/hp1", `{"resourceType":"Patient","id":"hp1","managingOrganization":{"reference":"Organization/org-secret"}}`)
	seed("Patient/hp2", `{"resourceType":"Patient","id":"hp2"}`)
	seed("Observation/ho1", `{"resourceType":"Observation","id":"ho1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"HIV-1"}]},"subject":{"reference":"Patient/hp1"}}`)

	// Sanity: the lab has no Observation or Organization scope.
	if r := do(t, http.MethodGet, s.base+"/Observation?code=HIV-1", nil, "Authorization", bearer); r.status != http.StatusForbidden {
		t.Fatalf("Observation search by the lab: %d, want 403", r.status)
	}

	for _, q := range []string{
		"_has:Observation:subject:code=http://loinc.org|HIV-1",
		"organization:Organization.name=Addiction",
	} {
		r := do(t, http.MethodGet, s.base+"/Patient?"+strings.ReplaceAll(url.PathEscape(q), "%3D", "="), nil, "Authorization", bearer)
		if r.status == http.StatusOK && slices.Contains(entryPaths(t, r), "Patient/hp1") && !slices.Contains(entryPaths(t, r), "Patient/hp2") {
			t.Errorf("Patient?%s with only system/Patient.rs: 200 selecting exactly Patient/hp1 (%v): the answer reveals data of a type the token has no scope on; want 403", q, entryPaths(t, r))
		}
		// The same search as a batch GET entry.
		batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?` + q + `"}}]}`
		r = do(t, http.MethodPost, s.base, []byte(batch), "Authorization", bearer)
		if r.status == http.StatusOK && strings.Contains(string(r.body), `"id":"hp1"`) && !strings.Contains(string(r.body), `"id":"hp2"`) {
			t.Errorf("batch GET Patient?%s with only system/Patient.rs selects exactly Patient/hp1: %s", q, r.body)
		}
	}
}

// TestEverythingCursorIsBoundToItsPrincipal: the pages of a $everything
// snapshot are not filtered again, so a cursor taken by a client allowed
// every type must not serve a client allowed Patient only. (The lab may
// read Patients; it has no Observation scope.)
func TestEverythingCursorIsBoundToItsPrincipal(t *testing.T) {
	s, key := authClientServer(t)
	tok, err := labToken(t, s, key, "system/Patient.rs")
	if err != nil {
		t.Fatal(err)
	}
	seed := func(path, body string) {
		t.Helper()
		if r := do(t, http.MethodPut, s.base+"/"+path, []byte(body)); r.status != http.StatusCreated {
			t.Fatalf("seed %s: %d %s", path, r.status, r.body)
		}
	}
	seed("Patient/ep1", `{"resourceType":"Patient","id":"ep1"}`)
	for _, id := range []string{"eo1", "eo2", "eo3"} {
		seed("Observation/"+id, `{"resourceType":"Observation","id":"`+id+`","status":"final","code":{"text":"secret"},"subject":{"reference":"Patient/ep1"}}`)
	}
	// Lab alone: only the Patient.
	if r := do(t, http.MethodGet, s.base+"/Patient/ep1/$everything", nil, "Authorization", "Bearer "+tok); r.status != http.StatusOK || len(entryPaths(t, r)) != 1 {
		t.Fatalf("$everything by the lab: %d %v, want the Patient only", r.status, entryPaths(t, r))
	}
	// The harness client (system/*.cruds) pages through it.
	r := do(t, http.MethodGet, s.base+"/Patient/ep1/$everything?_count=1", nil)
	if r.status != http.StatusOK {
		t.Fatalf("$everything by the harness: %d %s", r.status, r.body)
	}
	var next string
	links, _ := r.json(t)["link"].([]any)
	for _, l := range links {
		m := l.(map[string]any)
		if m["relation"] == "next" {
			next, _ = m["url"].(string)
		}
	}
	if next == "" {
		t.Fatalf("no next link: %s", r.body)
	}
	// The lab follows the harness's next link.
	r = do(t, http.MethodGet, next, nil, "Authorization", "Bearer "+tok)
	for _, p := range entryPaths(t, r) {
		if strings.HasPrefix(p, "Observation/") {
			t.Errorf("a token with only system/Patient.rs, replaying another client's $everything cursor, got %s (status %d)", p, r.status)
		}
	}
}
