package search

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"healthhub/conformance"
	"healthhub/fhir"
)

// Operand is one value of a condition's OR list (the comma-separated values
// of one parameter occurrence), typed by the parameter. Which fields are set
// depends on the parameter's type and modifier:
//
//	number     Prefix, Number
//	date       Prefix, Date, Text (the date as written; see below)
//	string     Text (escapes removed)
//	uri        Text
//	token      Token; with :text, Text; with :of-type, Token.System/Code/Value
//	reference  Ref; with :identifier, Token
//	quantity   Prefix, Number, Token.System and Token.Code (the unit)
//	composite  Parts, one per component of the parameter, in order
//
// Dates get two leniencies, both common in clients: a '+' of a zone offset
// that arrived as a space (an unencoded '+' in a URL) is read as '+', and a
// time without a zone is taken as UTC, the server's zone.
type Operand struct {
	Prefix Prefix // number, date, quantity: PrefixEq when none was written
	Number QueryNumber
	Date   fhir.DateRange // the whole interval the date covers at its precision
	Text   string
	Token  TokenOperand
	Ref    RefOperand
	Parts  []Operand
}

// TokenOperand is a token value: code, system|code, |code or system|.
type TokenOperand struct {
	System string
	Code   string // Coding.code, Identifier.value, ContactPoint.value, or the code itself
	// SystemGiven is true when the value had a '|': then System must match
	// ("" meaning the target must have no system: "|code"), and Code ""
	// means any code of System ("system|"). Without a '|' ("code") any
	// system matches.
	SystemGiven bool
	Value       string // :of-type only: the identifier value; System|Code is the identifier type
}

// RefOperand is a reference value: Type/id, a bare id, Type/id/_history/v,
// or an absolute URL.
type RefOperand struct {
	// Type is the resource type: written in the value, given by a :Type
	// modifier, or the parameter's only target type. Empty for a bare id
	// on a parameter with several targets (any of them matches).
	Type    string
	ID      string
	Version string // from .../_history/v
	// URL is set for an absolute reference (http..., urn:...), as written.
	// When it ends in [Type]/[id] (or .../_history/v), Type, ID and Version
	// are filled from that tail too, so the executor can recognise its own
	// base; whether the base is ours is not the parser's business.
	URL string
	// Base, set by the executor for a relative reference, is the server's
	// own base URL: a stored reference may name the same resource as
	// Base/Type/id, which the index holds as written, so the operand
	// matches that form too.
	Base string
}

// parseOperand reads one OR alternative s (still escaped) of parameter p.
func parseQueryOperand(p *Param, mod Modifier, refType, s string) (Operand, error) {
	switch p.Type {
	case Number:
		pre, rest, err := cutPrefix(unescapeSearch(s))
		if err != nil {
			return Operand{}, err
		}
		n, err := ParseQueryNumber(rest)
		return Operand{Prefix: pre, Number: n}, err
	case Date:
		return parseQueryDate(unescapeSearch(s))
	case String, URI:
		return Operand{Text: unescapeSearch(s)}, nil
	case Token:
		switch mod {
		case ModText:
			return Operand{Text: unescapeSearch(s)}, nil
		case ModOfType:
			parts := splitEscaped(s, '|')
			if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
				return Operand{}, errors.New("with :of-type the value is type-system|type-code|identifier-value, all three given")
			}
			return Operand{Token: TokenOperand{System: unescapeSearch(parts[0]), Code: unescapeSearch(parts[1]), SystemGiven: true, Value: unescapeSearch(parts[2])}}, nil
		}
		t, err := parseQueryToken(s)
		return Operand{Token: t}, err
	case Reference:
		if mod == ModIdentifier {
			t, err := parseQueryToken(s)
			return Operand{Token: t}, err
		}
		r, err := parseQueryReference(p, refType, s)
		return Operand{Ref: r}, err
	case Quantity:
		return parseQueryQuantity(s)
	case Composite:
		parts := splitEscaped(s, '$')
		if len(parts) != len(p.Components) {
			return Operand{}, fmt.Errorf("a %s value has %d parts separated by $, got %d", p.Code, len(p.Components), len(parts))
		}
		o := Operand{Parts: make([]Operand, len(parts))}
		for i, part := range parts {
			c := p.Components[i].Param
			if part == "" {
				return Operand{}, fmt.Errorf("the %s part (%d) is empty", c.Code, i+1)
			}
			v, err := parseQueryOperand(c, ModNone, "", part)
			if err != nil {
				return Operand{}, fmt.Errorf("%s part: %w", c.Code, err)
			}
			o.Parts[i] = v
		}
		return o, nil
	}
	return Operand{}, fmt.Errorf("parameters of type %s cannot be searched", p.Type)
}

