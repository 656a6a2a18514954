package auth_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"healthhub/auth"
	"healthhub/store"
)

// fuzzServer is an authorization server on a fresh store, with ec-client.
func fuzzServer(f *testing.F) *auth.Server {
	keys(f)
	st, err := store.Open(f.TempDir(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	as, err := auth.New(context.Background(), st, auth.Config{BaseURL: "http://hh.test/fhir", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	if err := as.Clients().Put(context.Background(), auth.Client{ID: "ec-client", JWKS: jwks(f, &ecKey.PublicKey), Scope: "system/*.rs"}); err != nil {
		f.Fatal(err)
	}
	return as
}

// FuzzAssertion: whatever the client_assertion and scope, the token
// endpoint answers with JSON, never panics, and never issues a token for
// input that is not a valid assertion of ec-client.
func FuzzAssertion(f *testing.F) {
	as := fuzzServer(f)
	tokenURL := "http://hh.test/auth/token"
	good := sign(f, jwt.SigningMethodES384, ecKey, kid(f, &ecKey.PublicKey), jwt.MapClaims{"iss": "ec-client", "sub": "ec-client", "aud": tokenURL, "exp": 1, "jti": "x"})
	for _, s := range []string{good, "", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.sig", strings.Repeat("A", 20000)} {
		f.Add(s, "system/Patient.rs")
	}
	h := as.TokenHandler()
	f.Fuzz(func(t *testing.T, assertion, scope string) {
		form := url.Values{
			"grant_type":            {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
			"scope":                 {scope},
		}
		req := httptest.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			t.Fatalf("a token for %q", assertion)
		}
		if !strings.HasPrefix(rec.Body.String(), `{"error":`) {
			t.Fatalf("answer %d %s", rec.Code, rec.Body)
		}
	})
}

// FuzzBearer: whatever the Authorization header, Authenticate refuses it
// without panicking.
func FuzzBearer(f *testing.F) {
	as := fuzzServer(f)
	for _, s := range []string{"Bearer ", "Bearer a.b.c", "bearer eyJhbGciOiJFUzI1NiIsImtpZCI6IngifQ.e30.AAAA", "Basic x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest(http.MethodGet, "/fhir/Patient", nil)
		req.Header["Authorization"] = []string{header}
		if p, err := as.Authenticate(req); err == nil {
			t.Fatalf("%q authenticated as %+v", header, p)
		}
	})
}
