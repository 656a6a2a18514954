package conformance_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"healthhub/auth"
	"healthhub/cmd/healthhub/app"
)

// patientToken asks for a token of "portal" with the patient form
// parameter, the way a client confines its token to one patient (none for
// ""). portal signs with the harness client's key: only its registration
// differs.
func patientToken(t *testing.T, s *server, scope, patient string) *response {
	t.Helper()
	tokenURL := s.root + "/auth/token"
	assertion, err := auth.SignAssertion(harnessKey, "", "portal", tokenURL, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	}
	if patient != "" {
		form.Set("patient", patient)
	}
	return do(t, http.MethodPost, tokenURL, []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded", noTokenHeader, "1")
}

// entryPaths returns Type/id of every entry of a Bundle answer, matches
// and includes alike.
func entryPaths(t *testing.T, r *response) []string {
	t.Helper()
	var b struct {
		Entry []struct{ Resource map[string]any }
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range b.Entry {
		typ, _ := e.Resource["resourceType"].(string)
		id, _ := e.Resource["id"].(string)
		out = append(out, typ+"/"+id)
	}
	return out
}

// portalServer starts a server whose clients are the harness's and
// "portal", a patient portal registered with scope.
func portalServer(t *testing.T, scope string, cfg app.Config) *server {
	t.Helper()
	clients, _ := json.Marshal([]map[string]any{
		{"client_id": "portal", "name": "Patient portal", "organization": "Organization/portal", "jwks": json.RawMessage(mustKeySet(t)), "scope": scope},
		{"client_id": harnessClient, "jwks": json.RawMessage(mustKeySet(t)), "scope": harnessScope},
	})
	cfg.ClientsFile = filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(cfg.ClientsFile, clients, 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, cfg)
}

func TestPatientScopesConfineToTheCompartment(t *testing.T) {
	s := portalServer(t, "patient/*.cruds system/Observation.rs", app.Config{})

	// Two patients and their records, seeded by the harness client.
	put := func(path, body string) {
		t.Helper()
		if r := do(t, http.MethodPut, s.base+"/"+path, []byte(body)); r.status != http.StatusCreated {
			t.Fatalf("seed %s: %d %s", path, r.status, r.body)
		}
	}
	obs := func(id, subject, performer string) string {
		b := `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"text":"x"},"subject":{"reference":"` + subject + `"}`
		if performer != "" {
			b += `,"performer":[{"reference":"` + performer + `"}]`
		}
		return b + "}"
	}
	enc := func(id, subject string) string {
		return `{"resourceType":"Encounter","id":"` + id + `","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"` + subject + `"}}`
	}
	put("Patient/pat-a", `{"resourceType":"Patient","id":"pat-a","name":[{"family":"Alpha"}]}`)
	put("Patient/pat-b", `{"resourceType":"Patient","id":"pat-b","name":[{"family":"Beta"}]}`)
	put("Observation/obs-a1", obs("obs-a1", "Patient/pat-a", ""))
	put("Observation/obs-a2", obs("obs-a2", "Patient/pat-a", ""))
	// In both compartments: its performer is the other patient, whom an
	// _include of the performer must not bring in.
	put("Observation/obs-a3", obs("obs-a3", "Patient/pat-a", "Patient/pat-b"))
	put("Observation/obs-b1", obs("obs-b1", "Patient/pat-b", ""))
	put("Observation/obs-b2", obs("obs-b2", "Patient/pat-b", ""))
	put("Encounter/enc-a", enc("enc-a", "Patient/pat-a"))
	put("Encounter/enc-b", enc("enc-b", "Patient/pat-b"))

	// Discovery says patient/ scopes are supported.
	cfg := do(t, http.MethodGet, s.base+"/.well-known/smart-configuration", nil, noTokenHeader, "1")
	if b := string(cfg.body); !strings.Contains(b, `"patient/*.rs"`) || !strings.Contains(b, `"permission-patient"`) {
		t.Errorf("smart-configuration lacks patient/ scopes: %s", b)
	}

	r := patientToken(t, s, "patient/*.cruds", "pat-a")
	if r.status != http.StatusOK || r.json(t)["patient"] != "pat-a" {
		t.Fatalf("patient token: %d %s", r.status, r.body)
	}
	bearer := "Bearer " + r.json(t)["access_token"].(string)
	get := func(path string) *response {
		t.Helper()
		return do(t, http.MethodGet, s.base+"/"+path, nil, "Authorization", bearer)
	}
	wantStatus := func(r *response, want int, what string) {
		t.Helper()
		if r.status != want {
			t.Errorf("%s: %d %s, want %d", what, r.status, r.body, want)
		}
	}

	// Reads: its own patient and records; the other's are unknown.
	wantStatus(get("Patient/pat-a"), 200, "read own Patient")
	wantStatus(get("Observation/obs-a1"), 200, "read own Observation")
	wantStatus(get("Observation/obs-a1/_history"), 200, "own instance history")
	for _, path := range []string{"Patient/pat-b", "Observation/obs-b1", "Observation/obs-b1/_history/1", "Observation/obs-b1/_history", "Encounter/enc-b"} {
		wantStatus(get(path), 404, "GET "+path)
	}

	// Searches hold the compartment only, before the total and paging,
	// snapshot-paged and keyset-paged alike.
	for path, want := range map[string][]string{
		"Observation?_total=accurate&_count=2": {"obs-a1", "obs-a2", "obs-a3"},
		"Observation?status=final&_count=1":    {"obs-a1", "obs-a2", "obs-a3"},
		"Observation?_count=1":                 {"obs-a1", "obs-a2", "obs-a3"},
		"Encounter?_total=accurate":            {"enc-a"},
		"Patient?_total=accurate":              {"pat-a"},
		"Patient?family=Beta":                  nil,
	} {
		ids, total := searchAll(t, s, path, "Authorization", bearer)
		slices.Sort(ids)
		if !slices.Equal(ids, want) || strings.Contains(path, "_total=accurate") && total != len(want) {
			t.Errorf("%s: %v (total %d), want %v", path, ids, total, want)
		}
	}
	// Includes pass the same filter.
	for _, path := range []string{
		"Observation?_id=obs-a3&_include=Observation:performer",
		"Patient?_revinclude=Observation:subject&_revinclude=Encounter:subject",
		"?_type=Patient,Observation,Encounter",
	} {
		r := get(path)
		wantStatus(r, 200, path)
		for _, p := range entryPaths(t, r) {
			if othersRecord(p) {
				t.Errorf("%s: leaks %s", path, p)
			}
		}
	}

	// Type and system history are refused.
	wantStatus(get("Observation/_history"), 403, "type history")
	wantStatus(get("_history"), 403, "system history")

	// Writes: in the compartment only.
	post := func(path, body string) *response {
		t.Helper()
		return do(t, http.MethodPost, s.base+"/"+path, []byte(body), "Authorization", bearer)
	}
	wantStatus(post("Observation", obs("x", "Patient/pat-b", "")), 403, "create for the other patient")
	wantStatus(post("Observation", obs("x", "Patient/pat-a", "")), 201, "create for its patient")
	wantStatus(do(t, http.MethodPut, s.base+"/Observation/obs-b1", []byte(obs("obs-b1", "Patient/pat-a", "")), "Authorization", bearer), 403, "take over the other's Observation")
	wantStatus(do(t, http.MethodPut, s.base+"/Observation/obs-a1", []byte(obs("obs-a1", "Patient/pat-b", "")), "Authorization", bearer), 403, "hand its Observation to the other")
	wantStatus(do(t, http.MethodDelete, s.base+"/Observation/obs-b1", nil, "Authorization", bearer), 403, "delete the other's Observation")
	wantStatus(post("Patient", `{"resourceType":"Patient"}`), 403, "create another Patient")

	// A transaction with one entry outside the compartment fails whole.
	entry := func(body string) string {
		return `{"resource":` + body + `,"request":{"method":"POST","url":"Observation"}}`
	}
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[` + entry(obs("t1", "Patient/pat-a", "")) + "," + entry(obs("t2", "Patient/pat-b", "")) + `]}`
	wantStatus(do(t, http.MethodPost, s.base, []byte(tx), "Authorization", bearer), 403, "transaction with an entry for the other patient")
	all, _ := searchAll(t, s, "Observation?_count=100") // as the harness client
	if len(all) != 6 {
		t.Errorf("%d Observations stored, want 6 (5 seeded, 1 created): the refused transaction wrote", len(all))
	}
	// A batch GET of the other's record reads as unknown.
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/obs-b1"}}]}`
	if r := do(t, http.MethodPost, s.base, []byte(batch), "Authorization", bearer); r.status != 200 || !strings.Contains(string(r.body), `"404`) {
		t.Errorf("batch GET of the other's Observation: %d %s", r.status, r.body)
	}

	// $everything: its own patient only.
	wantStatus(get("Patient/pat-b/$everything"), 404, "$everything of the other patient")
	r = get("Patient/pat-a/$everything")
	wantStatus(r, 200, "$everything of its patient")
	for _, p := range entryPaths(t, r) {
		if othersRecord(p) {
			t.Errorf("$everything leaks %s", p)
		}
	}

	// system/Observation.rs wins for Observations; Patients stay confined.
	r = patientToken(t, s, "system/Observation.rs patient/Patient.rs", "pat-a")
	if r.status != http.StatusOK {
		t.Fatalf("mixed token: %d %s", r.status, r.body)
	}
	mixed := "Bearer " + r.json(t)["access_token"].(string)
	ids, total := searchAll(t, s, "Observation?_total=accurate", "Authorization", mixed)
	if len(ids) != 6 || total != 6 {
		t.Errorf("mixed token sees %d Observations (total %d), want 6", len(ids), total)
	}
	wantStatus(do(t, http.MethodGet, s.base+"/Observation/obs-b1", nil, "Authorization", mixed), 200, "mixed token reads any Observation")
	wantStatus(do(t, http.MethodGet, s.base+"/Patient/pat-b", nil, "Authorization", mixed), 404, "mixed token reads the other Patient")

	// Without the patient parameter: refused at the token endpoint.
	r = patientToken(t, s, "patient/*.rs", "")
	if r.status != http.StatusBadRequest {
		t.Errorf("patient/ scope with an empty patient: %d %s", r.status, r.body)
	}
}

// othersRecord reports whether path (Type/id) is one of pat-b's records,
// by their ids: server-assigned ids are UUIDs, which can hold "-b1".
func othersRecord(path string) bool {
	switch path[strings.LastIndexByte(path, '/')+1:] {
	case "pat-b", "obs-b1", "obs-b2", "enc-b":
		return true
	}
	return false
}

// TestConfinedVReadFollowsInstanceHistory: for a token confined to a
// patient's compartment, "read, vread and instance history of anything
// else: 404" (README), and instance history lets the resource as it is now
// decide whether it is known at all. An Observation refiled from pat-a to
// pat-b (v1 subject pat-a, v2 subject pat-b) is pat-b's now: its instance
// history is 404 to pat-a's token, and so must be a vread of its versions.
func TestConfinedVReadFollowsInstanceHistory(t *testing.T) {
	s := portalServer(t, "patient/*.rs", app.Config{})
	put := func(path, body string) { seedPut(t, s, path, body) }
	obs := func(subject string) string {
		return `{"resourceType":"Observation","id":"refiled","status":"final","code":{"text":"HIV-1 positive"},"subject":{"reference":"` + subject + `"}}`
	}
	put("Patient/pat-a", `{"resourceType":"Patient","id":"pat-a"}`)
	put("Patient/pat-b", `{"resourceType":"Patient","id":"pat-b"}`)
	put("Observation/refiled", obs("Patient/pat-a")) // v1: misfiled
	put("Observation/refiled", obs("Patient/pat-b")) // v2: corrected

	bearer := patientBearer(t, s, "patient/*.rs", "pat-a")
	get := func(path string) *response {
		return do(t, http.MethodGet, s.base+"/"+path, nil, "Authorization", bearer)
	}
	if r := get("Observation/refiled"); r.status != http.StatusNotFound {
		t.Fatalf("read: %d, want 404", r.status)
	}
	if r := get("Observation/refiled/_history"); r.status != http.StatusNotFound {
		t.Fatalf("instance history: %d, want 404", r.status)
	}
	if r := get("Observation/refiled/_history/1"); r.status != http.StatusNotFound {
		t.Errorf("vread of version 1 of a resource now outside the compartment: %d %s, want 404 as read and instance history answer", r.status, r.body)
	}
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/refiled/_history/1"}}]}`
	if r := do(t, http.MethodPost, s.base, []byte(batch), "Authorization", bearer); r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"404`) {
		t.Errorf("batch vread of version 1 of a resource now outside the compartment: %d %s, want an entry of 404", r.status, r.body)
	}
}

