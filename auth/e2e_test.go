package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"healthhub/auth"
	"healthhub/store"
)

// Keys are made once per test binary: RSA generation is slow.
var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey // P-384
	ec256Key *ecdsa.PrivateKey // P-256
	otherEC  *ecdsa.PrivateKey // P-384, registered to nobody
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		if otherEC, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		if ec256Key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

// clock is a settable time for the server under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is an authorization server over a real store, served over HTTP, with
// a protected endpoint standing for the FHIR API.
type env struct {
	t     testing.TB
	dir   string
	st    *store.Bolt
	as    *auth.Server
	srv   *httptest.Server
	root  string
	clock *clock
}

const protectedPath = "/fhir/Patient"

// newEnv starts a server on dir ("" for a new one) with clients
// rsa-client (RSA key), ec-client (EC P-384 key), both allowed
// system/Patient.rs system/Observation.cruds, and disabled-client.
func newEnv(t testing.TB, dir string) *env { return newEnvAt(t, dir, "") }

// newEnvAt serves on addr ("" for any port): a restart on the same data
// directory and address is the same server to its clients.
func newEnvAt(t testing.TB, dir, addr string) *env {
	t.Helper()
	keys(t)
	if dir == "" {
		dir = t.TempDir()
	}
	e := &env{t: t, dir: dir, clock: &clock{t: time.Now()}}
	var handler http.Handler = http.NotFoundHandler()
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	if addr != "" {
		e.srv.Listener.Close()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		e.srv.Listener = ln
	}
	e.root = "http://" + e.srv.Listener.Addr().String()
	var err error
	if e.st, err = store.Open(dir, store.Options{}); err != nil {
		t.Fatal(err)
	}
	e.as, err = auth.New(context.Background(), e.st, auth.Config{
		BaseURL: e.root + "/fhir",
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:     e.clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.as.Clients().List()) == 0 {
		e.register(auth.Client{ID: "rsa-client", JWKS: jwks(t, &rsaKey.PublicKey), Scope: "system/Patient.rs system/Observation.cruds", Organization: "Organization/a"})
		e.register(auth.Client{ID: "ec-client", JWKS: jwks(t, &ecKey.PublicKey), Scope: "system/Patient.rs system/Observation.cruds"})
		e.register(auth.Client{ID: "ec256-client", JWKS: jwks(t, &ec256Key.PublicKey), Scope: "system/Patient.rs system/Observation.cruds"})
		e.register(auth.Client{ID: "disabled-client", JWKS: jwks(t, &ecKey.PublicKey), Scope: "system/*.rs", Disabled: true})
	}
	mux := http.NewServeMux()
	mux.Handle("POST /auth/token", e.as.TokenHandler())
	mux.Handle("POST /auth/introspect", e.as.IntrospectHandler())
	mux.Handle("GET /auth/jwks", e.as.JWKSHandler())
	mux.HandleFunc("GET "+protectedPath, func(w http.ResponseWriter, r *http.Request) {
		p, err := e.as.Authenticate(r)
		var te *auth.TokenError
		switch {
		case errors.As(err, &te):
			w.Header().Set("WWW-Authenticate", te.Challenge())
			http.Error(w, te.Description, http.StatusUnauthorized)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		case !p.Allows("Patient", auth.PermRead):
			http.Error(w, auth.Needed("Patient", auth.PermRead), http.StatusForbidden)
		default:
			_ = json.NewEncoder(w).Encode(p)
		}
	})
	handler = mux
	e.srv.Start()
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		e.st.Close()
		e.srv = nil
	}
}

