package validate

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"

	"healthhub/conformance"
	"healthhub/fhir"
)

// Validator checks resource bodies against the R4 schema and the rules a
// schema cannot express. It holds no state of its own: the compiled schemas
// are immutable, large and the same for every Validator, so they live in one
// process-wide set (see schemas), and any number of Validators share them.
type Validator struct {
	_ struct{} // room for per-server options without changing callers
}

// ErrMalformed is wrapped by Validate's error when the body is not
// well-formed JSON as FHIR reads it (a repeated member name, a lone
// surrogate, nesting too deep): a request that could not be parsed (400),
// not a resource that breaks the rules (422).
var ErrMalformed = errors.New("validate: malformed JSON")

// New returns a Validator; per-type schemas compile lazily on first use and
// are cached; safe for concurrent use.
func New() *Validator { return &Validator{} }

// Validate checks one resource body (a JSON object) of the given R4 resource
// type. It returns nil, or a *fhir.Error of Kind fhir.Invalid with one
// fhir.Issue per problem found, all of them, each naming the element path.
func (v *Validator) Validate(resourceType string, body []byte) error {
	if !conformance.IsResourceType(resourceType) {
		return invalid(fhir.Issue{Severity: "error", Code: "invalid",
			Diagnostics: fmt.Sprintf("%q is not an R4 resource type", resourceType),
			Expression:  []string{"resourceType"}})
	}
	set, err := schemas()
	if err != nil {
		return &fhir.Error{Kind: fhir.Internal, Err: err}
	}
	doc, err := decode(body)
	if err != nil {
		e := invalid(fhir.Issue{Severity: "error", Code: "structure",
			Diagnostics: err.Error(), Expression: []string{resourceType}})
		e.Err = ErrMalformed
		return e
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return invalid(fhir.Issue{Severity: "error", Code: "structure",
			Diagnostics: "the body is not a JSON object", Expression: []string{resourceType}})
	}
	w := &walker{set: set, path: make([]byte, 0, 128)}
	switch rt, present := obj["resourceType"]; {
	case !present:
		// Reported, and the rest is checked as the type asked for: the
		// client most likely meant that type, and wants all its problems.
		w.addAt("invalid", "resourceType", "resourceType is missing; expected %q", resourceType)
	case rt != resourceType:
		// Nothing else is checked: the client and the URL disagree on what
		// the body is, and checking it as either would mislead one of them.
		return invalid(fhir.Issue{Severity: "error", Code: "invalid",
			Diagnostics: fmt.Sprintf("resourceType is %s, but the request is for %s", jsonText(rt), resourceType),
			Expression:  []string{"resourceType"}})
	}

	w.path = append(w.path, resourceType...)
	w.resource(obj, resourceType, -1, false)
	if w.err != nil {
		return &fhir.Error{Kind: fhir.Internal, Err: w.err}
	}
	if len(w.issues) == 0 {
		return nil
	}
	return invalid(w.issues...)
}

// invalid sorts issues by element path, so the same body always gives the
// same outcome (the schema library walks maps in random order), and drops
// exact duplicates.
func invalid(issues ...fhir.Issue) *fhir.Error {
	slices.SortStableFunc(issues, func(a, b fhir.Issue) int {
		return cmp.Or(
			cmp.Compare(first(a.Expression), first(b.Expression)),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.Diagnostics, b.Diagnostics))
	})
	issues = slices.CompactFunc(issues, func(a, b fhir.Issue) bool {
		return a.Code == b.Code && a.Diagnostics == b.Diagnostics && first(a.Expression) == first(b.Expression)
	})
	return &fhir.Error{Kind: fhir.Invalid, Issues: issues}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// jsonText shows a decoded JSON value in a diagnostic, short.
func jsonText(v any) string {
	switch v := v.(type) {
	case string:
		if len(v) > 80 {
			v = v[:80] + "..."
		}
		return strconv.Quote(v)
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return fmt.Sprint(v)
	}
}

// crossCheck makes every resource go through the schema library as well as
// the walk, and turns any disagreement into an error. Tests and the fuzz
// target turn it on (export_test.go); production leaves it off.
var crossCheck atomic.Bool
