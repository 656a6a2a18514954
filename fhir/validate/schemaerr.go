package validate

import (
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// schemaIssues turns the schema library's error tree for the resource root
// (found at w.path) into issues: one per leaf, in FHIR's words, with a
// FHIRPath expression instead of a JSON pointer.
func (w *walker) schemaIssues(err error, root any) {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		w.err = err // InfiniteLoopError or InvalidJSONTypeError: our bug, not the client's
		return
	}
	prefix := string(w.path)
	var leaves func(e *jsonschema.ValidationError)
	leaves = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			w.schemaLeaf(e, root, prefix)
			return
		}
		for _, c := range e.Causes {
			leaves(c)
		}
	}
	leaves(ve)
}

func (w *walker) schemaLeaf(e *jsonschema.ValidationError, root any, prefix string) {
	tokens := pointerTokens(e.InstanceLocation)
	value, ok := lookup(root, tokens)
	if !ok {
		value = nil
	}
	expr := fhirPath(prefix, tokens)

	// The keyword's schema location: ".../definitions/<def>[/properties/<p>]/<keyword>".
	loc := e.AbsoluteKeywordLocation
	if i := strings.IndexByte(loc, '#'); i >= 0 {
		loc = loc[i+1:]
	}
	parts := strings.Split(strings.TrimPrefix(loc, "/"), "/")
	keyword := parts[len(parts)-1]
	defName := ""
	if len(parts) >= 2 && parts[0] == "definitions" {
		defName = parts[1]
	}
	def := w.set.defs[defName]

	// A null inside an array is judged by the walker alone: in a primitive
	// array it is the placeholder FHIR JSON uses for a value that has only
	// extensions, which the R4 schema does not know about.
	if value == nil && len(tokens) > 0 && isIndex(tokens[len(tokens)-1]) {
		return
	}
	switch keyword {
	case "type":
		w.addAt("structure", expr, "wrong JSON type: %s", e.Message)
	case "additionalProperties":
		obj, _ := value.(map[string]any)
		for _, name := range unknownMembers(obj, def) {
			w.addAt("structure", expr+"."+name, "unknown element %q", name)
		}
	case "required":
		obj, _ := value.(map[string]any)
		if def == nil {
			w.addAt("required", expr, "%s", e.Message)
			return
		}
		for _, name := range def.required {
			// A missing resourceType is reported where resources are
			// dispatched (Validate, nested), in better words.
			if _, ok := obj[name]; !ok && name != "resourceType" {
				w.addAt("required", expr+"."+name, "%s is required", name)
			}
		}
	case "pattern":
		w.addAt("value", expr, "%s is not a valid %s", jsonText(value), w.patternType(parts, def))
	case "enum":
		w.addAt("value", expr, "%s is not an allowed code here: %s", jsonText(value), e.Message)
	case "const":
		w.addAt("invalid", expr, "%s: %s", jsonText(value), e.Message)
	default:
		w.addAt("structure", expr, "%s", e.Message)
	}
}

// patternType names the primitive type whose pattern failed: the definition
// itself ("#/definitions/id/pattern"), or an inline property
// ("#/definitions/Extension/properties/valueDate/pattern").
func (w *walker) patternType(parts []string, def *definition) string {
	if def != nil && len(parts) >= 5 && parts[2] == "properties" {
		if p := def.props[unescapeToken(parts[3])]; p != nil && p.prim != "" {
			return p.prim
		}
	}
	if len(parts) >= 2 && def == nil {
		return parts[1]
	}
	return "value"
}

func unknownMembers(obj map[string]any, def *definition) []string {
	var names []string
	for k := range obj {
		if def == nil || (def.props[k] == nil && !(def.resource && k == "resourceType")) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// pointerTokens splits a JSON pointer as the schema library writes it
// (tokens escaped with ~0, ~1 and then URL path escaping).
func pointerTokens(ptr string) []string {
	if ptr == "" {
		return nil
	}
	raw := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, t := range raw {
		raw[i] = unescapeToken(t)
	}
	return raw
}

func unescapeToken(t string) string {
	if u, err := url.PathUnescape(t); err == nil {
		t = u
	}
	t = strings.ReplaceAll(t, "~1", "/")
	return strings.ReplaceAll(t, "~0", "~")
}

func lookup(v any, tokens []string) (any, bool) {
	for _, t := range tokens {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[t]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// fhirPath writes pointer tokens as FHIRPath: array indexes in brackets
// (FHIR element names are never numbers, so a number is an index).
func fhirPath(prefix string, tokens []string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, t := range tokens {
		switch {
		case isIndex(t):
			b.WriteString("[" + t + "]")
		case strings.HasPrefix(t, "_"):
			// _x holds the extensions of x; FHIRPath has only x.
			b.WriteString("." + t[1:])
		default:
			b.WriteString("." + t)
		}
	}
	return b.String()
}

func isIndex(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	return true
}
