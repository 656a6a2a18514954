package auth

// Principal is who is calling and for what.
type Principal struct {
	Client       string // registered client id; "local" for the built-in principal
	Organization string // Organization the client acts for
	Scopes       []string
	PurposeOfUse string // HL7 PurposeOfUse code, e.g. TREAT
	User         string // end user on whose behalf a system calls, if named
	// Patient is the id of the Patient the token's patient/ scopes are
	// confined to (the token's patient claim); "" without patient context.
	Patient string
	// BreakGlass: the client is registered as allowed to break the glass
	// (consent decides what that opens).
	BreakGlass bool
	// Unrestricted marks the local all-powerful principal (no auth
	// configured): every scope check passes.
	Unrestricted bool

	grants *grants // Scopes parsed once, by Authenticate; nil: parse on use
}

// Local is the all-powerful principal of a server run with auth off.
func Local() Principal {
	return Principal{Client: "local", PurposeOfUse: "TREAT", Unrestricted: true}
}
