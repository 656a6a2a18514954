package conformance_test

import (
	"net/http"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// systemBearer is the Authorization value of a token of "portal" (see
// portalServer) with system/ scope, no patient context.
func systemBearer(t *testing.T, s *server, scope string) string {
	t.Helper()
	return patientBearer(t, s, scope, "")
}

// TestWriteOnlyPatchRevealsNothing: a token that may update Observations
// but neither read nor search them (system/Observation.u) must not read
// one through a PATCH: a patch is merged into what is stored, so its
// answer, a test operation (200 or 422) or a copy into a coded element
// (validation quotes the value) would read the resource to the caller
// (README: resources show only with r or s on their type). Such a PATCH is
// 403, alone and as a batch entry, whatever the operations.
func TestWriteOnlyPatchRevealsNothing(t *testing.T) {
	s := portalServer(t, "system/Observation.u", app.Config{})
	seedPut(t, s, "Observation/wo1", `{"resourceType":"Observation","id":"wo1","status":"final","code":{"text":"HIV-1 positive"}}`)
	bearer := systemBearer(t, s, "system/Observation.u")

	if r := do(t, http.MethodGet, s.base+"/Observation/wo1", nil, "Authorization", bearer); r.status != http.StatusForbidden {
		t.Fatalf("read by a write-only token: %d, want 403", r.status)
	}
	for _, ops := range []string{
		`[{"op":"add","path":"/issued","value":"2024-01-01T00:00:00Z"}]`,
		`[{"op":"test","path":"/code/text","value":"HIV-1 positive"}]`,
		`[{"op":"test","path":"/code/text","value":"HIV-1 negative"}]`,
		`[{"op":"copy","from":"/code/text","path":"/status"}]`,
	} {
		r := do(t, http.MethodPatch, s.base+"/Observation/wo1", []byte(ops), "Authorization", bearer, "Content-Type", "application/json-patch+json")
		if r.status != http.StatusForbidden || strings.Contains(string(r.body), "HIV") {
			t.Errorf("PATCH %s by system/Observation.u: %d %s, want 403 that quotes nothing", ops, r.status, r.body)
		}
	}
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"PATCH","url":"Observation/wo1"},
		"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` +
		"W3sib3AiOiJhZGQiLCJwYXRoIjoiL2lzc3VlZCIsInZhbHVlIjoiMjAyNC0wMS0wMlQwMDowMDowMFoifV0=" + `"}}]}`
	r := do(t, http.MethodPost, s.base, []byte(batch), "Authorization", bearer)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"403`) || strings.Contains(string(r.body), "HIV") {
		t.Errorf("batch PATCH by system/Observation.u: %d %s, want its entry 403", r.status, r.body)
	}
}
