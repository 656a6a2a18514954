package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
)

// childEnv, when set, makes the test binary run `healthhub` with the
// arguments in it (space-separated) instead of the tests: the crash and
// locking tests start the real server as a child process this way, without
// a separate build step.
const childEnv = "HEALTHHUB_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		os.Exit(app.Main(strings.Fields(args), os.Stdout, os.Stderr))
	}
	cleanup, err := setupAuthHarness()
	if err != nil {
		fmt.Fprintln(os.Stderr, "auth harness:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// server is a real healthhub serving on a loopback port, in-process.
type server struct {
	t       *testing.T
	base    string // FHIR base, http://127.0.0.1:port/fhir
	root    string // http://127.0.0.1:port
	dataDir string
	stop    func()
}

// startServer starts healthhub on 127.0.0.1:0 with a fresh data directory
// (or dataDir when given) and stops it at cleanup.
func startServer(t testing.TB, cfg app.Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !cfg.AuthOff && cfg.ClientsFile == "" {
		cfg.ClientsFile = harnessClientsFile
	}
	if cfg.TokenLifetime == 0 {
		// Longer than any test, so the harness's cached token lasts.
		cfg.TokenLifetime = time.Hour
	}
	a, err := app.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	s := &server{root: "http://" + cfg.Addr, dataDir: cfg.DataDir}
	s.base = s.root + "/fhir"
	var stopped bool
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic map.
func (r *response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

var client = &http.Client{Timeout: 30 * time.Second}

// do sends a request; body may be nil. Headers come in pairs. A JSON body
// gets Content-Type application/fhir+json unless a header sets one.
func do(t testing.TB, method, url string, body []byte, headers ...string) *response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}