func (e *env) register(c auth.Client) {
	e.t.Helper()
	if err := e.as.Clients().Put(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) tokenURL() string { return e.root + "/auth/token" }

func jwks(t testing.TB, pubs ...crypto.PublicKey) json.RawMessage {
	t.Helper()
	b, err := auth.KeySet(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kid(t testing.TB, pub crypto.PublicKey) string {
	k, err := auth.PublicJWK(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	return k.Kid
}

// assertion builds claims for client: valid unless mod changes them.
func (e *env) claims(client string) jwt.MapClaims {
	now := e.clock.now()
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	return jwt.MapClaims{
		"iss": client, "sub": client, "aud": e.tokenURL(),
		"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(),
		"jti": url.QueryEscape(string(jti[:])),
	}
}

func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenResult is a token endpoint answer.
type tokenResult struct {
	status int
	body   map[string]any
}

func (r tokenResult) errCode() string { s, _ := r.body["error"].(string); return s }
func (r tokenResult) token() string   { s, _ := r.body["access_token"].(string); return s }

func (e *env) postToken(form url.Values) tokenResult {
	e.t.Helper()
	resp, err := http.PostForm(e.tokenURL(), form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		e.t.Fatalf("token answer is not JSON: %v", err)
	}
	return tokenResult{resp.StatusCode, m}
}

func (e *env) requestToken(assertion, scope string) tokenResult {
	return e.postToken(url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	})
}

// get calls the protected endpoint with token ("" sends none).
func (e *env) get(token string) (int, http.Header, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.root+protectedPath, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func wantOAuthError(t *testing.T, r tokenResult, status int, code string) {
	t.Helper()
	if r.status != status || r.errCode() != code {
		t.Fatalf("got %d %v, want %d %s", r.status, r.body, status, code)
	}
	if r.token() != "" {
		t.Fatal("an error answer carries an access token")
	}
}

func TestTokenIssuedAndUsed(t *testing.T) {
	e := newEnv(t, "")
	cases := []struct {
		name, client string
		method       jwt.SigningMethod
		key          crypto.Signer
	}{
		{"RS384", "rsa-client", jwt.SigningMethodRS384, rsaKey},
		{"ES384", "ec-client", jwt.SigningMethodES384, ecKey},
		{"RS256", "rsa-client", jwt.SigningMethodRS256, rsaKey},
		{"ES256", "ec256-client", jwt.SigningMethodES256, ec256Key},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := sign(t, c.method, c.key, kid(t, c.key.Public()), e.claims(c.client))
			r := e.requestToken(a, "system/Patient.read system/Observation.rs")
			if r.status != http.StatusOK || r.token() == "" {
				t.Fatalf("token: %d %v", r.status, r.body)
			}
			if r.body["token_type"] != "bearer" || r.body["expires_in"] != float64(300) {
				t.Errorf("token_type/expires_in: %v", r.body)
			}
			if got := r.body["scope"]; got != "system/Patient.read system/Observation.rs" {
				t.Errorf("scope: got %v", got)
			}
			status, _, body := e.get(r.token())
			if status != http.StatusOK {
				t.Fatalf("protected read: %d %s", status, body)
			}
			var p auth.Principal
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.Client != c.client || p.PurposeOfUse != "TREAT" {
				t.Errorf("principal: %s", body)
			}
		})
	}
}

func TestIntrospect(t *testing.T) {
	e := newEnv(t, "")
	tok := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs").token()
	introspect := func(caller, token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.root+"/auth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if caller != "" {
			req.Header.Set("Authorization", "Bearer "+caller)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status, m := introspect(tok, tok)
	if status != http.StatusOK || m["active"] != true || m["client_id"] != "ec-client" || m["scope"] != "system/Patient.rs" || m["exp"] == nil {
		t.Errorf("active token: %d %v", status, m)
	}
	if status, m = introspect(tok, "garbage"); status != http.StatusOK || m["active"] != false || len(m) != 1 {
		t.Errorf("bad token: %d %v", status, m)
	}
	if status, _ = introspect("", tok); status != http.StatusUnauthorized {
		t.Errorf("unauthenticated introspection: %d, want 401", status)
	}
}

func TestRejectExpiredAssertion(t *testing.T) {
	e := newEnv(t, "")
	c := e.claims("ec-client")
	c["exp"] = e.clock.now().Add(-time.Minute).Unix()
	wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), c), "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectAssertionExpTooFarAhead(t *testing.T) {
	e := newEnv(t, "")
	c := e.claims("ec-client")
	c["exp"] = e.clock.now().Add(10 * time.Minute).Unix()
	wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), c), "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectWrongAudience(t *testing.T) {
	e := newEnv(t, "")
	c := e.claims("ec-client")
	c["aud"] = e.root + "/fhir"
	wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), c), "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectIssNotSub(t *testing.T) {
	e := newEnv(t, "")
	c := e.claims("ec-client")
	c["sub"] = "rsa-client"
	wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), c), "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectReplayedJTI(t *testing.T) {
	e := newEnv(t, "")
	a := sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client"))
	if r := e.requestToken(a, "system/Patient.rs"); r.status != http.StatusOK {
		t.Fatalf("first use: %d %v", r.status, r.body)
	}
	wantOAuthError(t, e.requestToken(a, "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectReplayedJTIAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	a := sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client"))
	if r := e.requestToken(a, "system/Patient.rs"); r.status != http.StatusOK {
		t.Fatalf("first use: %d %v", r.status, r.body)
	}
	addr := e.srv.Listener.Addr().String()
	e.close()
	e2 := newEnvAt(t, dir, addr)
	wantOAuthError(t, e2.requestToken(a, "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectUnknownClient(t *testing.T) {
	e := newEnv(t, "")
	wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("nobody")), "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectDisabledClient(t *testing.T) {
	e := newEnv(t, "")
	wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("disabled-client")), "system/Patient.rs"), 401, "invalid_client")
}