// nextLinkOf is the next link of a searchset answer, "" when none.
func nextLinkOf(t *testing.T, r *response) string {
	t.Helper()
	var b struct {
		Link []struct{ Relation, URL string }
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// A confined token's search pages are a snapshot of ids taken on the first
// page; a resource refiled to another patient after that must not be served
// to it on a later page ("searches (... every page) hold the compartment
// only", README, Patient-scoped tokens).
func TestConfinedSearchPageFollowsCompartment(t *testing.T) {
	s := portalServer(t, "patient/*.rs", app.Config{})
	put := func(path, body string) { seedPut(t, s, path, body) }
	obs := func(id, subject, text string) string {
		return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"text":"` + text + `"},"subject":{"reference":"` + subject + `"}}`
	}
	put("Patient/pat-a", `{"resourceType":"Patient","id":"pat-a"}`)
	put("Patient/pat-b", `{"resourceType":"Patient","id":"pat-b"}`)
	put("Observation/obs-1", obs("obs-1", "Patient/pat-a", "weight"))
	put("Observation/obs-2", obs("obs-2", "Patient/pat-a", "misfiled"))

	bearer := patientBearer(t, s, "patient/*.rs", "pat-a")

	first := do(t, http.MethodGet, s.base+"/Observation?_count=1", nil, "Authorization", bearer)
	if first.status != http.StatusOK {
		t.Fatalf("first page: %d %s", first.status, first.body)
	}
	next := nextLinkOf(t, first)
	if next == "" {
		t.Fatalf("no next link: %s", first.body)
	}
	// obs-2 was misfiled: it is pat-b's, and is corrected with pat-b's result.
	put("Observation/obs-2", obs("obs-2", "Patient/pat-b", "HIV-1 positive"))
	if r := do(t, http.MethodGet, s.base+"/Observation/obs-2", nil, "Authorization", bearer); r.status != http.StatusNotFound {
		t.Fatalf("read of the refiled Observation: %d, want 404", r.status)
	}
	second := do(t, http.MethodGet, next, nil, "Authorization", bearer)
	for _, p := range entryPaths(t, second) {
		if p == "Observation/obs-2" {
			t.Errorf("page 2 serves Observation/obs-2, now Patient/pat-b's, to pat-a's token: %s", second.body)
		}
	}
	if strings.Contains(string(second.body), "HIV-1") {
		t.Errorf("page 2 shows pat-b's result")
	}
}

// The same for $everything: its pages are a snapshot too.
func TestConfinedEverythingPageFollowsCompartment(t *testing.T) {
	s := portalServer(t, "patient/*.rs", app.Config{})
	put := func(path, body string) { seedPut(t, s, path, body) }
	obs := func(id, subject, text string) string {
		return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"text":"` + text + `"},"subject":{"reference":"` + subject + `"}}`
	}
	put("Patient/pat-a", `{"resourceType":"Patient","id":"pat-a"}`)
	put("Patient/pat-b", `{"resourceType":"Patient","id":"pat-b"}`)
	put("Observation/obs-1", obs("obs-1", "Patient/pat-a", "weight"))
	put("Observation/obs-2", obs("obs-2", "Patient/pat-a", "misfiled"))

	bearer := patientBearer(t, s, "patient/*.rs", "pat-a")

	first := do(t, http.MethodGet, s.base+"/Patient/pat-a/$everything?_count=1", nil, "Authorization", bearer)
	if first.status != http.StatusOK {
		t.Fatalf("first page: %d %s", first.status, first.body)
	}
	put("Observation/obs-2", obs("obs-2", "Patient/pat-b", "HIV-1 positive"))
	for next := nextLinkOf(t, first); next != ""; {
		page := do(t, http.MethodGet, next, nil, "Authorization", bearer)
		if page.status != http.StatusOK {
			t.Fatalf("page: %d %s", page.status, page.body)
		}
		if strings.Contains(string(page.body), "HIV-1") {
			t.Errorf("a later $everything page of pat-a shows pat-b's Observation/obs-2 to pat-a's token: %s", page.body)
		}
		next = nextLinkOf(t, page)
	}
}

