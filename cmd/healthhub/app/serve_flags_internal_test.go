package app

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Invalid flag values are refused with a clear message (exit 2), not
// served with: an explicit value the server then ignores or cannot use is
// a misconfiguration the operator must hear about at start.
func TestServeRefusesInvalidFlagValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		flag string // named in the message
	}{
		// Not absolute: Location, fullUrl, links and the token audience
		// ("not a url/auth/token") are unusable.
		{"relative base url", []string{"--base-url", "not a url"}, "--base-url"},
		{"base url without scheme", []string{"--base-url", "127.0.0.1:8080/fhir"}, "--base-url"},
		// An empty query or fragment parses as none, yet every link would
		// carry it: https://example.org/fhir?/Patient/1.
		{"base url with empty query", []string{"--base-url", "https://example.org/fhir?"}, "--base-url"},
		{"base url with empty fragment", []string{"--base-url", "https://example.org/fhir#"}, "--base-url"},
		// Not a listen address at all: a usage error like the others, not
		// a failure to listen (exit 1, as for a port in use).
		{"addr without port", []string{"--addr", "localhost"}, "--addr"},
		{"addr port out of range", []string{"--addr", "127.0.0.1:99999"}, "--addr"},
		// "how long in-flight requests may finish": 0 was asked, 15s is used.
		{"zero shutdown timeout", []string{"--shutdown-timeout", "0s"}, "--shutdown-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			args := append([]string{"--auth", "off", "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "d")}, tt.args...)
			var out bytes.Buffer
			code := serve(ctx, context.Background(), args, &out, &out)
			if code != 2 || !strings.Contains(out.String(), tt.flag) {
				t.Errorf("serve %q: exit %d, want 2 naming %s; output:\n%s", tt.args, code, tt.flag, out.String())
			}
		})
	}
}