// TestRefusalsDoNotTellWhoIsRegistered: the token endpoint answers an
// assertion of an unknown client as it answers one of a registered
// client that is disabled, or signed with a key the client does not hold,
// or pointing at another jku: an unauthenticated caller cannot learn
// which clients exist. (The reason goes to the server's log.)
func TestRefusalsDoNotTellWhoIsRegistered(t *testing.T) {
	e := newEnv(t, "")
	answers := map[string]tokenResult{
		"unknown client":         e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("nobody")), "system/Patient.rs"),
		"disabled client":        e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("disabled-client")), "system/Patient.rs"),
		"a key not the client's": e.requestToken(sign(t, jwt.SigningMethodES384, otherEC, kid(t, &otherEC.PublicKey), e.claims("ec-client")), "system/Patient.rs"),
		// The client's kid is its public key's thumbprint, which anyone
		// who has seen its JWK Set can compute.
		"the client's kid, another key's signature": e.requestToken(sign(t, jwt.SigningMethodES384, otherEC, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs"),
		"another jku": e.requestToken(foreignJKUAssertion(t, e), "system/Patient.rs"),
	}
	want := answers["unknown client"]
	for name, r := range answers {
		wantOAuthError(t, r, 401, "invalid_client")
		if r.body["error_description"] != want.body["error_description"] {
			t.Errorf("%s: %q, unknown client: %q", name, r.body["error_description"], want.body["error_description"])
		}
	}
}

// TestRejectAssertionIssuedInTheFuture: an assertion whose iat is ahead
// of the server's clock by more than the allowed skew is refused.
func TestRejectAssertionIssuedInTheFuture(t *testing.T) {
	e := newEnv(t, "")
	c := e.claims("ec-client")
	c["iat"] = e.clock.now().Add(10 * time.Minute).Unix()
	c["exp"] = e.clock.now().Add(4 * time.Minute).Unix()
	wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), c), "system/Patient.rs"), 401, "invalid_client")
	// Within the skew it is accepted: clocks differ a little.
	c = e.claims("ec-client")
	c["iat"] = e.clock.now().Add(5 * time.Second).Unix() // the server allows 15 s
	if r := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), c), "system/Patient.rs"); r.token() == "" {
		t.Errorf("iat half the skew ahead: %d %v, want a token", r.status, r.body)
	}
}

func TestDisablingAClientInvalidatesItsTokens(t *testing.T) {
	e := newEnv(t, "")
	tok := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs").token()
	if err := e.as.Clients().SetDisabled(context.Background(), "ec-client", true); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.get(tok); status != http.StatusUnauthorized {
		t.Fatalf("token of a disabled client: %d, want 401", status)
	}
}

func TestRejectKeyNotTheClients(t *testing.T) {
	e := newEnv(t, "")
	cases := map[string]string{
		"own kid":           kid(t, &otherEC.PublicKey),
		"the client's kid":  kid(t, &ecKey.PublicKey),
		"another's RSA kid": kid(t, &rsaKey.PublicKey),
	}
	for name, k := range cases {
		t.Run(name, func(t *testing.T) {
			wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, otherEC, k, e.claims("ec-client")), "system/Patient.rs"), 401, "invalid_client")
		})
	}
	// Another registered client's key, signing as ec-client.
	t.Run("another client's key", func(t *testing.T) {
		wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodRS384, rsaKey, kid(t, &rsaKey.PublicKey), e.claims("ec-client")), "system/Patient.rs"), 401, "invalid_client")
	})
	// The client's own key with an alg that does not fit it.
	t.Run("alg does not fit the key", func(t *testing.T) {
		wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES256, ec256Key, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs"), 401, "invalid_client")
	})
}

