package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Perm is a set of SMART v2 permissions.
type Perm uint8

// SMART v2 permissions. v1 names map onto them: read = r|s, write = c|u|d,
// * = all five.
const (
	PermCreate Perm = 1 << iota // c: create
	PermRead                    // r: read, vread, instance history
	PermUpdate                  // u: update, patch
	PermDelete                  // d: delete
	PermSearch                  // s: type and system search and history

	permAll   = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch
	permRead1 = PermRead | PermSearch
	permWrite = PermCreate | PermUpdate | PermDelete
)

// permLetters is the v2 order; a v2 permission string lists letters in it.
const permLetters = "cruds"

// String is the v2 form: the letters in canonical order.
func (p Perm) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Scope is one parsed SMART scope: context/Type.perms[?query].
type Scope struct {
	Context string // system | patient | user
	Type    string // a resource type name, or "*"
	Perms   Perm
	V1      bool   // written with a v1 permission (read, write, *)
	Query   string // v2 granular constraint after '?', without it
}

// ErrScope is wrapped by every scope syntax error.
var ErrScope = errors.New("invalid scope")

// ParseScope parses one scope string. It knows the grammar, not which
// resource types exist: auth does not know FHIR resources, and a type no
// route serves is simply never asked for.
func ParseScope(s string) (Scope, error) {
	bad := func(why string) (Scope, error) {
		return Scope{}, fmt.Errorf("%w %q: %s", ErrScope, s, why)
	}
	if len(s) > 512 {
		return bad("too long")
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return bad("want context/Type.permissions, e.g. system/Patient.rs")
	}
	switch ctx {
	case "system", "patient", "user":
	default:
		return bad("the context must be system, patient or user")
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok {
		return bad("want Type.permissions after the context")
	}
	if typ != "*" && !typeName(typ) {
		return bad("the resource type must be a type name or *")
	}
	sc := Scope{Context: ctx, Type: typ}
	switch perms {
	case "read":
		sc.Perms, sc.V1 = permRead1, true
	case "write":
		sc.Perms, sc.V1 = permWrite, true
	case "*":
		sc.Perms, sc.V1 = permAll, true
	default:
		// v2: a non-empty subset of c r u d s, in that order, no repeats.
		next := 0
		for i := 0; i < len(perms); i++ {
			j := strings.IndexByte(permLetters[next:], perms[i])
			if j < 0 {
				return bad("permissions must be read, write, * or letters of cruds in that order")
			}
			next += j + 1
			sc.Perms |= Perm(1) << (next - 1)
		}
		if sc.Perms == 0 {
			return bad("no permission")
		}
	}
	if hasQuery {
		if sc.V1 {
			return bad("a query constraint needs v2 permissions")
		}
		if query == "" {
			return bad("empty query constraint")
		}
		sc.Query = query
	}
	return sc, nil
}

// typeName: an upper-case ASCII letter, then letters and digits.
func typeName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// String writes the scope back: in v1 form when it was asked in v1 and its
// permissions still have a v1 name, else in v2 form.
func (sc Scope) String() string {
	perms := sc.Perms.String()
	if sc.V1 {
		switch sc.Perms {
		case permRead1:
			perms = "read"
		case permWrite:
			perms = "write"
		case permAll:
			perms = "*"
		}
	}
	s := sc.Context + "/" + sc.Type + "." + perms
	if sc.Query != "" {
		s += "?" + sc.Query
	}
	return s
}

// ScopeError is a requested scope the token endpoint refuses.
type ScopeError struct{ Reason string }

func (e *ScopeError) Error() string { return e.Reason }

// Grant answers a token request: the scopes of requested (space-separated)
// that allowed (the client's registered scopes) covers, each narrowed to
// the permissions allowed for its type. A requested wildcard type is
// granted as the allowed scopes it covers, so system/*.rs against an
// allowance of system/Patient.rs grants system/Patient.rs. A scope is
// covered only by allowed scopes of its own context: a client allowed
// patient/*.rs is not allowed system/Patient.rs, nor the reverse.
//
// system/ scopes are granted, and patient/ scopes when the request names a
// patient (patientContext): backend services have no launch, so the patient
// comes with the token request, and a patient/ scope without one would have
// no compartment to confine it. user/ scopes need an end user's launch, and
// query-constrained scopes are not enforced, so both are refused rather than
// silently widened. An empty result is an error.
func Grant(requested string, allowed []string, patientContext bool) ([]string, error) {
	req := strings.Fields(requested)
	if len(req) == 0 {
		return nil, &ScopeError{"scope is required, e.g. scope=system/*.rs"}
	}
	var allow []Scope
	for _, a := range allowed {
		if sc, err := ParseScope(a); err == nil && grantable(sc.Context) && sc.Query == "" {
			allow = append(allow, sc)
		}
	}
	var granted []string
	add := func(sc Scope) {
		if s := sc.String(); !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	for _, r := range req {
		sc, err := ParseScope(r)
		switch {
		case err != nil:
			return nil, &ScopeError{err.Error()}
		case !grantable(sc.Context):
			return nil, &ScopeError{fmt.Sprintf("scope %q: only system/ and patient/ scopes are granted to backend services (user/ scopes need an end user's launch)", r)}
		case sc.Context == "patient" && !patientContext:
			return nil, &ScopeError{fmt.Sprintf("scope %q: patient/ scopes need the patient whose compartment they open: add patient=<Patient id> to the token request", r)}
		case sc.Query != "":
			return nil, &ScopeError{fmt.Sprintf("scope %q: query-constrained scopes are not supported", r)}
		}
		if sc.Type == "*" {
			for _, a := range allow {
				if p := sc.Perms & a.Perms; a.Context == sc.Context && p != 0 {
					add(Scope{Context: sc.Context, Type: a.Type, Perms: p, V1: sc.V1})
				}
			}
			continue
		}
		var p Perm
		for _, a := range allow {
			if a.Context == sc.Context && (a.Type == "*" || a.Type == sc.Type) {
				p |= a.Perms
			}
		}
		if p &= sc.Perms; p != 0 {
			add(Scope{Context: sc.Context, Type: sc.Type, Perms: p, V1: sc.V1})
		}
	}
	if len(granted) == 0 {
		return nil, &ScopeError{fmt.Sprintf("none of the requested scopes (%s) is allowed for this client", strings.Join(req, " "))}
	}
	return granted, nil
}

// grantable: the contexts the token endpoint grants scopes of.
func grantable(ctx string) bool { return ctx == "system" || ctx == "patient" }

// HasPatientScope reports whether any of scopes is a patient/ scope.
func HasPatientScope(scopes []string) bool {
	for _, s := range scopes {
		if strings.HasPrefix(s, "patient/") {
			return true
		}
	}
	return false
}

// Allows reports whether p may do perm on resources of type typ, by its
// system/ or its patient/ scopes. typ "*" asks for every type at once
// (system search and history), which only a wildcard scope grants. When
// Confined(typ), what is allowed is allowed within the patient's
// compartment only: the service layer enforces that per resource.
//
// Bundle processing calls this once per entry: there are no separate
// batch or transaction scopes.
func (p Principal) Allows(typ string, perm Perm) bool {
	if p.Unrestricted {
		return true
	}
	if perm == 0 {
		return false
	}
	g := p.grantsOf()
	return (g.system.of(typ)|g.patient.of(typ))&perm == perm
}

// Confined reports whether p's access to resources of type typ is limited
// to the compartment of p.Patient: its patient/ scopes grant on typ
// something its system/ scopes do not. When the system/ scopes cover all
// the patient/ scopes grant on a type, they win: the patient context does
// not narrow them. Confining per type rather than per permission keeps the
// rule simple and never widens: a principal with system/Observation.r and
// patient/Observation.s is confined for reads too.
func (p Principal) Confined(typ string) bool {
	if p.Unrestricted {
		return false
	}
	g := p.grantsOf()
	return g.patient.of(typ)&^g.system.of(typ) != 0
}

// ConfinedAny reports whether p is confined for some type (or every type).
func (p Principal) ConfinedAny() bool {
	if p.Unrestricted {
		return false
	}
	g := p.grantsOf()
	if g.patient.all&^g.system.all != 0 {
		return true
	}
	for typ := range g.patient.types {
		if p.Confined(typ) {
			return true
		}
	}
	return false
}

func (p Principal) grantsOf() *grants {
	if p.grants != nil {
		return p.grants
	}
	return grantsOf(p.Scopes, p.Patient != "")
}

// grants are a principal's usable scopes, parsed, by context. Only system
// and patient scopes without a query count: those are the only ones the
// token endpoint grants; patient scopes only with a patient to confine
// them to (deny by default).
type grants struct {
	system, patient permSet
}

// permSet is permissions for every type (wildcard scopes) and per type.
type permSet struct {
	all   Perm
	types map[string]Perm
}

func (ps permSet) of(typ string) Perm { return ps.all | ps.types[typ] }

func grantsOf(scopes []string, hasPatient bool) *grants {
	g := &grants{system: permSet{types: map[string]Perm{}}, patient: permSet{types: map[string]Perm{}}}
	for _, s := range scopes {
		sc, err := ParseScope(s)
		if err != nil || sc.Query != "" {
			continue
		}
		var ps *permSet
		switch {
		case sc.Context == "system":
			ps = &g.system
		case sc.Context == "patient" && hasPatient:
			ps = &g.patient
		default:
			continue
		}
		if sc.Type == "*" {
			ps.all |= sc.Perms
		} else {
			ps.types[sc.Type] |= sc.Perms
		}
	}
	return g
}

// Needed names the scope that would allow perm on typ, in v2 and v1 form,
// for an error message: "system/Patient.r (v1: system/Patient.read)".
func Needed(typ string, perm Perm) string {
	s := Scope{Context: "system", Type: typ, Perms: perm}.String()
	v1 := ""
	switch {
	case perm&^permRead1 == 0:
		v1 = "read"
	case perm&^permWrite == 0:
		v1 = "write"
	}
	if v1 == "" {
		return s
	}
	return s + " (v1: system/" + typ + "." + v1 + ")"
}
