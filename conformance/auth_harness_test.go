package conformance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"healthhub/auth"
)

// Auth in the harness: every server the tests start (in-process or as a
// child) registers harnessClient, allowed every scope, from a clients file
// made once per test binary; and every request the tests send through
// http.DefaultTransport without an Authorization header gets a bearer
// token of that client, fetched once per server. So the black-box tests
// run against the real, authenticated server without knowing it. A test
// that wants to send no token sets noTokenHeader (the transport drops it).

const (
	harnessClient = "conformance-harness"
	harnessScope  = "system/*.cruds"
	// noTokenHeader on a request: send it as written, without a token.
	noTokenHeader = "X-Harness-No-Token"
)

var (
	harnessKey         *ecdsa.PrivateKey
	harnessClientsFile string
)

// setupAuthHarness makes the harness client's key and clients file and
// installs the token-attaching transport; the returned func removes the
// file.
func setupAuthHarness() (cleanup func(), err error) {
	harnessKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	jwks, err := auth.KeySet(&harnessKey.PublicKey)
	if err != nil {
		return nil, err
	}
	clients, err := json.Marshal([]map[string]any{{
		"client_id": harnessClient, "name": "conformance tests", "organization": "Organization/test",
		"jwks": json.RawMessage(jwks), "scope": harnessScope,
	}})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "healthhub-harness-")
	if err != nil {
		return nil, err
	}
	harnessClientsFile = filepath.Join(dir, "clients.json")
	if err := os.WriteFile(harnessClientsFile, clients, 0o600); err != nil {
		return nil, err
	}
	http.DefaultTransport = &tokenTransport{next: http.DefaultTransport, tokens: map[string]string{}}
	return func() { os.RemoveAll(dir) }, nil
}

// withToken wraps a test's own transport so that it too sends the harness
// client's token.
func withToken(rt http.RoundTripper) http.RoundTripper {
	return &tokenTransport{next: rt, tokens: map[string]string{}}
}

// tokenTransport attaches the harness client's token to requests.
type tokenTransport struct {
	next   http.RoundTripper
	mu     sync.Mutex
	tokens map[string]string // scheme://host -> access token; "": the server issues none (auth off)
}

func (tt *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get(noTokenHeader) != "" {
		req = req.Clone(req.Context())
		req.Header.Del(noTokenHeader)
		return tt.next.RoundTrip(req)
	}
	// Only the FHIR API takes tokens; /healthz, /metrics, /auth/... and
	// other tests' fake servers see requests exactly as sent.
	fhirAPI := req.URL.Path == "/fhir" || strings.HasPrefix(req.URL.Path, "/fhir/")
	if req.Header.Get("Authorization") != "" || !fhirAPI {
		return tt.next.RoundTrip(req)
	}
	root := req.URL.Scheme + "://" + req.URL.Host
	tok, err := tt.token(req.Context(), root, false)
	if err != nil || tok == "" {
		return tt.next.RoundTrip(req) // the test sees the server's own answer
	}
	authed := req.Clone(req.Context())
	authed.Header.Set("Authorization", "Bearer "+tok)
	resp, err := tt.next.RoundTrip(authed)
	// A server restarted on another data directory at the same address
	// signs with another key: fetch a new token once, when the body can be
	// sent again.
	if err == nil && resp.StatusCode == http.StatusUnauthorized && (req.Body == nil || req.GetBody != nil) {
		if tok2, err2 := tt.token(req.Context(), root, true); err2 == nil && tok2 != tok {
			retry := req.Clone(req.Context())
			if req.GetBody != nil {
				if retry.Body, err2 = req.GetBody(); err2 != nil {
					return resp, nil
				}
			}
			retry.Header.Set("Authorization", "Bearer "+tok2)
			resp.Body.Close()
			return tt.next.RoundTrip(retry)
		}
	}
	return resp, err
}

func (tt *tokenTransport) token(ctx context.Context, root string, renew bool) (string, error) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tok, ok := tt.tokens[root]; ok && !renew {
		return tok, nil
	}
	tok, err := harnessToken(ctx, root, harnessScope)
	var ue *url.Error
	if errors.As(err, &ue) {
		return "", err // not answering (yet): ask again next time
	}
	if err != nil {
		tok = "" // answered without a token: auth is off there
	}
	tt.tokens[root] = tok
	return tok, nil
}

// harnessToken asks the server at root for a token of the harness client.
func harnessToken(ctx context.Context, root, scope string) (string, error) {
	url := root + "/auth/token"
	assertion, err := auth.SignAssertion(harnessKey, "", harnessClient, url, time.Now())
	if err != nil {
		return "", err
	}
	hc := &http.Client{Transport: http.DefaultTransport.(*tokenTransport).next, Timeout: 10 * time.Second}
	tok, _, err := auth.RequestToken(ctx, hc, url, assertion, scope, "")
	if err != nil {
		return "", fmt.Errorf("harness token from %s: %w", url, err)
	}
	return tok, nil
}
