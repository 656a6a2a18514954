package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestExpiredKeysFailingJWKSURINotFetchedPerRequest: once the cached
// keys of a jwks_uri client are older than jwksTTL and its key server is
// down, the failed-fetch back-off (kc.failed) is skipped because keys are
// cached (kc.keys != nil) and refresh is false, so every token request
// fetches the jwks_uri again (under kc.mu, up to the 5 s client timeout
// each), the behaviour eaa3ed6 meant to end.
func TestExpiredKeysFailingJWKSURINotFetchedPerRequest(t *testing.T) {
	ctx := context.Background()
	set, _ := newKeySet(t)
	var down atomic.Bool
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(set)
	}))
	defer srv.Close()
	r := testRegistry(t)
	c := Client{ID: "partner", JWKSURI: srv.URL + "/jwks", Scope: "system/*.rs"}
	if err := r.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := r.clientKeys(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	// The keys age past jwksTTL; the key server goes down.
	r.mu.Lock()
	kc := r.keys[c.ID]
	r.mu.Unlock()
	kc.mu.Lock()
	kc.fetched = time.Now().Add(-jwksTTL - time.Minute)
	kc.mu.Unlock()
	down.Store(true)
	fetches.Store(0)
	for range 20 {
		_, _ = r.clientKeys(ctx, c, false)
	}
	if n := fetches.Load(); n > 2 {
		t.Errorf("20 token requests with expired keys and a failing jwks_uri made %d fetches", n)
	}
}
