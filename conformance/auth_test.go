package conformance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"healthhub/auth"
	"healthhub/cmd/healthhub/app"
)

// authClientServer starts a server whose clients file registers "lab",
// allowed to read and search Patients and create Observations, with an
// EC P-384 key made here.
func authClientServer(t *testing.T) (*server, *ecdsa.PrivateKey) {
	t.Helper()
	key, jwks := newClientKey(t)
	clients, _ := json.Marshal([]map[string]any{
		{"client_id": "lab", "name": "City Lab", "organization": "Organization/city-lab", "jwks": json.RawMessage(jwks), "scope": "system/Patient.rs system/Observation.c"},
		{"client_id": harnessClient, "jwks": json.RawMessage(mustKeySet(t)), "scope": harnessScope},
	})
	file := filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(file, clients, 0o600); err != nil {
		t.Fatal(err)
	}
	return startServer(t, app.Config{ClientsFile: file}), key
}

// newClientKey makes a client's EC P-384 key and its public JWK Set.
func newClientKey(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := auth.KeySet(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, jwks
}

func mustKeySet(t *testing.T) []byte {
	b, err := auth.KeySet(&harnessKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// labToken asks s's token endpoint, found through discovery, for scope.
func labToken(t *testing.T, s *server, key *ecdsa.PrivateKey, scope string) (string, error) {
	t.Helper()
	cfg := do(t, http.MethodGet, s.base+"/.well-known/smart-configuration", nil, noTokenHeader, "1").json(t)
	tokenURL, _ := cfg["token_endpoint"].(string)
	assertion, err := auth.SignAssertion(key, "", "lab", tokenURL, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := auth.RequestToken(context.Background(), client, tokenURL, assertion, scope, "")
	return tok, err
}

func TestAuthFlowOverHTTP(t *testing.T) {
	s, key := authClientServer(t)

	// Discovery, at the FHIR base and at the root.
	for _, u := range []string{s.base + "/.well-known/smart-configuration", s.root + "/.well-known/smart-configuration"} {
		r := do(t, http.MethodGet, u, nil, noTokenHeader, "1", "Accept", "application/fhir+xml")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: %d %s", u, r.status, r.header.Get("Content-Type"))
		}
		cfg := r.json(t)
		if cfg["token_endpoint"] != s.root+"/auth/token" || cfg["jwks_uri"] != s.root+"/auth/jwks" {
			t.Errorf("endpoints: %v", cfg)
		}
		for field, want := range map[string]string{
			"token_endpoint_auth_methods_supported":            "private_key_jwt",
			"token_endpoint_auth_signing_alg_values_supported": "ES384",
			"grant_types_supported":                            "client_credentials",
			"capabilities":                                     "client-confidential-asymmetric",
			"scopes_supported":                                 "system/*.rs",
		} {
			list, _ := cfg[field].([]any)
			found := false
			for _, v := range list {
				found = found || v == want
			}
			if !found {
				t.Errorf("%s: %v lacks %s", field, cfg[field], want)
			}
		}
	}

	// The CapabilityStatement is public and declares SMART-on-FHIR.
	meta := do(t, http.MethodGet, s.base+"/metadata", nil, noTokenHeader, "1")
	if meta.status != http.StatusOK {
		t.Fatalf("metadata without a token: %d", meta.status)
	}
	sec, _ := meta.json(t)["rest"].([]any)[0].(map[string]any)["security"].(map[string]any)
	if b, _ := json.Marshal(sec); !strings.Contains(string(b), "SMART-on-FHIR") || !strings.Contains(string(b), s.root+"/auth/token") {
		t.Errorf("rest.security: %s", b)
	}

	tok, err := labToken(t, s, key, "system/Patient.read system/Observation.c")
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + tok

	// Seed a Patient as the all-scopes harness client.
	created := do(t, http.MethodPost, s.base+"/Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Auth"}]}`))
	if created.status != http.StatusCreated {
		t.Fatalf("seed: %d %s", created.status, created.body)
	}
	id := created.json(t)["id"].(string)

	cases := []struct {
		name, method, path string
		body               string
		token              string // "" none
		status             int
		want               string // in the body or WWW-Authenticate
	}{
		{"read", "GET", "/Patient/" + id, "", bearer, 200, `"id":"` + id},
		{"vread", "GET", "/Patient/" + id + "/_history/1", "", bearer, 200, ""},
		{"search", "GET", "/Patient?family=Auth", "", bearer, 200, `"total":1`},
		{"type history is a search", "GET", "/Patient/_history", "", bearer, 200, ""},
		{"create allowed", "POST", "/Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, bearer, 201, ""},
		{"no token", "GET", "/Patient/" + id, "", "", 401, "Bearer"},
		{"not bearer", "GET", "/Patient/" + id, "", "Basic bGFiOng=", 401, "invalid_token"},
		{"garbage token", "GET", "/Patient/" + id, "", "Bearer abc.def.ghi", 401, "invalid_token"},
		{"update needs u", "PUT", "/Patient/" + id, `{"resourceType":"Patient","id":"` + id + `"}`, bearer, 403, "system/Patient.u"},
		{"delete needs d", "DELETE", "/Patient/" + id, "", bearer, 403, "system/Patient.d"},
		{"read other type", "GET", "/Observation?status=final", "", bearer, 403, "system/Observation.s"},
		{"create other type", "POST", "/Encounter", `{"resourceType":"Encounter","status":"planned","class":{"code":"AMB"}}`, bearer, 403, "system/Encounter.c"},
		{"system search needs a wildcard", "GET", "?_type=Patient", "", bearer, 403, "system/*.s"},
		{"system history needs a wildcard", "GET", "/_history", "", bearer, 403, "system/*.s"},
		{"bad purpose of use", "GET", "/Patient/" + id, "", bearer, 400, "X-Purpose-Of-Use"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			h := []string{noTokenHeader, "1"}
			if c.token != "" {
				h = append(h, "Authorization", c.token)
			}
			if c.name == "bad purpose of use" {
				h = append(h, "X-Purpose-Of-Use", "treat; drop table")
			}
			r := do(t, c.method, s.base+c.path, body, h...)
			if r.status != c.status {
				t.Fatalf("%s %s: %d, want %d: %s", c.method, c.path, r.status, c.status, r.body)
			}
			if c.status == 401 {
				if r.header.Get("WWW-Authenticate") == "" || !strings.Contains(r.header.Get("WWW-Authenticate")+string(r.body), c.want) {
					t.Errorf("401 without the challenge: %q %s", r.header.Get("WWW-Authenticate"), r.body)
				}
				if r.json(t)["resourceType"] != "OperationOutcome" {
					t.Errorf("401 body is not an OperationOutcome: %s", r.body)
				}
				return
			}
			if c.status == 403 && (r.json(t)["resourceType"] != "OperationOutcome" || !strings.Contains(string(r.body), `"forbidden"`)) {
				t.Errorf("403 body: %s", r.body)
			}
			if !strings.Contains(string(r.body), c.want) {
				t.Errorf("body lacks %s: %s", c.want, r.body)
			}
		})
	}

	// _revinclude does not open a type the scopes do not: the lab may
	// search Patients but not read Observations.
	obs := do(t, http.MethodPost, s.base+"/Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+id+`"}}`))
	if obs.status != http.StatusCreated {
		t.Fatalf("seed observation: %d %s", obs.status, obs.body)
	}
	inc := do(t, http.MethodGet, s.base+"/Patient?_id="+id+"&_revinclude=Observation:subject", nil, noTokenHeader, "1", "Authorization", bearer)
	if inc.status != http.StatusOK || strings.Contains(string(inc.body), `"Observation"`) {
		t.Errorf("_revinclude of a type without scope: %d %s", inc.status, inc.body)
	}
	if all := do(t, http.MethodGet, s.base+"/Patient?_id="+id+"&_revinclude=Observation:subject", nil); !strings.Contains(string(all.body), `"Observation"`) {
		t.Errorf("_revinclude with scope misses the Observation: %s", all.body)
	}

	// Introspection by a client with a token.
	form := url.Values{"token": {tok}}.Encode()
	in := do(t, http.MethodPost, s.root+"/auth/introspect", []byte(form), "Content-Type", "application/x-www-form-urlencoded", "Authorization", bearer)
	if m := in.json(t); in.status != 200 || m["active"] != true || m["client_id"] != "lab" || m["scope"] != "system/Patient.read system/Observation.c" {
		t.Errorf("introspection: %d %s", in.status, in.body)
	}
	jwks := do(t, http.MethodGet, s.root+"/auth/jwks", nil, noTokenHeader, "1").json(t)
	if keys, _ := jwks["keys"].([]any); len(keys) != 1 {
		t.Errorf("jwks: %v", jwks)
	}

	// A scope the client was not allowed.
	if _, err := labToken(t, s, key, "system/Encounter.rs"); err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Errorf("scope not allowed: %v, want invalid_scope", err)
	}
}

func TestAuthOffWarnsOnEveryResponse(t *testing.T) {
	s := startServer(t, app.Config{AuthOff: true})
	r := do(t, http.MethodGet, s.base+"/Patient", nil, noTokenHeader, "1")
	if r.status != http.StatusOK || !strings.Contains(r.header.Get("Warning"), "authentication is off") {
		t.Fatalf("auth off: %d Warning=%q", r.status, r.header.Get("Warning"))
	}
	if r := do(t, http.MethodGet, s.root+"/auth/jwks", nil, noTokenHeader, "1"); r.status != http.StatusNotFound {
		t.Errorf("auth endpoints with auth off: %d, want 404", r.status)
	}
}

func TestAuthOnByDefault(t *testing.T) {
	s := startServer(t, app.Config{})
	r := do(t, http.MethodGet, s.base+"/Patient", nil, noTokenHeader, "1")
	if r.status != http.StatusUnauthorized || r.header.Get("Warning") != "" {
		t.Fatalf("default server without a token: %d Warning=%q", r.status, r.header.Get("Warning"))
	}
}

// The log names the client of each request, never a token or assertion.
func TestLogHasClientNotTokens(t *testing.T) {
	var sink syncBuffer
	s := startServer(t, app.Config{Logger: slog.New(slog.NewJSONHandler(&sink, nil))})
	assertion, err := auth.SignAssertion(harnessKey, "", harnessClient, s.root+"/auth/token", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := auth.RequestToken(context.Background(), client, s.root+"/auth/token", assertion, harnessScope, "")
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, http.MethodGet, s.base+"/Patient", nil, "Authorization", "Bearer "+tok); r.status != http.StatusOK {
		t.Fatalf("search: %d", r.status)
	}
	do(t, http.MethodGet, s.base+"/Patient", nil, "Authorization", "Bearer "+tok+"x")
	_, _, _ = auth.RequestToken(context.Background(), client, s.root+"/auth/token", assertion, harnessScope, "") // a replay
	s.stop()
	log := sink.String()
	sig := func(jwt string) string { return jwt[strings.LastIndex(jwt, ".")+1:] }
	for _, secret := range []string{sig(tok), sig(assertion), "eyJ"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains a token or assertion part %q", secret)
		}
	}
	if !strings.Contains(log, `"client_id":"`+harnessClient+`"`) {
		t.Errorf("the log does not name the client:\n%s", log)
	}
}

// TestBundleEntriesCheckedAgainstScopes: transaction and batch have no scope
// of their own; each entry needs what the same request alone would. The
// lab may create Observations and read Patients, not create Patients.
func TestBundleEntriesCheckedAgainstScopes(t *testing.T) {
	s, key := authClientServer(t)
	tok, err := labToken(t, s, key, "system/Patient.rs system/Observation.c")
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + tok
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`
	pat := `{"resourceType":"Patient","active":true}`
	bundle := func(typ string, entries ...string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`)
	}
	post := func(typ, res string) string {
		return `{"resource":` + res + `,"request":{"method":"POST","url":"` + typ + `"}}`
	}
	count := func(typ string) int {
		r := do(t, http.MethodGet, s.base+"/"+typ+"?_summary=count", nil)
		total, _ := r.json(t)["total"].(float64)
		return int(total)
	}

	// A transaction with one entry out of scope fails whole, naming it.
	r := do(t, http.MethodPost, s.base, bundle("transaction", post("Observation", obs), post("Patient", pat)), "Authorization", bearer, "Content-Type", "application/fhir+json")
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "Bundle.entry[1]") || !strings.Contains(string(r.body), "system/Patient.c") {
		t.Fatalf("transaction with a Patient create: %d %s", r.status, r.body)
	}
	if n := count("Observation"); n != 0 {
		t.Fatalf("%d Observations stored by a refused transaction", n)
	}
	// In scope: committed.
	r = do(t, http.MethodPost, s.base, bundle("transaction", post("Observation", obs)), "Authorization", bearer, "Content-Type", "application/fhir+json")
	if r.status != http.StatusOK {
		t.Fatalf("transaction in scope: %d %s", r.status, r.body)
	}
	// A batch refuses the entry alone.
	r = do(t, http.MethodPost, s.base, bundle("batch", post("Patient", pat), post("Observation", obs)), "Authorization", bearer, "Content-Type", "application/fhir+json")
	if r.status != http.StatusOK {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	var b struct {
		Entry []struct{ Response struct{ Status string } }
	}
	if err := json.Unmarshal(r.body, &b); err != nil || len(b.Entry) != 2 {
		t.Fatalf("batch response: %v %s", err, r.body)
	}
	if !strings.HasPrefix(b.Entry[0].Response.Status, "403") || !strings.HasPrefix(b.Entry[1].Response.Status, "201") {
		t.Errorf("batch statuses %q, %q: want 403 and 201", b.Entry[0].Response.Status, b.Entry[1].Response.Status)
	}
	if n, p := count("Observation"), count("Patient"); n != 2 || p != 0 {
		t.Errorf("%d Observations and %d Patients stored, want 2 and 0", n, p)
	}
}

// TestConditionalCriteriaNeedSearchScope: conditional criteria are a
// search. A client that may create Observations but not search them gets
// 403 for a conditional create, instead of learning whether a record
// matches (and receiving it) or writing a duplicate; criteria on a type it
// may search (a conditional reference to a Patient) still work.
func TestConditionalCriteriaNeedSearchScope(t *testing.T) {
	s, key := authClientServer(t)
	tok, err := labToken(t, s, key, "system/Patient.rs system/Observation.c")
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + tok
	json := "application/fhir+json"
	if r := do(t, http.MethodPut, s.base+"/Patient/cc-p1", []byte(`{"resourceType":"Patient","id":"cc-p1","identifier":[{"system":"urn:mrn","value":"cc-1"}]}`), "Content-Type", json); r.status != http.StatusCreated {
		t.Fatalf("seed Patient: %d %s", r.status, r.body)
	}
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"secret result"},"identifier":[{"system":"urn:lab","value":"cc-o1"}]}`
	if r := do(t, http.MethodPost, s.base+"/Observation", []byte(obs), "Content-Type", json); r.status != http.StatusCreated {
		t.Fatalf("seed Observation: %d %s", r.status, r.body)
	}
	count := func() int {
		r := do(t, http.MethodGet, s.base+"/Observation?identifier=urn:lab|cc-o1&_summary=count", nil)
		total, _ := r.json(t)["total"].(float64)
		return int(total)
	}

	r := do(t, http.MethodPost, s.base+"/Observation", []byte(obs), "Authorization", bearer, "Content-Type", json,
		"If-None-Exist", "identifier=urn:lab|cc-o1", "Prefer", "return=representation")
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "system/Observation.s") || strings.Contains(string(r.body), "secret result") {
		t.Errorf("conditional create without the search scope: %d %s, want 403 naming system/Observation.s", r.status, r.body)
	}
	if n := count(); n != 1 {
		t.Errorf("%d Observations with the identifier after the refused conditional create, want 1", n)
	}

	// The same in a transaction entry.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + obs + `,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:lab|cc-o1"}}]}`
	r = do(t, http.MethodPost, s.base, []byte(tx), "Authorization", bearer, "Content-Type", json)
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "system/Observation.s") {
		t.Errorf("transaction with a conditional create: %d %s, want 403", r.status, r.body)
	}
	if n := count(); n != 1 {
		t.Errorf("%d Observations with the identifier after the refused transaction, want 1", n)
	}

	// A conditional reference to a type it may not search: 403, naming the
	// entry.
	orgRef := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"performer":[{"reference":"Organization?identifier=urn:org|1"}]}`
	tx = `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + orgRef + `,"request":{"method":"POST","url":"Observation"}}]}`
	r = do(t, http.MethodPost, s.base, []byte(tx), "Authorization", bearer, "Content-Type", json)
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "system/Organization.s") || !strings.Contains(string(r.body), "Bundle.entry[0]") {
		t.Errorf("transaction with a conditional reference to Organization: %d %s, want 403 naming Bundle.entry[0] and system/Organization.s", r.status, r.body)
	}

	// Criteria on Patient, which the client may search: resolved.
	ref := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:mrn|cc-1"}}`
	tx = `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + ref + `,"request":{"method":"POST","url":"Observation"}}]}`
	r = do(t, http.MethodPost, s.base, []byte(tx), "Authorization", bearer, "Content-Type", json)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "201") {
		t.Errorf("transaction with a conditional reference to a Patient: %d %s, want 200 with a 201 entry", r.status, r.body)
	}
}

// TestClientsReloadOnHangup: serve reloads its --clients file on SIGHUP.
// A hospital system added to the file gets tokens without a restart; one
// the file then disables loses them, and its token already issued stops
// working, until the file enables it again; a file that does not validate
// changes nothing.
func TestClientsReloadOnHangup(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on Windows")
	}
	t.Parallel()
	key, jwks := newClientKey(t)
	file := filepath.Join(t.TempDir(), "clients.json")
	writeClients := func(extra ...map[string]any) {
		t.Helper()
		list := append([]map[string]any{{"client_id": harnessClient, "jwks": json.RawMessage(mustKeySet(t)), "scope": harnessScope}}, extra...)
		raw, _ := json.Marshal(list)
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeClients()
	c := startChild(t, childDataDir(t), "--clients", file)
	token := func() (string, error) {
		cfg := do(t, http.MethodGet, c.base+"/.well-known/smart-configuration", nil, noTokenHeader, "1").json(t)
		tokenURL, _ := cfg["token_endpoint"].(string)
		assertion, err := auth.SignAssertion(key, "", "clinic", tokenURL, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := auth.RequestToken(context.Background(), client, tokenURL, assertion, "system/Patient.rs", "")
		return tok, err
	}
	hangup := func(wantLog string) {
		t.Helper()
		before := strings.Count(c.log(), wantLog)
		if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); strings.Count(c.log(), wantLog) == before; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log after SIGHUP:\n%s", wantLog, c.logTail(10))
			}
		}
	}
	if _, err := token(); err == nil {
		t.Fatal("a token for a client the file does not have")
	}

	clinic := map[string]any{"client_id": "clinic", "jwks": json.RawMessage(jwks), "scope": "system/Patient.rs"}
	writeClients(clinic)
	hangup("clients reloaded")
	tok, err := token()
	if err != nil {
		t.Fatalf("token after the reload added the client: %v", err)
	}
	if r := do(t, http.MethodGet, c.base+"/Patient?_count=1", nil, "Authorization", "Bearer "+tok); r.status != http.StatusOK {
		t.Fatalf("search with the new client's token: %d %s", r.status, r.body)
	}

	if err := os.WriteFile(file, []byte(`[{"client_id": 7}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	hangup("clients not reloaded")
	if _, err := token(); err != nil {
		t.Errorf("token after a reload of a bad file: %v; the registry should be unchanged", err)
	}

	clinic["disabled"] = true
	writeClients(clinic)
	hangup("clients reloaded")
	if _, err := token(); err == nil {
		t.Error("a token for the client the file disabled")
	}
	if r := do(t, http.MethodGet, c.base+"/Patient?_count=1", nil, "Authorization", "Bearer "+tok); r.status != http.StatusUnauthorized {
		t.Errorf("search with the disabled client's earlier token: %d, want 401", r.status)
	}

	// The file enables again the client it disabled.
	delete(clinic, "disabled")
	writeClients(clinic)
	hangup("clients reloaded")
	if _, err := token(); err != nil {
		t.Errorf("token after the file enabled the client again: %v", err)
	}
}