// parseToken reads code, system|code, |code or system|.
func parseQueryToken(s string) (TokenOperand, error) {
	parts := splitEscaped(s, '|')
	switch {
	case len(parts) == 1:
		return TokenOperand{Code: unescapeSearch(s)}, nil
	case len(parts) > 2:
		return TokenOperand{}, errors.New(`a token is code, system|code, |code or system|; escape a literal | as \|`)
	case parts[0] == "" && parts[1] == "":
		return TokenOperand{}, errors.New("a token needs a system or a code around the |")
	}
	return TokenOperand{System: unescapeSearch(parts[0]), Code: unescapeSearch(parts[1]), SystemGiven: true}, nil
}

// parseDateOperand reads [prefix]date. Two leniencies, both common in
// clients: a '+' of a zone offset that arrived as a space (an unencoded '+'
// in a URL) is read as '+', and a time without a zone is taken as UTC, the
// server's zone. Text keeps the value as written (after the '+' repair).
func parseQueryDate(s string) (Operand, error) {
	pre, rest, err := cutPrefix(s)
	if err != nil {
		return Operand{}, err
	}
	if t := strings.IndexByte(rest, 'T'); t >= 0 {
		rest = rest[:t] + strings.ReplaceAll(rest[t:], " ", "+")
	}
	parse := rest
	if t := strings.IndexByte(rest, 'T'); t >= 0 && !strings.ContainsAny(rest[t:], "Z+-") {
		parse += "Z"
	}
	d, err := fhir.ParseDateTime(parse)
	if err != nil {
		return Operand{}, fmt.Errorf("not a date: %q (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.sss]][Z|+hh:mm|-hh:mm])", rest)
	}
	return Operand{Prefix: pre, Date: d, Text: rest}, nil
}

// parseQuantity reads [prefix]number, [prefix]number|system|code or
// [prefix]number||code. With no system, Code matches the coded unit or the
// unit text (R4 search, quantity).
func parseQueryQuantity(s string) (Operand, error) {
	parts := splitEscaped(s, '|')
	if len(parts) != 1 && len(parts) != 3 {
		return Operand{}, errors.New("a quantity is [prefix]number, [prefix]number|system|code or [prefix]number||unit")
	}
	pre, rest, err := cutPrefix(unescapeSearch(parts[0]))
	if err != nil {
		return Operand{}, err
	}
	n, err := ParseQueryNumber(rest)
	if err != nil {
		return Operand{}, err
	}
	o := Operand{Prefix: pre, Number: n}
	if len(parts) == 3 {
		o.Token = TokenOperand{System: unescapeSearch(parts[1]), Code: unescapeSearch(parts[2])}
		if o.Token.System == "" && o.Token.Code == "" {
			o.Token = TokenOperand{} // "5.4||" says no more than "5.4"
		}
	}
	return o, nil
}

// parseReference reads a reference value of p. A '|' is refused rather
// than read as a canonical version: none of the parameters of SearchTypes
// points at a canonical resource, and "subject=system|value" is almost
// always a forgotten :identifier.
func parseQueryReference(p *Param, refType, s string) (RefOperand, error) {
	if len(splitEscaped(s, '|')) > 1 {
		return RefOperand{}, fmt.Errorf(`a reference is Type/id, id or a URL; for system|value use %s:identifier`, p.Code)
	}
	v := unescapeSearch(s)
	if strings.Contains(v, "://") || strings.HasPrefix(v, "urn:") {
		r := RefOperand{URL: v}
		if t, id, ver, ok := queryReferenceTail(v); ok {
			if !slices.Contains(p.Targets, t) {
				return RefOperand{}, fmt.Errorf("%s cannot refer to a %s (it refers to %s)", p.Code, t, strings.Join(p.Targets, ", "))
			}
			r.Type, r.ID, r.Version = t, id, ver
		}
		if refType != "" && r.Type != "" && r.Type != refType {
			return RefOperand{}, fmt.Errorf("the URL refers to a %s, not a %s", r.Type, refType)
		}
		if r.Type == "" {
			r.Type = refType // a URN's type is its Reference.type: the modifier still holds
		}
		return r, nil
	}
	segs := strings.Split(v, "/")
	var r RefOperand
	switch {
	case len(segs) == 1:
		r.ID = segs[0]
	case len(segs) == 2 || (len(segs) == 4 && segs[2] == "_history"):
		r.Type, r.ID = segs[0], segs[1]
		if len(segs) == 4 {
			r.Version = segs[3]
			if !fhir.ValidID(r.Version) {
				return RefOperand{}, fmt.Errorf("%q is not a version id", r.Version)
			}
		}
		if !conformance.IsResourceType(r.Type) {
			return RefOperand{}, fmt.Errorf("%q is not a resource type", r.Type)
		}
		if !slices.Contains(p.Targets, r.Type) {
			return RefOperand{}, fmt.Errorf("%s cannot refer to a %s (it refers to %s)", p.Code, r.Type, strings.Join(p.Targets, ", "))
		}
		if refType != "" && r.Type != refType {
			return RefOperand{}, fmt.Errorf("the value refers to a %s, but the modifier says %s", r.Type, refType)
		}
	default:
		return RefOperand{}, errors.New("a reference is Type/id, Type/id/_history/version, id or an absolute URL")
	}
	if !fhir.ValidID(r.ID) {
		return RefOperand{}, fmt.Errorf("%q is not a resource id (1 to 64 of A-Z a-z 0-9 - .)", r.ID)
	}
	if r.Type == "" {
		r.Type = refType
		if r.Type == "" && len(p.Targets) == 1 {
			r.Type = p.Targets[0] // "patient=123" can only mean Patient/123
		}
	}
	return r, nil
}

