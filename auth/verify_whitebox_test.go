package auth

// White-box: the benchmarks reach the verification cache to measure the
// cost with and without it.

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"healthhub/store"
)

func benchServer(b *testing.B) *Server {
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	s, err := New(context.Background(), st, Config{BaseURL: "http://hh.test/fhir", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	s.clients.clients["c"] = &Client{ID: "c", Scope: "system/*.rs"}
	return s
}

// BenchmarkAuthenticate is the per-request cost of a bearer token whose
// verification is cached (a client reusing its token, the common case).
func BenchmarkAuthenticate(b *testing.B) {
	s := benchServer(b)
	tok, err := s.issue("c", "system/*.rs", "")
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/fhir/Patient/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		p, err := s.Authenticate(req)
		if err != nil || !p.Allows("Patient", PermRead) {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateUncached is the cost of a token seen for the first
// time: the ES256 signature check and claim validation.
func BenchmarkAuthenticateUncached(b *testing.B) {
	s := benchServer(b)
	tok, err := s.issue("c", "system/*.rs", "")
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/fhir/Patient/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		s.cache.init()
		if _, err := s.Authenticate(req); err != nil {
			b.Fatal(err)
		}
	}
}
