package auth_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"healthhub/auth"
)

// TestWithRequestHeaders: the purpose of use and the end user come from the
// request headers, over the client's default; a bad value is an error, never
// dropped silently (audit records what the principal says).
func TestWithRequestHeaders(t *testing.T) {
	base := auth.Principal{Client: "ehr", PurposeOfUse: "TREAT"}
	tests := []struct {
		name            string
		purpose, user   string
		wantPurpose     string
		wantUser        string
		wantErrContains string
	}{
		{name: "the client's default", wantPurpose: "TREAT"},
		{name: "emergency", purpose: "ETREAT", wantPurpose: "ETREAT"},
		{name: "public health and a user", purpose: "PUBHLTH", user: "dr.jones@city-hospital", wantPurpose: "PUBHLTH", wantUser: "dr.jones@city-hospital"},
		{name: "not a code", purpose: "treat; drop table", wantErrContains: auth.HeaderPurposeOfUse},
		{name: "user with a control character", user: "a\x01b", wantErrContains: auth.HeaderRequestUser},
		{name: "user too long", user: strings.Repeat("u", 257), wantErrContains: auth.HeaderRequestUser},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/fhir/Patient/1", nil)
		if tt.purpose != "" {
			r.Header.Set(auth.HeaderPurposeOfUse, tt.purpose)
		}
		if tt.user != "" {
			r.Header.Set(auth.HeaderRequestUser, tt.user)
		}
		p, err := auth.WithRequestHeaders(base, r)
		switch {
		case tt.wantErrContains != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErrContains) {
				t.Errorf("%s: error %v, want one naming %s", tt.name, err, tt.wantErrContains)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case p.PurposeOfUse != tt.wantPurpose || p.User != tt.wantUser || p.Client != "ehr":
			t.Errorf("%s: purpose %q user %q client %q, want %q %q ehr", tt.name, p.PurposeOfUse, p.User, p.Client, tt.wantPurpose, tt.wantUser)
		}
	}
}
