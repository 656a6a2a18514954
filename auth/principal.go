// Package auth will own SMART-on-FHIR backend-services authentication:
// discovery, the token endpoint, the client registry, JWT checks and scopes.
// For now it holds only the Principal, the caller every service call takes
// as an explicit argument, so the seam exists before the token endpoint does.
package auth

// Principal is who is calling and for what.
type Principal struct {
	Client       string // registered client id; "local" for the built-in principal
	Organization string // Organization the client acts for
	Scopes       []string
	PurposeOfUse string // HL7 PurposeOfUse code, e.g. TREAT
	User         string // end user on whose behalf a system calls, if named
	// Unrestricted marks the local all-powerful principal (no auth
	// configured): every scope check passes.
	Unrestricted bool
}

// Local is the all-powerful principal used until authentication is on.
func Local() Principal {
	return Principal{Client: "local", PurposeOfUse: "TREAT", Unrestricted: true}
}
