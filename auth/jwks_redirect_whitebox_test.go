package auth

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// checkJWKSURI admits https only (plain http for loopback hosts): the
// client's keys must not travel where a network attacker can replace
// them. A redirect from the registered https jwks_uri to plain http on
// another host is followed all the same, and the keys fetched there are
// used to authenticate the client.
func TestJWKSURIRedirectToPlainHTTPIsRefused(t *testing.T) {
	ctx := context.Background()
	set, kid := newKeySet(t)
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		_, _ = w.Write(set)
	}))
	defer plain.Close()
	const insecure = "http://keys.partner.example/jwks" // not loopback: refused as a jwks_uri
	if err := checkJWKSURI(insecure); err == nil {
		t.Fatalf("checkJWKSURI(%s) accepted", insecure)
	}
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, insecure, http.StatusFound)
	}))
	defer secure.Close()

	r := testRegistry(t)
	// Trust the test CA, and resolve keys.partner.example to the plain
	// server: what DNS would do for a real host. The client's redirect
	// policy (r.http.CheckRedirect) is the registry's own.
	tr := secure.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "keys.partner.example:80" {
			addr = plain.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	r.http.Transport = tr

	c := Client{ID: "partner", JWKSURI: secure.URL + "/jwks", Scope: "system/*.rs"}
	if err := r.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
	keys, err := r.clientKeys(ctx, c, false)
	if err == nil || plainHits.Load() > 0 {
		t.Errorf("https jwks_uri redirected to %s: fetched over plain http (%d requests), keys %d (kid %s found: %v), err %v; want the redirect refused",
			insecure, plainHits.Load(), len(keys), kid, len(keys) == 1 && keys[0].kid == kid, err)
	}
}
