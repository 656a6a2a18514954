package search

import (
	"encoding/json"
	"fmt"
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
		r.byType[typ] = params
	}
	// Compile every expression now: a definition we cannot evaluate is a
	// start-up error, not a surprise at the first write.
	if err := r.Compile(); err != nil {
		return nil, err
	}
	return r, nil
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