func TestRejectMissingKid(t *testing.T) {
	e := newEnv(t, "")
	wantOAuthError(t, e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, "", e.claims("ec-client")), "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectAlgNone(t *testing.T) {
	e := newEnv(t, "")
	a := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid(t, &ecKey.PublicKey), e.claims("ec-client"))
	wantOAuthError(t, e.requestToken(a, "system/Patient.rs"), 401, "invalid_client")
}

func TestRejectHS256WithPublicKeyAsSecret(t *testing.T) {
	e := newEnv(t, "")
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"PEM": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"DER": der,
		"JWK": jwks(t, &rsaKey.PublicKey),
	}
	for name, secret := range secrets {
		t.Run(name, func(t *testing.T) {
			a := sign(t, jwt.SigningMethodHS256, secret, kid(t, &rsaKey.PublicKey), e.claims("rsa-client"))
			wantOAuthError(t, e.requestToken(a, "system/Patient.rs"), 401, "invalid_client")
		})
	}
}

// foreignJKUAssertion is ec-client's assertion, signed with its key, whose
// header points at a jku the client did not register.
func foreignJKUAssertion(t *testing.T, e *env) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES384, e.claims("ec-client"))
	tok.Header["kid"] = kid(t, &ecKey.PublicKey)
	tok.Header["jku"] = "https://attacker.example/jwks"
	a, err := tok.SignedString(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRejectJKUNotRegistered(t *testing.T) {
	e := newEnv(t, "")
	wantOAuthError(t, e.requestToken(foreignJKUAssertion(t, e), "system/Patient.rs"), 401, "invalid_client")
}

func TestJWKSURIFetchedAndCached(t *testing.T) {
	e := newEnv(t, "")
	var fetches int
	var mu sync.Mutex
	keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetches++
		mu.Unlock()
		_, _ = w.Write(jwks(t, &otherEC.PublicKey))
	}))
	defer keySrv.Close()
	e.register(auth.Client{ID: "uri-client", JWKSURI: keySrv.URL + "/jwks", Scope: "system/*.rs"})
	for i := range 3 {
		tok := jwt.NewWithClaims(jwt.SigningMethodES384, e.claims("uri-client"))
		tok.Header["kid"] = kid(t, &otherEC.PublicKey)
		if i == 2 {
			tok.Header["jku"] = keySrv.URL + "/jwks" // the registered URL: fine
		}
		a, err := tok.SignedString(otherEC)
		if err != nil {
			t.Fatal(err)
		}
		if r := e.requestToken(a, "system/Patient.rs"); r.status != http.StatusOK {
			t.Fatalf("request %d: %d %v", i, r.status, r.body)
		}
	}
	if fetches != 1 {
		t.Errorf("jwks_uri fetched %d times, want 1 (cached)", fetches)
	}
}

func TestRejectTokenFromAnotherServer(t *testing.T) {
	e := newEnv(t, "")
	other := newEnv(t, "") // its own data directory, so its own key
	// The other server's token, re-issued with this server's base as
	// issuer and audience would need this server's key; its own token
	// fails on kid/signature and issuer alike.
	tok := other.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), other.claims("ec-client")), "system/Patient.rs").token()
	if tok == "" {
		t.Fatal("no token from the other server")
	}
	status, h, _ := e.get(tok)
	if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("another server's token: %d %q", status, h.Get("WWW-Authenticate"))
	}
	// A token signed by a key not ours but claiming our issuer.
	forged := sign(t, jwt.SigningMethodES384, otherEC, "whatever", jwt.MapClaims{
		"iss": e.root + "/fhir", "aud": e.root + "/fhir", "sub": "ec-client", "client_id": "ec-client",
		"scope": "system/*.cruds", "exp": time.Now().Add(time.Minute).Unix(),
	})
	if status, _, _ := e.get(forged); status != http.StatusUnauthorized {
		t.Fatalf("forged token: %d, want 401", status)
	}
	// Signed with another key under our own key's kid.
	ours := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs").token()
	parsed, _, err := jwt.NewParser().ParseUnverified(ours, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrongKey := sign(t, jwt.SigningMethodES256, p256, parsed.Header["kid"].(string), parsed.Claims.(jwt.MapClaims))
	if status, _, _ := e.get(wrongKey); status != http.StatusUnauthorized {
		t.Fatalf("our kid, another key: %d, want 401", status)
	}
	// Our token with one byte of its signature changed.
	tampered := ours[:len(ours)-3] + map[bool]string{true: "A", false: "B"}[ours[len(ours)-3] != 'A'] + ours[len(ours)-2:]
	if status, _, _ := e.get(tampered); status != http.StatusUnauthorized {
		t.Fatalf("tampered token: %d, want 401", status)
	}
}