// referenceTail finds [Type]/[id] or [Type]/[id]/_history/[v] at the end of
// an absolute URL.
func queryReferenceTail(u string) (typ, id, version string, ok bool) {
	segs := strings.Split(u, "/")
	n := len(segs)
	if n >= 5 && segs[n-2] == "_history" {
		version, segs, n = segs[n-1], segs[:n-2], n-2
		if !fhir.ValidID(version) {
			return "", "", "", false
		}
	}
	if n < 3 || !conformance.IsResourceType(segs[n-2]) || !fhir.ValidID(segs[n-1]) {
		return "", "", "", false
	}
	return segs[n-2], segs[n-1], version, true
}

// renderOperand writes o back as a canonical value (escaped) of p.
func renderQueryOperand(p *Param, mod Modifier, o Operand) string {
	switch p.Type {
	case Number:
		return o.Prefix.text() + o.Number.Text
	case Date:
		return o.Prefix.text() + escapeSearch(o.Text)
	case String, URI:
		return escapeSearch(o.Text)
	case Token:
		switch mod {
		case ModText:
			return escapeSearch(o.Text)
		case ModOfType:
			return escapeSearch(o.Token.System) + "|" + escapeSearch(o.Token.Code) + "|" + escapeSearch(o.Token.Value)
		}
		return renderQueryToken(o.Token)
	case Reference:
		switch {
		case mod == ModIdentifier:
			return renderQueryToken(o.Token)
		case o.Ref.URL != "":
			return escapeSearch(o.Ref.URL)
		}
		s := escapeSearch(o.Ref.ID)
		if o.Ref.Type != "" && (mod != ModType || o.Ref.Version != "") {
			s = o.Ref.Type + "/" + s
		}
		if o.Ref.Version != "" {
			s += "/_history/" + o.Ref.Version
		}
		return s
	case Quantity:
		s := o.Prefix.text() + o.Number.Text
		if o.Token.System != "" || o.Token.Code != "" {
			s += "|" + escapeSearch(o.Token.System) + "|" + escapeSearch(o.Token.Code)
		}
		return s
	case Composite:
		parts := make([]string, len(o.Parts))
		for i, part := range o.Parts {
			parts[i] = renderQueryOperand(p.Components[i].Param, ModNone, part)
		}
		return strings.Join(parts, "$")
	}
	return ""
}

func renderQueryToken(t TokenOperand) string {
	if !t.SystemGiven {
		return escapeSearch(t.Code)
	}
	return escapeSearch(t.System) + "|" + escapeSearch(t.Code)
}

// splitValue splits s on each sep that is not escaped by a backslash,
// keeping the escapes in the parts (R4 search, "Escaping Search
// Parameters": \, \| \$ and \\ are literal). A backslash before any other
// character escapes nothing and is kept as a literal backslash; that
// character is never a separator, so splitting first and unescaping each
// part later gives the same parts at every level (OR list, composite,
// token).
func splitEscaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

const searchSpecialChars = `\,|$`

// unescapeValue removes the escapes of \, \| \$ and \\.
func unescapeSearch(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(searchSpecialChars, s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// escapeValue escapes every character with a meaning in search values, so
// a canonical value reads back the same in any position.
func escapeSearch(s string) string {
	if !strings.ContainsAny(s, searchSpecialChars) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(searchSpecialChars, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
