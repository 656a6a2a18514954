package search

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"healthhub/conformance"
)

// Type is a SearchParameter type.
type Type string

const (
	Number    Type = "number"
	Date      Type = "date"
	String    Type = "string"
	Token     Type = "token"
	Reference Type = "reference"
	Composite Type = "composite"
	Quantity  Type = "quantity"
	URI       Type = "uri"
	Special   Type = "special"
)

// SearchTypes are the resource types whose search parameters the server
// indexes: the exchange's own types and what they point at most.
var SearchTypes = []string{"Patient", "Encounter", "Observation", "Appointment", "Organization", "Practitioner"}

// Param is one search parameter as it applies to one resource type.
type Param struct {
	Code string // the name in the query, e.g. "birthdate"
	Type Type
	URL  string // canonical URL of the definition
	// Expression is the FHIRPath of the definition restricted to this
	// resource type (a multi-base definition's other types removed).
	Expression string
	Targets    []string    // reference target types
	Components []Component // composite parts
	// UnionOf, when set, are parameters of the same type whose values
	// together are exactly this one's: its expression is their expressions
	// joined by " | " (Observation's combo-code is code | component-code).
	// Such a parameter has no index of its own; its scans are theirs.
	UnionOf []*Param
	// Within, when set, is a parameter whose values include all of this
	// one's, with the same keys (findNarrowings): this one is answered from
	// Within's index, and the candidates are checked. For a reference
	// narrowed by resolve() (Observation's patient in subject), WithinType
	// is the type, and a Type/id key of it there names exactly this one's
	// values: no check needed.
	Within     *Param
	WithinType string
	// CodeSystem is the code system of a token parameter over a FHIR
	// code element whose required binding takes its codes from one
	// system (Patient.gender: http://hl7.org/fhir/administrative-gender).
	// The element has no system of its own, but its codes mean that
	// system's: its values carry it, so gender=<system>|male finds them
	// as gender=male does, as on a Coding.
	CodeSystem string
}

// Stored reports whether the search index holds keys of p. A union of other
// parameters is answered from their keys, and _id from the resources
// themselves (every resource has exactly its own): storing either would
// add index writes to every create for nothing.
func (p *Param) Stored() bool { return len(p.UnionOf) == 0 && p.Within == nil && p.Code != "_id" }

// IndexCode is the parameter whose index holds p's reference keys: p's
// own, or Within's.
func (p *Param) IndexCode() string {
	if p.Within != nil {
		return p.Within.Code
	}
	return p.Code
}

// Component is one part of a composite parameter.
type Component struct {
	Definition string // URL of the component's own SearchParameter
	Expression string // relative to the composite's expression
	Param      *Param // the component's definition, resolved
}

// Registry holds the official R4 search parameters of SearchTypes.
type Registry struct {
	byType map[string]map[string]*Param
}

