package auth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"healthhub/auth"
)

// tokenForm is a valid token request for assertion.
func tokenForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	}
}

func (e *env) rawToken(form url.Values, header ...string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.tokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// RFC 6749 §5.1: a response containing tokens MUST carry
// Cache-Control: no-store and Pragma: no-cache.
func TestTokenResponseHasPragmaNoCache(t *testing.T) {
	e := newEnv(t, "")
	a := sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client"))
	resp := e.rawToken(tokenForm(a, "system/Patient.rs"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	if cc, pr := resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"); cc != "no-store" || pr != "no-cache" {
		t.Errorf("token response: Cache-Control %q, Pragma %q; want no-store and no-cache (RFC 6749 §5.1)", cc, pr)
	}
}

// RFC 6749 §5.2 invalid_client: "If the client attempted to authenticate
// via the "Authorization" request header field, the authorization server
// MUST respond with an HTTP 401 (Unauthorized) status code and include the
// "WWW-Authenticate" response header field matching the authentication
// scheme used by the client."
func TestTokenEndpointBasicAuthIs401(t *testing.T) {
	e := newEnv(t, "")
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"}}
	resp := e.rawToken(form, "Authorization", "Basic ZWMtY2xpZW50OnNlY3JldA==") // ec-client:secret
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("client_secret_basic attempt: %d %v WWW-Authenticate %q; want 401 invalid_client with a Basic challenge", resp.StatusCode, m, resp.Header.Get("WWW-Authenticate"))
	}
}

// RFC 9110 §8.3.1: media type and subtype are case-insensitive.
func TestTokenContentTypeCaseInsensitive(t *testing.T) {
	e := newEnv(t, "")
	a := sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client"))
	resp := e.rawToken(tokenForm(a, "system/Patient.rs"), "Content-Type", "Application/X-WWW-Form-URLEncoded; charset=UTF-8")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		t.Errorf("form with a mixed-case Content-Type: %d %v, want 200", resp.StatusCode, m)
	}
}

// RFC 7662 §2.2: active is true only for a token "within its given time
// window of validity (e.g., after its issuance time and before its
// expiration time)".
func TestIntrospectExpiredTokenInactive(t *testing.T) {
	e := newEnv(t, "")
	caller := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs").token()
	tok := e.requestToken(sign(t, jwt.SigningMethodRS384, rsaKey, kid(t, &rsaKey.PublicKey), e.claims("rsa-client")), "system/Patient.rs").token()
	if caller == "" || tok == "" {
		t.Fatal("no tokens")
	}
	e.clock.add(auth.DefaultTokenLifetime + 5*time.Second) // tok (and caller) expired 5 s ago
	// the caller authenticates with a fresh token
	caller = e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs").token()
	req, _ := http.NewRequest(http.MethodPost, e.root+"/auth/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+caller)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if m["active"] != false {
		exp, _ := m["exp"].(float64)
		t.Errorf("introspection of a token that expired 5 s ago: %v (exp %d < now %d)", m, int64(exp), e.clock.now().Unix())
	}
}

// jwks_uri caching (client.go: "a stream of bad kids does not become a
// stream of fetches"): while the client's key server fails, every
// unauthenticated token request naming the client makes the server fetch
// its jwks_uri again: no negative caching, no jwksMinRefetch.
func TestFailingJWKSURIIsNotFetchedPerRequest(t *testing.T) {
	e := newEnv(t, "")
	var mu sync.Mutex
	fetches := 0
	keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetches++
		mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer keySrv.Close()
	e.register(auth.Client{ID: "uri-client", JWKSURI: keySrv.URL + "/jwks", Scope: "system/*.rs"})
	const n = 20
	for range n {
		// Anyone can send this: signed by a key of nobody's.
		a := sign(t, jwt.SigningMethodES384, otherEC, "any-kid", e.claims("uri-client"))
		if r := e.requestToken(a, "system/Patient.rs"); r.status != http.StatusUnauthorized {
			t.Fatalf("%d %v", r.status, r.body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches > 2 {
		t.Errorf("%d unauthenticated token requests made %d fetches of the client's jwks_uri", n, fetches)
	}
}