func TestRejectExpiredAccessToken(t *testing.T) {
	e := newEnv(t, "")
	tok := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs").token()
	if status, _, _ := e.get(tok); status != http.StatusOK {
		t.Fatalf("fresh token: %d", status)
	}
	e.clock.add(6 * time.Minute) // past the 5 minutes and the skew; the cached verification too
	status, h, body := e.get(tok)
	if status != http.StatusUnauthorized || !strings.Contains(body, "expired") || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("expired token: %d %q %s", status, h.Get("WWW-Authenticate"), body)
	}
}

func TestRejectScopeNotAllowed(t *testing.T) {
	e := newEnv(t, "")
	a := sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client"))
	wantOAuthError(t, e.requestToken(a, "system/Encounter.rs"), 400, "invalid_scope")
}

func TestRejectUserAndQueryScopes(t *testing.T) {
	e := newEnv(t, "")
	e.register(auth.Client{ID: "pat-client", JWKS: jwks(t, &ecKey.PublicKey), Scope: "patient/*.rs user/*.rs system/*.rs"})
	for _, scope := range []string{"user/Patient.read", "system/Observation.rs?category=laboratory", "patient/Observation.rs?category=laboratory"} {
		a := sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("pat-client"))
		wantOAuthError(t, e.patientToken(a, scope, "p1"), 400, "invalid_scope")
	}
}

// patientToken asks for scope with the patient form parameter (omitted
// when patient is "-").
func (e *env) patientToken(assertion, scope, patient string) tokenResult {
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	}
	if patient != "-" {
		form.Set("patient", patient)
	}
	return e.postToken(form)
}

func TestPatientScopes(t *testing.T) {
	e := newEnv(t, "")
	e.register(auth.Client{ID: "pat-client", JWKS: jwks(t, &ecKey.PublicKey), Scope: "patient/*.rs patient/Observation.c system/Observation.rs"})
	assertion := func() string {
		return sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("pat-client"))
	}

	r := e.patientToken(assertion(), "patient/Patient.rs patient/Observation.cruds", "p-1.a")
	if r.status != http.StatusOK || r.body["patient"] != "p-1.a" || r.body["scope"] != "patient/Patient.rs patient/Observation.crs" {
		t.Fatalf("patient token: %d %v", r.status, r.body)
	}
	status, _, body := e.get(r.token())
	var p auth.Principal
	if status != http.StatusOK || json.Unmarshal([]byte(body), &p) != nil || p.Patient != "p-1.a" || !p.Confined("Patient") || p.Confined("Encounter") {
		t.Fatalf("principal of a patient token: %d %s", status, body)
	}
	// v1 names, and system/ granted beside patient/.
	r = e.patientToken(assertion(), "patient/*.read system/Observation.read", "p1")
	if r.status != http.StatusOK || r.body["scope"] != "patient/*.read system/Observation.read" {
		t.Fatalf("v1 patient token: %d %v", r.status, r.body)
	}

	// patient/ scopes without a patient: nothing to confine them to.
	r = e.patientToken(assertion(), "patient/Observation.rs", "-")
	wantOAuthError(t, r, 400, "invalid_scope")
	if d, _ := r.body["error_description"].(string); !strings.Contains(d, "patient=") {
		t.Errorf("error_description does not say the patient is missing: %q", d)
	}
	// An id that is not a FHIR id, or an empty one.
	for _, bad := range []string{"", "a/b", "../x", strings.Repeat("x", 65), "p 1"} {
		wantOAuthError(t, e.patientToken(assertion(), "patient/Observation.rs", bad), 400, "invalid_request")
	}
	// A patient, but no patient/ scope granted.
	wantOAuthError(t, e.patientToken(assertion(), "system/Observation.rs", "p1"), 400, "invalid_request")
	// A client not allowed patient/ scopes (allowed system/ ones).
	a := sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client"))
	wantOAuthError(t, e.patientToken(a, "patient/Patient.rs", "p1"), 400, "invalid_scope")
}