type definition struct {
	URL        string   `json:"url"`
	Code       string   `json:"code"`
	Type       Type     `json:"type"`
	Base       []string `json:"base"`
	Expression string   `json:"expression"`
	XPathUsage string   `json:"xpathUsage"`
	Target     []string `json:"target"`
	Component  []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// Load reads the embedded official definitions. Parameters without an
// expression (_text, _content, _query) and phonetic ones are left out: the
// registry holds only what the server can evaluate.
func Load() (*Registry, error) {
	var bundle struct {
		Entry []struct {
			Resource definition `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(conformance.SearchParametersJSON(), &bundle); err != nil {
		return nil, fmt.Errorf("search: embedded definitions: %w", err)
	}
	byURL := map[string]definition{}
	for _, e := range bundle.Entry {
		byURL[e.Resource.URL] = e.Resource
	}
	r := &Registry{byType: map[string]map[string]*Param{}}
	for _, typ := range SearchTypes {
		params := map[string]*Param{}
		for _, e := range bundle.Entry {
			d := e.Resource
			if !appliesTo(d, typ) || d.Expression == "" || d.XPathUsage == "phonetic" || d.Type == Special {
				continue
			}
			p, err := newParam(d, typ, byURL)
			if err != nil {
				return nil, err
			}
			params[p.Code] = p
		}
		findUnions(params)
		findNarrowings(params)
		r.byType[typ] = params
	}
	// Compile every expression now: a definition we cannot evaluate is a
	// start-up error, not a surprise at the first write.
	if err := r.Compile(); err != nil {
		return nil, err
	}
	return r, nil
}

// findUnions sets UnionOf on every parameter whose expression is the union
// of other parameters' expressions, of its own type and, for composites,
// with the same component expressions and types: then its values are
// exactly theirs, value for value.
func findUnions(params map[string]*Param) {
	alts := map[*Param][]string{}
	for _, p := range params {
		for _, a := range splitTopLevel(p.Expression) {
			alts[p] = append(alts[p], strings.TrimSpace(a))
		}
	}
	for _, p := range params {
		var members []*Param
		rest := alts[p]
		for len(rest) > 0 {
			// The longest other parameter that covers the next alternatives.
			var best *Param
			for _, m := range params {
				n := len(alts[m])
				if m != p && n < len(alts[p]) && n <= len(rest) && slices.Equal(alts[m], rest[:n]) && sameShape(m, p) &&
					(best == nil || n > len(alts[best])) {
					best = m
				}
			}
			if best == nil {
				members = nil
				break
			}
			members = append(members, best)
			rest = rest[len(alts[best]):]
		}
		p.UnionOf = members
	}
}

// findNarrowings sets Within on every parameter whose values are a subset
// of another one's, with the same keys: a reference parameter narrowed to a
// type by resolve() (WithinType says which: its Type/id keys there are
// exactly its own), a string parameter on one part of a HumanName or
// Address whose whole another parameter searches (family in name), and a
// token parameter that filters another's elements with where() (phone in
// telecom).
func findNarrowings(params map[string]*Param) {
	byExpr := map[string]*Param{}
	for _, p := range params {
		if len(splitTopLevel(p.Expression)) == 1 {
			byExpr[p.Expression] = p
		}
	}
	wider := func(p *Param, base string) *Param {
		q, ok := byExpr[base]
		if !ok || q == p || q.Type != p.Type {
			return nil
		}
		return q
	}
	for _, p := range params {
		if len(splitTopLevel(p.Expression)) != 1 {
			continue
		}
		switch p.Type {
		case Reference:
			base, rest, ok := strings.Cut(p.Expression, ".where(resolve() is ")
			typ, closed := strings.CutSuffix(rest, ")")
			if q := wider(p, base); ok && closed && q != nil && conformance.IsResourceType(typ) {
				p.Within, p.WithinType = q, typ
			}
		case String:
			i := strings.LastIndexByte(p.Expression, '.')
			if i > 0 && slices.Contains(stringParts, p.Expression[i+1:]) {
				p.Within = wider(p, p.Expression[:i])
			}
		case Token:
			base, _, ok := strings.Cut(p.Expression, ".where(")
			if ok && strings.HasSuffix(p.Expression, ")") {
				p.Within = wider(p, base)
			}
		}
	}
}

// sameShape: same type, same targets and, for composites, the same
// components in the same order.
func sameShape(a, b *Param) bool {
	if a.Type != b.Type || !slices.Equal(a.Targets, b.Targets) || len(a.Components) != len(b.Components) {
		return false
	}
	for i, c := range a.Components {
		d := b.Components[i]
		if c.Expression != d.Expression || c.Param.Type != d.Param.Type {
			return false
		}
	}
	return true
}

func appliesTo(d definition, typ string) bool {
	for _, b := range d.Base {
		if b == typ || b == "Resource" || b == "DomainResource" {
			return true
		}
	}
	return false
}

func newParam(d definition, typ string, byURL map[string]definition) (*Param, error) {
	p := &Param{Code: d.Code, Type: d.Type, URL: d.URL, Targets: d.Target, Expression: ExpressionFor(d.Expression, typ)}
	if p.Expression == "" {
		return nil, fmt.Errorf("search: %s has no expression for %s", d.URL, typ)
	}
	if p.Type == Token {
		p.CodeSystem = boundCodeSystems[p.Expression]
	}
	for _, c := range d.Component {
		cd, ok := byURL[c.Definition]
		if !ok {
			return nil, fmt.Errorf("search: %s: component %s is not defined", d.URL, c.Definition)
		}
		cp := &Param{Code: cd.Code, Type: cd.Type, URL: cd.URL, Targets: cd.Target, Expression: c.Expression}
		p.Components = append(p.Components, Component{Definition: c.Definition, Expression: c.Expression, Param: cp})
	}
	return p, nil
}

// boundCodeSystems are the code systems of the code elements that token
// parameters of SearchTypes index, by the parameter's expression: each
// element's required binding (R4 element definitions) is to a value set of
// all the codes of that one system. The schema carries the codes but not
// the system; TestBoundCodeSystems checks that this table names exactly
// the parameters whose elements the schema gives an enum.
var boundCodeSystems = map[string]string{
	"Patient.gender":                 "http://hl7.org/fhir/administrative-gender",
	"Practitioner.gender":            "http://hl7.org/fhir/administrative-gender",
	"Patient.address.use":            "http://hl7.org/fhir/address-use",
	"Practitioner.address.use":       "http://hl7.org/fhir/address-use",
	"Organization.address.use":       "http://hl7.org/fhir/address-use",
	"Encounter.status":               "http://hl7.org/fhir/encounter-status",
	"Observation.status":             "http://hl7.org/fhir/observation-status",
	"Appointment.status":             "http://hl7.org/fhir/appointmentstatus",
	"Appointment.participant.status": "http://hl7.org/fhir/participationstatus",
}

// ExpressionFor keeps the alternatives of a definition's expression (joined
// by top-level " | ") that apply to typ: those rooted at typ, Resource or
// DomainResource, possibly inside parentheses.
func ExpressionFor(expr, typ string) string {
	var keep []string
	for _, alt := range splitTopLevel(expr) {
		root := strings.TrimLeft(strings.TrimSpace(alt), "(")
		for _, r := range []string{typ, "Resource", "DomainResource"} {
			if root == r || strings.HasPrefix(root, r+".") || strings.HasPrefix(root, r+" ") {
				keep = append(keep, strings.TrimSpace(alt))
				break
			}
		}
	}
	return strings.Join(keep, " | ")
}

// splitTopLevel splits on '|' outside parentheses and quotes.
func splitTopLevel(expr string) []string {
	var parts []string
	depth, start, quoted := 0, 0, false
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case c == '\'':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			parts = append(parts, expr[start:i])
			start = i + 1
		}
	}
	return append(parts, expr[start:])
}

// Lookup returns the parameter code of resource type typ.
func (r *Registry) Lookup(typ, code string) (*Param, bool) {
	p, ok := r.byType[typ][code]
	return p, ok
}

// Params lists the parameters of typ, sorted by code.
func (r *Registry) Params(typ string) []*Param {
	var out []*Param
	for _, p := range r.byType[typ] {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// SearchTypes lists the types that have parameters, sorted.
func (r *Registry) SearchTypes() []string {
	out := make([]string, 0, len(r.byType))
	for t := range r.byType {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Searchable reports whether typ has indexed search parameters.
func (r *Registry) Searchable(typ string) bool {
	_, ok := r.byType[typ]
	return ok
}
