package conformance_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
)

// A client that sends its headers and then stops sending the body it
// announced must not hold a connection (and a goroutine, and a file
// descriptor) for ever: the server answers or drops it within a bounded
// time. No token is needed to do it, so an anonymous client could open
// such connections until the process runs out of descriptors.
func TestStalledRequestBodyIsCutOff(t *testing.T) {
	s := startServer(t, app.Config{BodyIdleTimeout: 500 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.root, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// No Authorization header: any anonymous client can do this.
	fmt.Fprint(conn, "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{")
	const bound = 10 * time.Second // 20x the body idle timeout
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(bound))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a request whose body stalled is still open after %s: no answer, no close (ReadTimeout/body deadline missing)", time.Since(start).Round(time.Second))
	}
	t.Logf("after %s: %q, %v", time.Since(start).Round(time.Millisecond), line, err)
}

// The token endpoint's log line must not carry the patient id of a
// patient-confined token: ids are patient data (TestAccessLogHasNoPatientData
// treats them so) and README says logs name the client id only.
func TestTokenLogHasNoPatientID(t *testing.T) {
	var sink syncBuffer
	s := portalServer(t, "patient/*.rs", app.Config{Logger: slog.New(slog.NewJSONHandler(&sink, nil))})
	const secret = "mrn-Qx7731905"
	if r := patientToken(t, s, "patient/*.rs", secret); r.status != http.StatusOK {
		t.Fatalf("patient token: %d %s", r.status, r.body)
	}
	s.stop()
	if log := sink.String(); strings.Contains(log, secret) {
		t.Errorf("the log contains the patient id %q:\n%s", secret, log)
	}
}

// A POST _search form body over --max-body is 413 like every other body
// over the limit (README, Errors: "413 | body over --max-body"), not a 400
// "does not parse".
func TestPostSearchOverMaxBodyIs413(t *testing.T) {
	s := startServer(t, app.Config{MaxBody: 4096})
	body := "family=" + strings.Repeat("a", 10_000)
	r := do(t, http.MethodPost, s.base+"/Patient/_search", []byte(body), "Content-Type", "application/x-www-form-urlencoded")
	if r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST _search with a %d-byte form body (limit 4096): status %d, want 413: %s", len(body), r.status, r.body)
	}
	// The other body-reading routes agree.
	r = do(t, http.MethodPost, s.base+"/Patient", []byte(`{"resourceType":"Patient","x":"`+strings.Repeat("a", 10_000)+`"}`))
	if r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST Patient over the limit: %d", r.status)
	}
}

// RFC 9110 §9.1: "All general-purpose servers MUST support the methods GET
// and HEAD." HEAD answers as GET would, without the body.
func TestHeadIsServedLikeGet(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, u := range []string{s.root + "/healthz", s.base + "/metadata"} {
		get := do(t, http.MethodGet, u, nil)
		head := do(t, http.MethodHead, u, nil)
		if head.status != get.status {
			t.Errorf("HEAD %s: status %d (Allow: %q), GET gives %d", u, head.status, head.header.Get("Allow"), get.status)
		}
	}
}

// RFC 9110 §10.2.1: Allow lists "the set of methods advertised as
// supported by the target resource". /metadata and /_history take GET
// only (POST, PUT, DELETE, PATCH on them are 405), so a 405 on them must
// not advertise those methods.
func TestAllowListsOnlyServedMethods(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, path := range []string{"/metadata", "/_history"} {
		r := do(t, http.MethodOptions, s.base+path, nil)
		if r.status != http.StatusMethodNotAllowed {
			t.Fatalf("OPTIONS %s: %d", path, r.status)
		}
		allow := r.header.Get("Allow")
		for _, m := range strings.Split(allow, ",") {
			m = strings.TrimSpace(m)
			if m == "" || m == http.MethodGet || m == http.MethodHead {
				continue
			}
			if p := do(t, m, s.base+path, []byte(`{}`)); p.status == http.StatusMethodNotAllowed {
				t.Errorf("OPTIONS %s: Allow: %s advertises %s, which is 405 there (its Allow: %q)", path, allow, m, p.header.Get("Allow"))
			}
		}
	}
}

// TestEveryMethodGetsAnAnswer: any method on any path is answered (an
// OperationOutcome for the API), never a dropped connection. gin v1.12.0
// panics while routing for some method trees and paths when it looks for
// the methods a path allows (gin-gonic/gin#4818), before any middleware
// could recover; this walks the route table's shapes with every method.
func TestEveryMethodGetsAnAnswer(t *testing.T) {
	s := startServer(t, app.Config{})
	paths := []string{"", "/", "/metadata", "/_history", "/Patient", "/Patient/_search", "/Patient/_history",
		"/Patient/1", "/Patient/1/_history", "/Patient/1/_history/1", "/Patient/1/$everything",
		"/Patient/1/_history/1/x", "/a/b/c/d/e/f/g", "/.well-known/smart-configuration"}
	methods := []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, base := range []string{s.base, s.root} {
		for _, p := range paths {
			for _, m := range methods {
				req, err := http.NewRequest(m, base+p, strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("%s %s: %v (no answer)", m, base+p, err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					t.Errorf("%s %s: %d", m, base+p, resp.StatusCode)
				}
			}
		}
	}
}

// The token endpoint logs why it refused an assertion, with the client_id
// it claims ("client assertion refused"): before any signature is checked,
// so the id is whatever an anonymous caller wrote, up to ~6 kB of a 16 kB
// assertion, a line 25 times the usual. The line carries a bounded id (a
// registered one is at most 128 bytes), and a bounded kid, which the
// caller writes too.
func TestTokenLogBoundsClaimedClient(t *testing.T) {
	var sink syncBuffer
	s := startServer(t, app.Config{Logger: slog.New(slog.NewJSONHandler(&sink, nil))})
	b64 := base64.RawURLEncoding.EncodeToString
	long := strings.Repeat("z", 5_000)
	for _, c := range []struct{ kid, iss string }{
		{"k1", long},          // not registered
		{long, harnessClient}, // registered; no key of that kid
	} {
		assertion := b64([]byte(`{"alg":"RS384","typ":"JWT","kid":"`+c.kid+`"}`)) + "." +
			b64([]byte(fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%q,"exp":%d,"jti":"j-%d"}`, c.iss, c.iss, s.root+"/auth/token", time.Now().Add(time.Minute).Unix(), len(c.kid)))) + "." +
			b64([]byte("not a signature"))
		form := url.Values{
			"grant_type":            {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
			"scope":                 {"system/*.rs"},
		}
		r := do(t, http.MethodPost, s.root+"/auth/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		if r.status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", r.status, r.body)
		}
	}
	s.stop()
	refused := 0
	for _, line := range strings.Split(sink.String(), "\n") {
		if !strings.Contains(line, "client assertion refused") {
			continue
		}
		refused++
		if len(line) > 1024 {
			t.Errorf("a refusal's line has %d bytes:\n%.300s...", len(line), line)
		}
	}
	if refused != 2 {
		t.Errorf("%d refusals logged, want 2:\n%.2000s", refused, sink.String())
	}
}
