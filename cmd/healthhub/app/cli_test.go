package app_test

import (
	"bytes"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

func TestMainUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // in stdout+stderr
	}{
		{"no command", nil, 2, []string{"Usage:", "healthhub serve"}},
		{"help", []string{"--help"}, 0, []string{"healthhub serve"}},
		{"serve help", []string{"serve", "--help"}, 0, []string{"-addr", "-data", "-base-url", "-max-body", "-log-format", "-shutdown-timeout", "127.0.0.1:8080"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"bad log format", []string{"serve", "--log-format", "xml"}, 2, []string{"--log-format"}},
		{"tiny max body", []string{"serve", "--max-body", "10"}, 2, []string{"--max-body"}},
		{"stray argument", []string{"serve", "extra"}, 2, []string{`unexpected argument "extra"`}},
		{"help lists import", []string{"help"}, 0, []string{"healthhub import"}},
		{"import help", []string{"import", "--help"}, 0, []string{"-data", "-strict", "-chunk", "file:line", "log.ndjson"}},
		{"import without files", []string{"import"}, 2, []string{"name at least one NDJSON file or directory"}},
		{"import bad chunk", []string{"import", "--chunk", "0", "x.ndjson"}, 2, []string{"--chunk 0"}},
		{"import missing file", []string{"import", "--data", "", "/nonexistent/Patient.ndjson"}, 1, []string{"/nonexistent/Patient.ndjson"}},
		{"serve help: bundle flags", []string{"serve", "--help"}, 0, []string{"-max-bundle-entries", "10000", "-conditional-delete", "single"}},
		{"bad conditional delete", []string{"serve", "--conditional-delete", "all"}, 2, []string{"--conditional-delete"}},
		{"zero bundle entries", []string{"serve", "--max-bundle-entries", "0"}, 2, []string{"--max-bundle-entries"}},
		// "reindex DIR" for "reindex --data DIR" must not rebuild ./data.
		{"reindex stray argument", []string{"reindex", "--data", "/dev/null/x", "mydata"}, 2, []string{`unexpected argument "mydata"`}},
		{"token without client or key", []string{"token", "--scope", "system/*.rs"}, 2, []string{"--client-id and --key are required"}},
		{"token without key", []string{"token", "--client-id", "lab"}, 2, []string{"--client-id and --key are required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := app.Main(tt.args, &out, &out)
			if code != tt.wantCode {
				t.Errorf("Main(%q): exit %d, want %d\n%s", tt.args, code, tt.wantCode, out.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("Main(%q): output lacks %q:\n%s", tt.args, w, out.String())
				}
			}
		})
	}
}

func TestBaseURLFor(t *testing.T) {
	tests := map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080/fhir",
		":8080":          "http://localhost:8080/fhir",
		"0.0.0.0:80":     "http://localhost:80/fhir",
		"[::1]:9000":     "http://[::1]:9000/fhir",
	}
	for in, want := range tests {
		if got := app.BaseURLFor(in); got != want {
			t.Errorf("BaseURLFor(%q): got %q, want %q", in, got, want)
		}
	}
}