// A PATCH of another patient's resource by a confined token is a write
// outside the compartment: 403, as for PUT and DELETE, before the patch
// touches the resource. It must not read the resource to the caller: a
// copy into a coded element makes validation quote the value, and a test
// operation answers 403 or 422 depending on what the resource holds.
func TestConfinedPatchOfOthersResourceRevealsNothing(t *testing.T) {
	s := portalServer(t, "patient/*.cruds", app.Config{})
	put := func(path, body string) { seedPut(t, s, path, body) }
	put("Patient/pat-a", `{"resourceType":"Patient","id":"pat-a"}`)
	put("Patient/pat-b", `{"resourceType":"Patient","id":"pat-b"}`)
	put("Observation/obs-b1", `{"resourceType":"Observation","id":"obs-b1","status":"final","code":{"text":"HIV-1 positive"},"subject":{"reference":"Patient/pat-b"}}`)

	bearer := patientBearer(t, s, "patient/*.cruds", "pat-a")
	patch := func(ops string) *response {
		return do(t, http.MethodPatch, s.base+"/Observation/obs-b1", []byte(ops), "Authorization", bearer, "Content-Type", "application/json-patch+json")
	}
	// Copy pat-b's result into a coded element: validation quotes it.
	if r := patch(`[{"op":"copy","from":"/code/text","path":"/status"}]`); r.status != http.StatusForbidden || strings.Contains(string(r.body), "HIV") {
		t.Errorf("copy of pat-b's value: %d %s, want 403 that quotes nothing", r.status, r.body)
	}
	// A test operation as an oracle on pat-b's record.
	yes := patch(`[{"op":"test","path":"/code/text","value":"HIV-1 positive"}]`)
	no := patch(`[{"op":"test","path":"/code/text","value":"HIV-1 negative"}]`)
	if yes.status != no.status || no.status != http.StatusForbidden {
		t.Errorf("test operations on pat-b's Observation: %d when true, %d when false (%s), want 403 both", yes.status, no.status, no.body)
	}
	// If-Match tells the version of a resource it may not know of.
	if r := do(t, http.MethodPatch, s.base+"/Observation/obs-b1", []byte(`[{"op":"add","path":"/status","value":"final"}]`), "Authorization", bearer, "Content-Type", "application/json-patch+json", "If-Match", `W/"7"`); r.status != http.StatusForbidden {
		t.Errorf("PATCH with a stale If-Match: %d %s, want 403", r.status, r.body)
	}
}

// seedPut stores body at path with the harness client's rights (created or
// updated), failing the test otherwise.
func seedPut(t *testing.T, s *server, path, body string) {
	t.Helper()
	if r := do(t, http.MethodPut, s.base+"/"+path, []byte(body)); r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("seed %s: %d %s", path, r.status, r.body)
	}
}

// patientBearer is the Authorization value of a token confined to patient.
func patientBearer(t *testing.T, s *server, scope, patient string) string {
	t.Helper()
	r := patientToken(t, s, scope, patient)
	if r.status != http.StatusOK {
		t.Fatalf("patient token: %d %s", r.status, r.body)
	}
	return "Bearer " + r.json(t)["access_token"].(string)
}
