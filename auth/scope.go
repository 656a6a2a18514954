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
// allowance of system/Patient.rs grants system/Patient.rs.
//
// Only system scopes are granted: patient and user scopes need launch
// context (a patient claim, a user) that backend services do not have,
// and query-constrained scopes are not enforced, so both are refused
// rather than silently widened. An empty result is an error.
func Grant(requested string, allowed []string) ([]string, error) {
	req := strings.Fields(requested)
	if len(req) == 0 {
		return nil, &ScopeError{"scope is required, e.g. scope=system/*.rs"}
	}
	var allow []Scope
	for _, a := range allowed {
		if sc, err := ParseScope(a); err == nil && sc.Context == "system" && sc.Query == "" {
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
		case sc.Context != "system":
			return nil, &ScopeError{fmt.Sprintf("scope %q: only system/ scopes are granted to backend services (patient/ and user/ scopes need a launch context)", r)}
		case sc.Query != "":
			return nil, &ScopeError{fmt.Sprintf("scope %q: query-constrained scopes are not supported", r)}
		}
		if sc.Type == "*" {
			for _, a := range allow {
				if p := sc.Perms & a.Perms; p != 0 {
					add(Scope{Context: "system", Type: a.Type, Perms: p, V1: sc.V1})
				}
			}
			continue
		}
		var p Perm
		for _, a := range allow {
			if a.Type == "*" || a.Type == sc.Type {
				p |= a.Perms
			}
		}
		if p &= sc.Perms; p != 0 {
			add(Scope{Context: "system", Type: sc.Type, Perms: p, V1: sc.V1})
		}
	}
	if len(granted) == 0 {
		return nil, &ScopeError{fmt.Sprintf("none of the requested scopes (%s) is allowed for this client", strings.Join(req, " "))}
	}
	return granted, nil
}

// Allows reports whether p may do perm on resources of type typ. typ "*"
// asks for every type at once (system search and history), which only a
// wildcard scope grants.
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
	g := p.grants
	if g == nil {
		g = grantsOf(p.Scopes)
	}
	return (g.all|g.types[typ])&perm == perm
}

// grants are a principal's usable scopes, parsed: permissions for every
// type (wildcard scopes) and per type. Only system scopes without a query
// count: those are the only ones the token endpoint grants.
type grants struct {
	all   Perm
	types map[string]Perm
}

func grantsOf(scopes []string) *grants {
	g := &grants{types: map[string]Perm{}}
	for _, s := range scopes {
		sc, err := ParseScope(s)
		if err != nil || sc.Context != "system" || sc.Query != "" {
			continue
		}
		if sc.Type == "*" {
			g.all |= sc.Perms
		} else {
			g.types[sc.Type] |= sc.Perms
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
