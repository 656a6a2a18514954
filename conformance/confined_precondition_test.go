package conformance_test

import (
	"net/http"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// TestConfinedPreconditionRevealsNothing: an update or delete by a token
// confined to pat-a, of pat-b's Observation, is 403 whatever If-Match or
// If-None-Match says: a 412 would tell the caller that the resource
// exists and which version it is at (README: writes outside the
// compartment are 403; a PATCH is, TestConfinedPatchOfOthersResourceRevealsNothing).
func TestConfinedPreconditionRevealsNothing(t *testing.T) {
	s := portalServer(t, "patient/*.cruds", app.Config{})
	seedPut(t, s, "Patient/pat-a", `{"resourceType":"Patient","id":"pat-a"}`)
	seedPut(t, s, "Patient/pat-b", `{"resourceType":"Patient","id":"pat-b"}`)
	seedPut(t, s, "Observation/obs-b1", `{"resourceType":"Observation","id":"obs-b1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat-b"}}`)
	bearer := patientBearer(t, s, "patient/*.cruds", "pat-a")
	mine := []byte(`{"resourceType":"Observation","id":"obs-b1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat-a"}}`)

	for _, c := range []struct {
		method string
		body   []byte
		h      []string
	}{
		{http.MethodPut, mine, []string{"If-Match", `W/"7"`}},
		{http.MethodPut, mine, []string{"If-None-Match", "*"}},
		{http.MethodDelete, nil, []string{"If-Match", `W/"7"`}},
	} {
		r := do(t, c.method, s.base+"/Observation/obs-b1", c.body, append([]string{"Authorization", bearer}, c.h...)...)
		if r.status != http.StatusForbidden {
			t.Errorf("%s of pat-b's Observation with %s: %s: %d %s, want 403", c.method, c.h[0], c.h[1], r.status, r.body)
		}
	}
}
