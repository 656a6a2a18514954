package search

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"healthhub/conformance"
	"healthhub/fhir"
)

// Page sizes. A search without _count returns DefaultCount entries a page;
// a _count above MaxCount is lowered to MaxCount (R4 lets a server return
// fewer than asked), and the self link says so. _count=0 is allowed: it
// asks for the total only.
const (
	DefaultCount = 20
	MaxCount     = 1000
)

// MaxChainDepth is the longest chain (forward links plus _has links) a
// query may use; each link costs an index join.
const MaxChainDepth = 4

// Query is a parsed search on one resource type, or a system-level search
// when Type is "". The conditions are ANDed: Conditions, Chains and Has
// must all hold; within one Condition the Operands are ORed.
type Query struct {
	Type  string   // the searched type; "" for a system-level search
	Types []string // system-level search only: the _type list, or every searchable type

	Conditions []Condition // on the searched type itself
	Chains     []Chain     // subject:Patient.name=..., patient.identifier=...
	Has        []Chain     // _has:Observation:patient:code=...

	Sort       []SortKey // _sort, in order; empty: the executor's own stable order
	Count      int       // _count: DefaultCount unless given, at most MaxCount
	Total      Total     // _total: "" when not asked
	Summary    Summary   // _summary: "" when not asked
	Elements   []string  // _elements, deduplicated, in the order given
	Include    []Include // _include
	RevInclude []Include // _revinclude
	Cursor     string    // _cursor: opaque paging continuation, passed through

	// Ignored lists what was left out because the server does not know or
	// support it (only when not strict): parameter names as written, and
	// "_include=value" / "_revinclude=value" for include directives
	// naming a type or parameter the server does not index. Sorted.
	Ignored []string

	// SelfParams is the canonical form of everything understood, for the
	// self link and the paging links: one key per parameter (chains with
	// their target type spelled out), values re-escaped, eq prefixes left
	// out, repeated keys in the order they were given. Parsing SelfParams
	// again gives an equal Query. _format and _pretty pass through as
	// given, so following a link keeps the client's format.
	SelfParams url.Values
}

// Condition is one occurrence of a parameter: param[:modifier]=v1,v2,...
type Condition struct {
	Param    *Param
	Modifier Modifier
	Type     string    // with ModType: the type named by the modifier
	Missing  bool      // with ModMissing: true asks for resources without a value
	Operands []Operand // ORed; empty with ModMissing
}

// Chain is a condition reached through references: forward links
// (subject:Patient.name) and reverse links (_has:Observation:patient:code),
// in the order written, then the condition on the last type reached.
type Chain struct {
	Steps     []Step
	Condition Condition // Param is a parameter of the last step's Type
}

// Step is one link of a Chain.
//
// Forward (Reverse false): Param is a reference parameter of the previous
// type (the searched type for the first step) and Type is the target type
// followed. Reverse (_has): Type is the type of the resources that refer,
// and Param is their reference parameter that points at the previous type.
type Step struct {
	Param   *Param
	Type    string
	Reverse bool
}

// SortKey is one _sort key.
type SortKey struct {
	Param      *Param
	Descending bool
}

// Include is one _include or _revinclude directive: Source:param[:Target].
type Include struct {
	// Source is the type that holds the reference. With _revinclude=*,
	// Source is "" (any type); with _include=* it is the searched type.
	Source  string
	Param   *Param // nil for the wildcard *: every reference parameter of Source
	Target  string // optional target type restriction
	Iterate bool   // :iterate (R3's :recurse is read as :iterate)
}

// Total is the _total parameter.
type Total string

const (
	TotalNone     Total = "none"
	TotalEstimate Total = "estimate"
	TotalAccurate Total = "accurate"
)

// Summary is the _summary parameter.
type Summary string

const (
	SummaryTrue  Summary = "true"
	SummaryFalse Summary = "false"
	SummaryCount Summary = "count"
	SummaryData  Summary = "data"
	SummaryText  Summary = "text"
)

