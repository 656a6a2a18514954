package conformance_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

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
