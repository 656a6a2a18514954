package conformance_test

import (
	"net/http"
	"strings"
	"testing"
)

// RFC 6750 §3: "If the protected resource request does not include
// authentication credentials or does not contain an access token that
// enables access to the protected resource, the resource server MUST
// include the HTTP "WWW-Authenticate" response header field"; §3.1
// insufficient_scope (403). A token without the scope gets a 403 with no
// challenge.
func TestInsufficientScopeHasChallenge(t *testing.T) {
	s, key := authClientServer(t)
	tok, err := labToken(t, s, key, "system/Patient.rs")
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, http.MethodGet, s.base+"/Encounter?status=planned", nil, noTokenHeader, "1", "Authorization", "Bearer "+tok)
	if r.status != http.StatusForbidden {
		t.Fatalf("search without the scope: %d %s", r.status, r.body)
	}
	if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, `error="insufficient_scope"`) {
		t.Errorf("403 for a missing scope: WWW-Authenticate %q, want Bearer error=\"insufficient_scope\"", ch)
	}
}