// CountOnly reports that q asks for the total alone: _summary=count, or
// _count=0, which R4 treats the same (search.html#count: the total, no
// entries, no prev or next links).
func (q *Query) CountOnly() bool { return q.Summary == SummaryCount || q.Count == 0 }

// ForType is a system-level query's share for one of its Types: the same
// query on typ, its parameters typ's own. A parameter common to the types
// is one definition (individual-gender: Patient.gender, Practitioner.gender
// ...), whose expression differs type by type; the parser resolved it on
// the first type.
func (q *Query) ForType(r *Registry, typ string) *Query {
	own := func(p *Param) *Param {
		if o, ok := r.Lookup(typ, p.Code); ok && o.URL == p.URL {
			return o
		}
		return p
	}
	sub := *q
	sub.Type = typ
	sub.Conditions = slices.Clone(q.Conditions)
	for i := range sub.Conditions {
		sub.Conditions[i].Param = own(sub.Conditions[i].Param)
	}
	sub.Chains = slices.Clone(q.Chains)
	for i, c := range sub.Chains {
		if len(c.Steps) > 0 && !c.Steps[0].Reverse { // the first link is typ's own parameter
			steps := slices.Clone(c.Steps)
			steps[0].Param = own(steps[0].Param)
			sub.Chains[i].Steps = steps
		}
	}
	sub.Sort = slices.Clone(q.Sort)
	for i := range sub.Sort {
		sub.Sort[i].Param = own(sub.Sort[i].Param)
	}
	return &sub
}

// ParseQuery parses the query of a search on resource type typ (url.Values,
// as from a GET query or a POST _search form body). typ "" is a
// system-level search: only the parameters common to every type in _type
// (default: every searchable type) apply, and chains and _has do not.
//
// strict is Prefer: handling=strict. Unknown or unsupported parameters are
// ignored (listed in Query.Ignored and left out of Query.SelfParams) unless
// strict, when they are an error naming the parameter. Malformed values
// (bad date, bad prefix, bad token, bad modifier for the type, bad _count)
// are always an error. Every error is a *fhir.Error of Kind fhir.Invalid
// with one issue per problem, code "value", or "not-supported" for a known
// but unsupported feature (and for unknown parameters when strict); the
// diagnostics name the parameter and the value. A type that cannot be
// searched is fhir.NotFound.
//
// Decisions where R4 leaves room, beyond those documented on the types:
//   - An occurrence with an empty value (name=) and empty alternatives of
//     an OR list (a,,b) are dropped, not errors.
//   - A modifier R4 defines but the server does not answer (token :in,
//     :not-in, :above, :below; reference :above, :below) is an error, not
//     ignored: ignoring it would widen or invert the result.
//   - A chain without :Type on a reference with several targets follows the
//     only target type the server indexes that has the next parameter; if
//     several have it the chain is ambiguous and an error lists them.
//   - A chain or _has through a type the server does not index, and an
//     _include or _revinclude from one, counts as an unsupported parameter
//     (ignored unless strict): US Core clients routinely ask for
//     _revinclude=Provenance:target.
//   - _sort naming an unknown parameter is an error even when not strict.
//   - Result parameters other than _include, _revinclude, _sort, _elements,
//     _format and _pretty may appear once.
//   - _contained is accepted only as false and _containedType only as
//     container; anything else is not-supported.
//   - _include and _revinclude accept a comma-separated list of directives
//     and a bare * (see Include); :recurse (R3) is read as :iterate.
//   - Conditions, Chains and Has are ordered by canonical key (Key), then
//     as given, so equal queries compare equal whatever the key order.
//
// Value-level decisions (bare ids, '|' in references, dates without a zone,
// the precision of numbers) are documented on Operand, RefOperand and
// QueryNumber.
func ParseQuery(r *Registry, typ string, values url.Values, strict bool) (*Query, error) {
	if r == nil {
		return nil, fhir.Errorf(fhir.Internal, "exception", "search: no registry")
	}
	if typ != "" && !r.Searchable(typ) {
		return nil, fhir.Errorf(fhir.NotFound, "not-supported", "resource type %q cannot be searched on this server", typ)
	}
	p := &queryParser{reg: r, typ: typ, strict: strict, q: &Query{Type: typ, Count: DefaultCount}}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if typ == "" {
		p.systemTypes(values["_type"])
	}
	for _, k := range keys {
		p.param(k, values[k])
	}
	if len(p.issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.Invalid, Issues: p.issues}
	}
	q := p.q
	sort.SliceStable(q.Conditions, func(i, j int) bool { return q.Conditions[i].Key() < q.Conditions[j].Key() })
	sort.SliceStable(q.Chains, func(i, j int) bool { return q.Chains[i].Key() < q.Chains[j].Key() })
	sort.SliceStable(q.Has, func(i, j int) bool { return q.Has[i].Key() < q.Has[j].Key() })
	sort.Strings(q.Ignored)
	q.Ignored = slices.Compact(q.Ignored)
	q.SelfParams = p.selfParams()
	return q, nil
}

