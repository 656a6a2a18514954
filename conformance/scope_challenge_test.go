package conformance_test

import (
	"net/http"
	"strings"
	"testing"
)

// README (Authorization): "A 403 for a missing scope carries
// `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`
// (RFC 6750)." The README also says _has/chains and Bundle entries need
// their scopes "(403 otherwise)".
func TestEvery403ForAMissingScopeHasChallenge(t *testing.T) {
	s, key := authClientServer(t)
	tok, err := labToken(t, s, key, "system/Patient.rs")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, url, body string
	}{
		{"plain search", http.MethodGet, "/Encounter?status=planned", ""},
		{"_has", http.MethodGet, "/Patient?_has:Observation:patient:code=8867-4", ""},
		{"chain", http.MethodGet, "/Patient?general-practitioner:Practitioner.name=x", ""},
		{"transaction entry", http.MethodPost, "", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}},"request":{"method":"POST","url":"Observation"}}]}`},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r := do(t, c.method, s.base+c.url, body, noTokenHeader, "1", "Authorization", "Bearer "+tok)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
			continue
		}
		if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, `error="insufficient_scope"`) {
			t.Errorf("%s: 403 %s\n  WWW-Authenticate %q, want Bearer error=\"insufficient_scope\"", c.name, r.body, ch)
		}
	}
}