func TestIntrospectShowsPatient(t *testing.T) {
	e := newEnv(t, "")
	e.register(auth.Client{ID: "pat-client", JWKS: jwks(t, &ecKey.PublicKey), Scope: "patient/*.rs"})
	tok := e.patientToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("pat-client")), "patient/Patient.rs", "p1").token()
	other := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs").token()
	req, _ := http.NewRequest(http.MethodPost, e.root+"/auth/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+other)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if m["active"] != true || m["patient"] != "p1" || m["scope"] != "patient/Patient.rs" {
		t.Fatalf("introspection of a patient token: %v", m)
	}
}

func TestNarrowedScopeIsReported(t *testing.T) {
	e := newEnv(t, "")
	a := sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client"))
	r := e.requestToken(a, "system/Patient.cruds system/Encounter.rs")
	if r.status != http.StatusOK || r.body["scope"] != "system/Patient.rs" {
		t.Fatalf("got %d %v, want system/Patient.rs", r.status, r.body)
	}
}

func TestMissingBearer(t *testing.T) {
	e := newEnv(t, "")
	status, h, _ := e.get("")
	if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %q", status, h.Get("WWW-Authenticate"))
	}
}

func TestMissingScope(t *testing.T) {
	e := newEnv(t, "")
	tok := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Observation.rs").token()
	status, _, body := e.get(tok)
	if status != http.StatusForbidden || !strings.Contains(body, "system/Patient.r") {
		t.Fatalf("missing scope: %d %s", status, body)
	}
}

func TestTokenEndpointBadRequests(t *testing.T) {
	e := newEnv(t, "")
	good := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {"x.y.z"},
		"scope":                 {"system/Patient.rs"},
	}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"no grant_type", with("grant_type", ""), 400, "invalid_request"},
		{"authorization_code", with("grant_type", "authorization_code"), 400, "unsupported_grant_type"},
		{"wrong assertion type", with("client_assertion_type", "urn:other"), 400, "invalid_request"},
		{"no assertion", with("client_assertion", ""), 400, "invalid_request"},
		{"malformed assertion", good, 401, "invalid_client"},
		{"repeated parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}}, 400, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantOAuthError(t, e.postToken(c.form), c.status, c.code) })
	}
}

func TestRotationKeepsOldTokensValid(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir)
	old := e.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e.claims("ec-client")), "system/Patient.rs").token()
	addr := e.srv.Listener.Addr().String()
	e.close()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	newKid, err := auth.RotateKeys(context.Background(), st, time.Now())
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnvAt(t, dir, addr)
	if status, _, body := e2.get(old); status != http.StatusOK {
		t.Errorf("token of the rotated-out key: %d %s", status, body)
	}
	fresh := e2.requestToken(sign(t, jwt.SigningMethodES384, ecKey, kid(t, &ecKey.PublicKey), e2.claims("ec-client")), "system/Patient.rs").token()
	freshTok, _, err := jwt.NewParser().ParseUnverified(fresh, jwt.MapClaims{})
	if err != nil || freshTok.Header["kid"] != newKid {
		t.Errorf("new tokens are signed with %v, want the new key %s", freshTok.Header["kid"], newKid)
	}
	resp, err := http.Get(e2.root + "/auth/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set auth.JWKS
	_ = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if len(set.Keys) != 2 {
		t.Fatalf("after rotation the JWKS has %d keys, want 2 (new and retiring)", len(set.Keys))
	}
	e2.close()

	// Once the retiring key's tokens have all expired, it goes.
	st, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	as, err := auth.New(context.Background(), st, auth.Config{BaseURL: "http://" + addr + "/fhir", Now: func() time.Time { return time.Now().Add(auth.MaxTokenLifetime + time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	as.JWKSHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/auth/jwks", nil))
	set = auth.JWKS{}
	_ = json.Unmarshal(rec.Body.Bytes(), &set)
	if len(set.Keys) != 1 || set.Keys[0].Kid != newKid {
		t.Errorf("after the retiring period: %v, want only %s", set.Keys, newKid)
	}
}
