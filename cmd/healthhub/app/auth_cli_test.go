package app_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"healthhub/auth"
	"healthhub/cmd/healthhub/app"
	"healthhub/store"
)

// run calls Main and returns exit code and combined output.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := app.Main(args, &out, &out)
	return code, out.String()
}

func TestClientsCLI(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "lab.pem")
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"clients", "list", "--data", dir}, 0, "CLIENT_ID"},
		{[]string{"clients", "add", "--data", dir, "--id", "lab", "--name", "City Lab", "--org", "Organization/lab", "--scope", "system/Observation.cruds system/Patient.rs patient/Observation.rs", "--generate-key", keyFile}, 0, "registered client lab"},
		{[]string{"clients", "add", "--data", dir, "--id", "lab", "--scope", "system/*.rs", "--jwks-uri", "https://lab.example/jwks"}, 1, "already registered"},
		{[]string{"clients", "add", "--data", dir, "--id", "ed", "--scope", "system/*.rs", "--jwks-uri", "https://ed.example/jwks", "--break-glass"}, 0, "registered client ed"},
		{[]string{"clients", "add", "--data", dir, "--id", "x", "--scope", "system/*.rs"}, 1, "exactly one of"},
		{[]string{"clients", "add", "--data", dir, "--id", "x", "--scope", "system/Patient.dus", "--jwks-uri", "https://x.example/jwks"}, 1, "invalid scope"},
		{[]string{"clients", "add", "--data", dir, "--id", "x", "--scope", "system/*.rs", "--jwks-uri", "http://x.example/jwks"}, 1, "use https"},
		{[]string{"clients", "list", "--data", dir}, 0, "https://ed.example/jwks"},
		{[]string{"clients", "disable", "--data", dir, "lab"}, 0, "client lab disabled"},
		{[]string{"clients", "list", "--data", dir}, 0, "disabled"},
		{[]string{"clients", "enable", "--data", dir, "lab"}, 0, "client lab enabled"},
		{[]string{"clients", "remove", "--data", dir, "ed"}, 0, "client ed removed"},
		{[]string{"clients", "remove", "--data", dir, "ed"}, 1, "unknown client"},
		{[]string{"clients", "disable", "--data", dir}, 2, "want 1 argument"},
		{[]string{"clients", "frob", "--data", dir}, 2, "unknown sub-command"},
		{[]string{"keys", "rotate", "--data", dir}, 0, "new signing key"},
	}
	for _, s := range steps {
		code, out := run(t, s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Fatalf("%q: exit %d, want %d with %q:\n%s", s.args, code, s.code, s.want, out)
		}
	}
	if _, out := run(t, "clients", "list", "--data", dir); strings.Contains(out, "ed.example") || !strings.Contains(out, "City Lab") {
		t.Errorf("after remove:\n%s", out)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("generated key file: %v %v", fi, err)
	}

	// The generated key gets a token from a server on that data.
	root := serveAuth(t, dir, "")
	code, out := run(t, "token", "--client-id", "lab", "--key", keyFile, "--token-url", root+"/auth/token", "--scope", "system/Patient.rs")
	if code != 0 || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("token: exit %d:\n%s", code, out)
	}
	req, _ := http.NewRequest(http.MethodGet, root+"/fhir/Patient", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("search with the CLI's token: %d", resp.StatusCode)
	}
	if code, out := run(t, "token", "--client-id", "lab", "--key", keyFile, "--token-url", root+"/auth/token", "--scope", "system/Encounter.rs"); code != 1 || !strings.Contains(out, "invalid_scope") {
		t.Fatalf("token for a scope not allowed: exit %d:\n%s", code, out)
	}
	if code, out := run(t, "token", "--client-id", "lab", "--key", keyFile, "--token-url", root+"/auth/token", "--scope", "patient/Observation.rs", "--patient", "p1"); code != 0 || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("token with --patient: exit %d:\n%s", code, out)
	}
	if code, out := run(t, "token", "--client-id", "lab", "--key", keyFile, "--token-url", root+"/auth/token", "--scope", "patient/Observation.rs"); code != 1 || !strings.Contains(out, "patient=") {
		t.Fatalf("patient/ scope without --patient: exit %d:\n%s", code, out)
	}
}

// serveAuth serves the data in dir (seeding clientsFile when given) until
// the test ends and returns the root URL.
func serveAuth(t *testing.T, dir, clientsFile string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Config{Addr: ln.Addr().String(), DataDir: dir, ClientsFile: clientsFile, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

func TestSeedingTwiceChangesNothing(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := auth.KeySet(&key.PublicKey)
	seed, _ := json.Marshal([]map[string]any{
		{"client_id": "a", "name": "A", "organization": "Organization/a", "jwks": json.RawMessage(jwks), "scope": "system/*.rs", "break_glass": true},
		{"client_id": "b", "jwks_uri": "https://b.example/jwks", "scope": "system/Patient.read"},
	})
	file := filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(file, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		st, err := app.OpenStore(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var b strings.Builder
		_ = st.Clients(context.Background(), func(id string, rec []byte) error {
			b.WriteString(id + "=" + string(rec) + "\n")
			return nil
		})
		return b.String()
	}
	for i := range 2 {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		a, err := app.New(app.Config{Addr: ln.Addr().String(), DataDir: dir, ClientsFile: file, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		ln.Close()
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		a.Close()
	}
	first := snapshot()
	if strings.Count(first, "\n") != 2 {
		t.Fatalf("after seeding: %s", first)
	}
	// An operator's disable survives a restart that seeds again.
	if code, out := run(t, "clients", "disable", "--data", dir, "b"); code != 0 {
		t.Fatal(out)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	a, err := app.New(app.Config{Addr: ln.Addr().String(), DataDir: dir, ClientsFile: file, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if after := snapshot(); !strings.Contains(after, `"disabled":true`) {
		t.Errorf("re-seeding re-enabled a disabled client:\n%s", after)
	}

	// A bad file stops the start.
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`[{"client_id":"c","scope":"system/*.rs"}]`), 0o600)
	if _, err := app.New(app.Config{DataDir: dir, ClientsFile: bad}); err == nil || !strings.Contains(err.Error(), "jwks") {
		t.Errorf("clients file without keys: %v", err)
	}
}

func TestClientsAddPublicKeyAndToken(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := filepath.Join(t.TempDir(), "pub.pem")
	_ = os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	privDER, _ := x509.MarshalECPrivateKey(key)
	priv := filepath.Join(t.TempDir(), "priv.pem")
	_ = os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: privDER}), 0o600)
	if code, out := run(t, "clients", "add", "--data", dir, "--id", "ed", "--scope", "system/*.rs", "--public-key", pub); code != 0 {
		t.Fatal(out)
	}
	root := serveAuth(t, dir, "")
	if code, out := run(t, "token", "--client-id", "ed", "--key", priv, "--token-url", root+"/auth/token"); code != 0 {
		t.Fatalf("token: %d %s", code, out)
	}
	if code, out := run(t, "token", "--client-id", "ed", "--key", pub, "--token-url", root+"/auth/token"); code != 1 || !strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("token with a public key file: %d %s", code, out)
	}
}
