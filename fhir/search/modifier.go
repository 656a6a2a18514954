package search

import (
	"fmt"
	"slices"
	"strings"

	"healthhub/conformance"
)

// Modifier is the part of a parameter name after ':' (R4 search,
// "Modifiers"). ModNone is the zero value.
type Modifier string

const (
	ModNone       Modifier = ""
	ModMissing    Modifier = "missing"    // every type: =true has no value, =false has one
	ModExact      Modifier = "exact"      // string: whole value, case and accents as given
	ModContains   Modifier = "contains"   // string: anywhere in the value
	ModText       Modifier = "text"       // token: the text or display of the code
	ModNot        Modifier = "not"        // token: no value matches (resources without one included)
	ModAbove      Modifier = "above"      // uri (URLs): the target is one of the value's parents
	ModBelow      Modifier = "below"      // uri: the target starts with the value
	ModIn         Modifier = "in"         // token: in a value set (not supported)
	ModNotIn      Modifier = "not-in"     // token: not in a value set (not supported)
	ModOfType     Modifier = "of-type"    // token on an Identifier: type-system|type-code|value
	ModIdentifier Modifier = "identifier" // reference: Reference.identifier, as a token
	ModType       Modifier = "[type]"     // reference: ":Patient" and the like; the type is Condition.Type
)

// modifierRules lists, per parameter type, the modifiers the server
// answers and those R4 defines for the type but the server does not
// support (answered with not-supported rather than ignored: ignoring
// :not-in would return the opposite of what was asked).
var modifierRules = map[Type]struct{ supported, unsupported []Modifier }{
	Number:    {supported: []Modifier{ModMissing}},
	Date:      {supported: []Modifier{ModMissing}},
	String:    {supported: []Modifier{ModMissing, ModExact, ModContains}},
	Token:     {supported: []Modifier{ModMissing, ModText, ModNot, ModOfType}, unsupported: []Modifier{ModAbove, ModBelow, ModIn, ModNotIn}},
	Reference: {supported: []Modifier{ModMissing, ModIdentifier, ModType}, unsupported: []Modifier{ModAbove, ModBelow}},
	Quantity:  {supported: []Modifier{ModMissing}},
	URI:       {supported: []Modifier{ModMissing, ModAbove, ModBelow}},
	Composite: {supported: []Modifier{ModMissing}},
}

var namedModifiers = map[string]Modifier{
	"missing": ModMissing, "exact": ModExact, "contains": ModContains, "text": ModText,
	"not": ModNot, "above": ModAbove, "below": ModBelow, "in": ModIn, "not-in": ModNotIn,
	"of-type": ModOfType, "identifier": ModIdentifier,
}

// checkModifier resolves the modifier written after p's code. For a
// reference type modifier it also returns the type.
func checkModifier(p *Param, written string) (Modifier, string, *queryProblem) {
	if written == "" {
		return ModNone, "", nil
	}
	rules := modifierRules[p.Type]
	m, named := namedModifiers[written]
	if !named {
		if !conformance.IsResourceType(written) {
			return "", "", queryInvalid("unknown modifier :%s on search parameter %s", written, p.Code)
		}
		if p.Type != Reference {
			return "", "", queryInvalid("modifier :%s applies to reference parameters only; %s is a %s parameter", written, p.Code, p.Type)
		}
		if !slices.Contains(p.Targets, written) {
			return "", "", queryInvalid("%s cannot refer to a %s (it refers to %s)", p.Code, written, strings.Join(p.Targets, ", "))
		}
		return ModType, written, nil
	}
	switch {
	case slices.Contains(rules.unsupported, m):
		return "", "", queryNotSupported("modifier :%s on %s parameter %s is not supported by this server", m, p.Type, p.Code)
	case !slices.Contains(rules.supported, m):
		return "", "", queryInvalid("modifier :%s does not apply to %s parameter %s", m, p.Type, p.Code)
	case m == ModOfType && !isIdentifierParam(p):
		return "", "", queryInvalid("modifier :of-type applies to identifier parameters only, not %s", p.Code)
	}
	return m, "", nil
}

// isIdentifierParam reports whether every path of p ends at an Identifier
// element, the only place :of-type means something.
func isIdentifierParam(p *Param) bool {
	if p.Type != Token {
		return false
	}
	for _, alt := range splitTopLevel(p.Expression) {
		if !strings.HasSuffix(strings.TrimSpace(alt), ".identifier") {
			return false
		}
	}
	return true
}

// String returns the modifier as written after ':' ("" for ModNone; the
// type modifier depends on the condition, see Condition.Key).
func (m Modifier) String() string { return string(m) }

func (m Modifier) suffix(refType string) string {
	switch m {
	case ModNone:
		return ""
	case ModType:
		return ":" + refType
	}
	return fmt.Sprintf(":%s", string(m))
}
