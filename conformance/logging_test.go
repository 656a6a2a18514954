package conformance_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// One JSON line per request with id, method, route pattern, status and
// duration; never the body, the concrete URL or query values (patient data).
func TestAccessLogHasNoPatientData(t *testing.T) {
	var sink syncBuffer
	s := startServer(t, app.Config{Logger: slog.New(slog.NewJSONHandler(&sink, nil))})
	r := do(t, http.MethodPost, s.base+"/Patient",
		[]byte(`{"resourceType":"Patient","name":[{"family":"Zyxwvutsrq"}],"birthDate":"1961-07-13"}`),
		"X-Request-Id", "trace-me-1")
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	do(t, http.MethodGet, s.base+"/Patient/"+id+"?_pretty=Qwertyuiop", nil)
	do(t, http.MethodPost, s.base+"/Patient", []byte(`{"resourceType":"Patient","birthDate":"1961-02-30"}`))
	s.stop()

	log := sink.String()
	for _, secret := range []string{"Zyxwvutsrq", "1961-07-13", "1961-02-30", id, "Qwertyuiop"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains patient data %q:\n%s", secret, log)
		}
	}
	for _, want := range []string{`"request_id":"trace-me-1"`, `"method":"POST"`, `"route":"/fhir/:type"`, `"route":"/fhir/:type/:id"`, `"status":201`, `"status":422`, `"duration_ms":`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s:\n%s", want, log)
		}
	}
}

// The served log (buffered, its plain lines formatted by serve itself) has
// one line per request with every field, in both formats: the lines reach
// the file while the server runs (within the flush interval), and all of
// them by a clean stop.
func TestServeAccessLogFormats(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			c := startChild(t, childDataDir(t), "--log-format", format)
			put(t, &server{base: c.base}, "Patient", "log1", loadFixture(t, "Patient"))
			if r := do(t, http.MethodGet, c.base+"/Patient/log1", nil, "X-Request-Id", "trace-"+format); r.status != http.StatusOK {
				t.Fatalf("read: %d %s", r.status, r.body)
			}
			do(t, http.MethodGet, c.base+"/Patient/absent-1961", nil)
			deadline := time.Now().Add(2 * time.Second)
			for !strings.Contains(c.log(), "trace-"+format) {
				if time.Now().After(deadline) {
					t.Fatalf("the read's line is not in the log after 2 s:\n%s", c.logTail(10))
				}
				time.Sleep(10 * time.Millisecond)
			}
			c.signal(syscall.SIGTERM)
			if code, err := c.wait(15 * time.Second); err != nil || code != 0 {
				t.Fatalf("exit %d, %v", code, err)
			}
			log := c.log()
			if strings.Contains(log, "absent-1961") {
				t.Errorf("the log has the URL's id:\n%s", log)
			}
			var access []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
				fields := map[string]any{}
				if format == "json" {
					if err := json.Unmarshal([]byte(line), &fields); err != nil {
						t.Fatalf("not a JSON line: %q: %v", line, err)
					}
				} else {
					for _, kv := range strings.Fields(line) {
						if k, v, ok := strings.Cut(kv, "="); ok {
							fields[k] = v
						}
					}
				}
				if fields["msg"] == "request" {
					access = append(access, fields)
				}
			}
			routes := map[string]bool{}
			for _, f := range access {
				keys := []string{"time", "level", "request_id", "method", "route", "status", "duration_ms", "bytes"}
				if strings.HasPrefix(fmt.Sprint(f["route"]), "/fhir/") {
					keys = append(keys, "client_id") // an authorized request
				}
				for _, k := range keys {
					if _, ok := f[k]; !ok {
						t.Errorf("an access line lacks %s: %v", k, f)
					}
				}
				routes[fmt.Sprint(f["method"], " ", f["route"], " ", f["status"])] = true
			}
			for _, want := range []string{"PUT /fhir/:type/:id 201", "GET /fhir/:type/:id 200", "GET /fhir/:type/:id 404"} {
				if !routes[want] {
					t.Errorf("no access line for %s in %v", want, routes)
				}
			}
			if !strings.Contains(log, "stopped cleanly") {
				t.Errorf("no \"stopped cleanly\":\n%s", c.logTail(5))
			}
		})
	}
}

// A POST _search whose form body does not parse is a 400 whose cause the
// access log must not carry: net/url's error quotes the broken part of the
// value ("invalid URL escape \"%th\""), and search values are patient data.
func TestAccessLogFormSearchErrorHasNoValue(t *testing.T) {
	var sink syncBuffer
	s := startServer(t, app.Config{Logger: slog.New(slog.NewJSONHandler(&sink, nil))})
	r := do(t, http.MethodPost, s.base+"/Patient/_search", []byte("family=Smi%thers"),
		"Content-Type", "application/x-www-form-urlencoded")
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", r.status, r.body)
	}
	s.stop()
	if log := sink.String(); strings.Contains(log, "%th") {
		t.Errorf("the log quotes part of the search value:\n%s", log)
	}
}

// The method is the one field of an access line the client writes
// unchecked but for its characters (net/http takes any token): a method of
// kilobytes, which needs no token to send, made a line of kilobytes, so
// that a client could multiply the log's volume by hundreds. The line
// carries a bounded method; the 405 answer still names it.
func TestAccessLogBoundsMethod(t *testing.T) {
	var sink syncBuffer
	s := startServer(t, app.Config{Logger: slog.New(slog.NewJSONHandler(&sink, nil))})
	method := "X" + strings.Repeat("Y", 8000)
	if r := do(t, method, s.base+"/Patient", nil, "X-Request-Id", "long-method"); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("status %d, want 405: %s", r.status, r.body)
	}
	s.stop()
	for _, line := range strings.Split(sink.String(), "\n") {
		if strings.Contains(line, "long-method") && len(line) > 1024 {
			t.Errorf("the access line of a request with a method of %d bytes has %d bytes:\n%.300s...", len(method), len(line), line)
		}
	}
}
