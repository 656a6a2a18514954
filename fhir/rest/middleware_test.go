package rest_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"healthhub/fhir/rest"
)

// A panic in a handler becomes a 500 OperationOutcome that names the
// request id and nothing of the panic; the log has the panic and the stack.
func TestPanicIsRecoveredWithoutLeaking(t *testing.T) {
	var log bytes.Buffer
	h := rest.New(nil, rest.Config{BaseURL: "http://x/fhir", MaxBody: 1 << 20, Logger: slog.New(slog.NewJSONHandler(&log, nil))})
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.Use(h.Middleware()...)
	e.GET("/boom", func(*gin.Context) { panic("secret internal detail /var/lib/x") })

	req := httptest.NewRequest(http.MethodGet, "/boom", nil)
	req.Header.Set("X-Request-Id", "req-42")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)

	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	var oo struct {
		ResourceType string
		Issue        []struct{ Severity, Code, Diagnostics string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		t.Fatalf("body is not an OperationOutcome with one issue: %v %s", err, rec.Body)
	}
	if oo.Issue[0].Code != "exception" || !strings.Contains(oo.Issue[0].Diagnostics, "req-42") {
		t.Errorf("issue %+v: want code exception and the request id", oo.Issue[0])
	}
	if strings.Contains(rec.Body.String(), "secret") {
		t.Errorf("the 500 body leaks the panic: %s", rec.Body)
	}
	if got := rec.Header().Get("X-Request-Id"); got != "req-42" {
		t.Errorf("X-Request-Id %q, want req-42", got)
	}
	if !strings.Contains(log.String(), "secret internal detail") || !strings.Contains(log.String(), "stack") {
		t.Errorf("the log lacks the panic and its stack:\n%s", log.String())
	}
}

func TestRequestIDFromClientIsSanitized(t *testing.T) {
	h := rest.New(nil, rest.Config{BaseURL: "http://x/fhir", MaxBody: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	e := gin.New()
	e.Use(h.Middleware()...)
	e.GET("/ok", func(c *gin.Context) { c.Status(http.StatusOK) })
	for _, id := range []string{"", "has space", strings.Repeat("a", 200), "new\nline"} {
		req := httptest.NewRequest(http.MethodGet, "/ok", nil)
		req.Header["X-Request-Id"] = []string{id}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if got == id || len(got) != 32 {
			t.Errorf("X-Request-Id %q: echoed %q, want a fresh 32-hex id", id, got)
		}
	}
}
