package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"healthhub/store"
)

// retiringKeyServer is a server restarted within the hour after a key
// rotation, with client "c" registered, its clock at *now (t0 at first),
// and the retiring key; bearer signs an access token for "c" with that key,
// issued at *now and expiring after ttl, as whoever holds the key can do.
func retiringKeyServer(t *testing.T) (s *Server, now *time.Time, t0 time.Time, old *signingKey, bearer func(ttl time.Duration, jti string) *http.Request) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 = time.Now()
	clock := t0
	now = &clock
	cfg := Config{BaseURL: "http://hh.test/fhir", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return *now }}
	if s, err = New(context.Background(), st, cfg); err != nil {
		t.Fatal(err)
	}
	oldKid := s.keys.signer.kid
	if _, err := RotateKeys(context.Background(), st, t0); err != nil {
		t.Fatal(err)
	}
	// Restart within the retiring hour.
	if s, err = New(context.Background(), st, cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.clients.Put(context.Background(), Client{ID: "c", JWKSURI: "https://c.example/jwks", Scope: "system/*.rs"}); err != nil {
		t.Fatal(err)
	}
	if old = s.keys.byKID[oldKid]; old == nil || old.retireAt.IsZero() {
		t.Fatalf("the old key is not loaded as retiring")
	}
	bearer = func(ttl time.Duration, jti string) *http.Request {
		claims := accessClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: s.base, Subject: "c", Audience: jwt.ClaimStrings{s.base},
				ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), IssuedAt: jwt.NewNumericDate(*now), ID: jti,
			},
			ClientID: "c", Scope: "system/*.rs",
		}
		tk := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
		tk.Header["kid"] = oldKid
		tok, err := tk.SignedString(old.priv)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("GET", "/fhir/Patient", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}
	return s, now, t0, old, bearer
}

// TestRetiredKeyStopsVerifyingWhileRunning: README says a rotated-out key
// "keeps verifying for an hour (the longest token lifetime) and then goes".
// A server started within that hour must stop accepting tokens signed by
// the retiring key once its retire time has passed, not only after its next
// restart: the key may have been rotated because it leaked.
func TestRetiredKeyStopsVerifyingWhileRunning(t *testing.T) {
	s, now, t0, old, bearer := retiringKeyServer(t)
	// Two hours later, the server still running: a token freshly signed with
	// the old key.
	*now = t0.Add(2 * time.Hour)
	if p, err := s.Authenticate(bearer(5*time.Minute, "x")); err == nil {
		t.Errorf("a token signed at %s by the key retired at %s is accepted (client %s, scopes %v)", now.Format(time.RFC3339), old.retireAt.Format(time.RFC3339), p.Client, p.Scopes)
	}
}

// TestRetiredKeyStopsVerifyingCachedTokens: a token the retiring key signed
// and the server verified (and cached) before the retire time must stop
// working once that time has passed, like one first seen after it: the
// verified-token cache must not outlive the key's retirement.
func TestRetiredKeyStopsVerifyingCachedTokens(t *testing.T) {
	s, now, t0, old, bearer := retiringKeyServer(t)
	// Whoever holds the old key signs a long-lived token while the key
	// still verifies, and uses it once.
	req := bearer(24*time.Hour, "y")
	if _, err := s.Authenticate(req); err != nil {
		t.Fatalf("before the retire time: %v", err)
	}
	*now = t0.Add(2 * time.Hour)
	if p, err := s.Authenticate(req); err == nil {
		t.Errorf("a token signed by the key retired at %s is still accepted at %s from the cache (client %s)", old.retireAt.Format(time.RFC3339), now.Format(time.RFC3339), p.Client)
	}
}