type queryParser struct {
	reg    *Registry
	typ    string
	strict bool
	q      *Query
	issues []fhir.Issue
	// passThrough holds _format and _pretty for SelfParams.
	passThrough url.Values
}

// queryProblem is why a parameter was not understood. unknown problems
// (unknown or unsupported parameters) are ignored unless strict; the
// others are always errors.
type queryProblem struct {
	code    string // OperationOutcome issue code: value or not-supported
	msg     string
	unknown bool
}

func queryInvalid(format string, args ...any) *queryProblem {
	return &queryProblem{code: "value", msg: fmt.Sprintf(format, args...)}
}

func queryNotSupported(format string, args ...any) *queryProblem {
	return &queryProblem{code: "not-supported", msg: fmt.Sprintf(format, args...)}
}

func queryUnknown(format string, args ...any) *queryProblem {
	return &queryProblem{code: "not-supported", msg: fmt.Sprintf(format, args...), unknown: true}
}

// maxEcho bounds how much of a client's value an error message repeats.
const maxEcho = 200

func echoValue(s string) string {
	if len(s) > maxEcho {
		s = s[:maxEcho] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// fail records a problem with parameter key (and value, when there is
// one). An unknown-parameter problem is recorded only when strict;
// otherwise ignored is added to Query.Ignored.
func (p *queryParser) fail(key, value string, pr *queryProblem, ignored string) {
	if pr.unknown && !p.strict {
		p.q.Ignored = append(p.q.Ignored, ignored)
		return
	}
	msg := fmt.Sprintf("search parameter %s, value %s: %s", echoValue(key), echoValue(value), pr.msg)
	if value == "" {
		msg = fmt.Sprintf("search parameter %s: %s", echoValue(key), pr.msg)
	}
	p.issues = append(p.issues, fhir.Issue{Severity: "error", Code: pr.code, Diagnostics: msg})
}

// param handles every occurrence of one key.
func (p *queryParser) param(key string, vals []string) {
	name, mod, _ := strings.Cut(key, ":")
	if handled := p.resultParam(key, name, mod, vals); handled {
		return
	}
	nonEmpty := slices.DeleteFunc(slices.Clone(vals), func(v string) bool { return v == "" })
	res, pr := p.resolve(p.typ, key, nil)
	if pr != nil {
		if pr.unknown || len(nonEmpty) == 0 {
			p.fail(key, strings.Join(nonEmpty, ","), pr, key)
			return
		}
		for _, v := range nonEmpty {
			p.fail(key, v, pr, key)
		}
		return
	}
	for _, v := range nonEmpty {
		c, ok, pr := parseQueryCondition(res, v)
		if pr != nil {
			p.fail(key, v, pr, key)
			continue
		}
		if !ok {
			continue
		}
		switch {
		case len(res.steps) == 0:
			p.q.Conditions = append(p.q.Conditions, c)
		case res.steps[0].Reverse:
			p.q.Has = append(p.q.Has, Chain{Steps: slices.Clone(res.steps), Condition: c})
		default:
			p.q.Chains = append(p.q.Chains, Chain{Steps: slices.Clone(res.steps), Condition: c})
		}
	}
}

// resolvedKey is a parameter name resolved against the registry.
type resolvedKey struct {
	steps   []Step
	param   *Param
	mod     Modifier
	refType string
}

// resolve reads key, a parameter name with its modifier, chain and _has
// links, against type typ:
//
//	key  = "_has:" Type ":" refParam ":" key
//	     | code [":" Type] "." key      (chain)
//	     | code [":" modifier]
func (p *queryParser) resolve(typ, key string, steps []Step) (resolvedKey, *queryProblem) {
	if len(steps) > MaxChainDepth {
		return resolvedKey{}, queryNotSupported("chains of more than %d links are not supported", MaxChainDepth)
	}
	if rest, ok := strings.CutPrefix(key, "_has:"); ok {
		if typ == "" {
			return resolvedKey{}, queryUnknown("_has is not supported in a system-level search")
		}
		parts := strings.SplitN(rest, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return resolvedKey{}, queryInvalid("_has is written _has:Type:reference-parameter:parameter")
		}
		src, refCode, inner := parts[0], parts[1], parts[2]
		if !conformance.IsResourceType(src) {
			return resolvedKey{}, queryInvalid("%q in _has is not a resource type", src)
		}
		if !p.reg.Searchable(src) {
			return resolvedKey{}, queryUnknown("%s resources are not indexed on this server", src)
		}
		ref, ok := p.reg.Lookup(src, refCode)
		if !ok {
			return resolvedKey{}, queryUnknown("%s has no search parameter %q", src, refCode)
		}
		if ref.Type != Reference {
			return resolvedKey{}, queryInvalid("%s:%s in _has is a %s parameter, not a reference", src, refCode, ref.Type)
		}
		if !slices.Contains(ref.Targets, typ) {
			return resolvedKey{}, queryInvalid("%s:%s cannot refer to a %s (it refers to %s)", src, refCode, typ, strings.Join(ref.Targets, ", "))
		}
		return p.resolve(src, inner, append(slices.Clip(steps), Step{Param: ref, Type: src, Reverse: true}))
	}
	code, rest := key, ""
	if i := strings.IndexAny(key, ":."); i >= 0 {
		code, rest = key[:i], key[i:]
	}
	param, ok := p.lookup(typ, code)
	if !ok {
		if typ == "" {
			return resolvedKey{}, queryUnknown("%q is not a parameter common to %s", code, strings.Join(p.q.Types, ", "))
		}
		return resolvedKey{}, queryUnknown("%s has no search parameter %q", typ, code)
	}
	mod := ""
	if r, ok := strings.CutPrefix(rest, ":"); ok {
		mod, rest = r, ""
		if j := strings.IndexByte(r, '.'); j >= 0 {
			mod, rest = r[:j], r[j:]
		}
		if mod == "" {
			return resolvedKey{}, queryInvalid("empty modifier after %s:", code)
		}
	}
	if rest == "" {
		m, refType, pr := checkModifier(param, mod)
		if pr != nil {
			return resolvedKey{}, pr
		}
		return resolvedKey{steps: steps, param: param, mod: m, refType: refType}, nil
	}
	// A chain: rest is ".key".
	next := rest[1:]
	if param.Type != Reference {
		return resolvedKey{}, queryInvalid("only reference parameters can be chained; %s is a %s parameter", code, param.Type)
	}
	if next == "" {
		return resolvedKey{}, queryInvalid("nothing after %s.", code)
	}
	var to string
	if mod != "" {
		m, refType, pr := checkModifier(param, mod)
		if pr != nil {
			return resolvedKey{}, pr
		}
		if m != ModType {
			return resolvedKey{}, queryInvalid("a chained reference takes only a type modifier (%s:Type.), not :%s", code, mod)
		}
		to = refType
		if !p.reg.Searchable(to) {
			return resolvedKey{}, queryUnknown("%s resources are not indexed on this server", to)
		}
	} else {
		var pr *queryProblem
		if to, pr = p.chainTarget(param, next); pr != nil {
			return resolvedKey{}, pr
		}
	}
	return p.resolve(to, next, append(slices.Clip(steps), Step{Param: param, Type: to}))
}

// chainTarget picks the type a chain without :Type follows: the one
// indexed target type of ref that has the next parameter.
func (p *queryParser) chainTarget(ref *Param, next string) (string, *queryProblem) {
	nextCode := next
	if i := strings.IndexAny(next, ":."); i >= 0 && !strings.HasPrefix(next, "_has:") {
		nextCode = next[:i]
	}
	var candidates []string
	for _, t := range ref.Targets {
		if !p.reg.Searchable(t) {
			continue
		}
		if _, ok := p.reg.Lookup(t, nextCode); ok || strings.HasPrefix(next, "_has:") {
			candidates = append(candidates, t)
		}
	}
	switch len(candidates) {
	case 0:
		return "", queryUnknown("none of the types %s can refer to (%s) that this server indexes has a parameter %q", ref.Code, strings.Join(ref.Targets, ", "), nextCode)
	case 1:
		return candidates[0], nil
	}
	return "", queryInvalid("the chain is ambiguous: %s can refer to %s; name one, as in %s:%s.%s", ref.Code, strings.Join(candidates, ", "), ref.Code, candidates[0], next)
}

// lookup finds a parameter of typ, or for a system-level search one that
// every type in Types has from the same definition (Query.ForType gives
// each type its own expression of it).
func (p *queryParser) lookup(typ, code string) (*Param, bool) {
	if typ != "" {
		return p.reg.Lookup(typ, code)
	}
	if len(p.q.Types) == 0 {
		return nil, false
	}
	first, ok := p.reg.Lookup(p.q.Types[0], code)
	if !ok {
		return nil, false
	}
	for _, t := range p.q.Types[1:] {
		other, ok := p.reg.Lookup(t, code)
		if !ok || other.URL != first.URL || other.Type != first.Type {
			return nil, false
		}
	}
	return first, true
}

// parseCondition reads one occurrence value v. ok is false when nothing
// remains of it (every alternative empty).
func parseQueryCondition(res resolvedKey, v string) (Condition, bool, *queryProblem) {
	c := Condition{Param: res.param, Modifier: res.mod, Type: res.refType}
	if res.mod == ModMissing {
		switch v {
		case "true":
			c.Missing = true
		case "false":
		default:
			return Condition{}, false, queryInvalid(":missing takes true or false")
		}
		return c, true, nil
	}
	for _, alt := range splitEscaped(v, ',') {
		if alt == "" {
			continue
		}
		o, err := parseQueryOperand(res.param, res.mod, res.refType, alt)
		if err != nil {
			if len(splitEscaped(v, ',')) > 1 {
				return Condition{}, false, queryInvalid("%s: %v", echoValue(unescapeSearch(alt)), err)
			}
			return Condition{}, false, queryInvalid("%v", err)
		}
		c.Operands = append(c.Operands, o)
	}
	return c, len(c.Operands) > 0, nil
}

// Key is the condition's canonical parameter name: code[:modifier].
func (c Condition) Key() string { return c.Param.Code + c.Modifier.suffix(c.Type) }

// Value is the condition's canonical value: the operands rendered and
// escaped, joined by commas.
func (c Condition) Value() string {
	if c.Modifier == ModMissing {
		if c.Missing {
			return "true"
		}
		return "false"
	}
	vals := make([]string, len(c.Operands))
	for i, o := range c.Operands {
		vals[i] = renderQueryOperand(c.Param, c.Modifier, o)
	}
	return strings.Join(vals, ",")
}

// Key is the chain's canonical parameter name, target types spelled out:
// subject:Patient.name, _has:Observation:patient:code.
func (c Chain) Key() string {
	var b strings.Builder
	for _, s := range c.Steps {
		if s.Reverse {
			fmt.Fprintf(&b, "_has:%s:%s:", s.Type, s.Param.Code)
		} else {
			fmt.Fprintf(&b, "%s:%s.", s.Param.Code, s.Type)
		}
	}
	b.WriteString(c.Condition.Key())
	return b.String()
}
