package search

import (
	"strings"

	"healthhub/fhir"
)

// Evaluation of compiled FHIRPath expressions (fhirpath.go parses them).

// evalCtx is one evaluation's state. Results are built in arena, an
// append-only buffer shared by every step of every expression evaluated
// with it: a result is a capacity-capped window of it, so later appends
// (even ones that move the buffer) never change an earlier result, and a
// whole Extract costs a few allocations instead of one or more per step.
// Results are read-only: no step appends to its input.
type evalCtx struct {
	root     *node
	rootType string // root's resourceType
	arena    []Item
}

func (c *evalCtx) mark() int { return len(c.arena) }

// since returns what was appended after mark m.
func (c *evalCtx) since(m int) []Item {
	if len(c.arena) == m {
		return nil
	}
	return c.arena[m:len(c.arena):len(c.arena)]
}

type expr interface {
	eval(c *evalCtx, in []Item) []Item
}

var (
	trueNode  = node{kind: kindBool, str: "true"}
	falseNode = node{kind: kindBool, str: "false"}
)

func boolItem(v bool) Item {
	if v {
		return Item{n: &trueNode, typ: "boolean"}
	}
	return Item{n: &falseNode, typ: "boolean"}
}

var (
	trueResult  = []Item{boolItem(true)}
	falseResult = []Item{boolItem(false)}
)

// boolResult is a shared, read-only singleton collection.
func boolResult(v bool) []Item {
	if v {
		return trueResult[:1:1]
	}
	return falseResult[:1:1]
}

// truth is FHIRPath's singleton evaluation of a collection as a boolean:
// known is false for an empty collection (and for several items, which
// FHIRPath calls an error).
func truth(items []Item) (v, known bool) {
	if len(items) != 1 {
		return false, false
	}
	if n := items[0].n; n != nil && n.kind == kindBool {
		return n.str == "true", true
	}
	return true, true
}

type chainExpr struct{ steps []expr }

func (e *chainExpr) eval(c *evalCtx, in []Item) []Item {
	out := in
	for _, s := range e.steps {
		out = s.eval(c, out)
	}
	return out
}

type thisExpr struct{}

func (thisExpr) eval(_ *evalCtx, in []Item) []Item { return in }

type rootExpr struct{}

func (rootExpr) eval(c *evalCtx, _ []Item) []Item {
	m := c.mark()
	c.arena = append(c.arena, Item{n: c.root})
	return c.since(m)
}

type literalExpr struct{ items []Item }

func (e *literalExpr) eval(*evalCtx, []Item) []Item { return e.items }

// typeRootExpr is a type name at the start of a path: it keeps the
// resources of that type (any resource for Resource / DomainResource).
type typeRootExpr struct{ name string }

func (e *typeRootExpr) eval(c *evalCtx, in []Item) []Item {
	keep := func(it Item) bool {
		if it.n == nil || it.n.kind != kindObject {
			return false
		}
		var rt string
		if it.n == c.root {
			rt = c.rootType
		} else {
			rt = it.n.getString("resourceType")
		}
		return rt != "" && (rt == e.name || e.name == "Resource" || e.name == "DomainResource")
	}
	return filter(c, in, keep)
}

// filter returns the items of in that keep accepts: in itself when that is
// all of them (the usual case), else a new window of the arena.
func filter(c *evalCtx, in []Item, keep func(Item) bool) []Item {
	for i, it := range in {
		if keep(it) {
			continue
		}
		m := c.mark()
		c.arena = append(c.arena, in[:i]...)
		for _, it := range in[i+1:] {
			if keep(it) {
				c.arena = append(c.arena, it)
			}
		}
		return c.since(m)
	}
	return in
}

// memberExpr navigates to a child element, flattening arrays. When the
// element is absent it looks for a choice element name+Type (valueQuantity
// for value) and types the result.
type memberExpr struct{ name string }

func (e *memberExpr) eval(c *evalCtx, in []Item) []Item {
	m := c.mark()
	out := c.arena
	for _, it := range in {
		n := it.n
		if n == nil || n.kind != kindObject {
			continue
		}
		if m := n.get(e.name); m != nil {
			out = appendFlat(out, m, "")
			continue
		}
		for i := range n.kids {
			k := n.kids[i].key
			if len(k) > len(e.name) && strings.HasPrefix(k, e.name) {
				if t, ok := choiceTypes[k[len(e.name):]]; ok {
					out = appendFlat(out, &n.kids[i], t)
				}
			}
		}
	}
	c.arena = out
	return c.since(m)
}

func appendFlat(out []Item, m *node, typ string) []Item {
	switch m.kind {
	case kindNull:
	case kindArray:
		for i := range m.kids {
			if m.kids[i].kind != kindNull {
				out = append(out, Item{n: &m.kids[i], typ: typ})
			}
		}
	default:
		out = append(out, Item{n: m, typ: typ})
	}
	return out
}

type whereExpr struct{ crit expr }

func (e *whereExpr) eval(c *evalCtx, in []Item) []Item {
	// The criteria append to the arena, so remember the matches first.
	var buf [16]bool
	match := buf[:0]
	all := true
	for i := range in {
		v, ok := truth(e.crit.eval(c, in[i:i+1]))
		match = append(match, ok && v)
		all = all && ok && v
	}
	if all {
		return in
	}
	m := c.mark()
	for i, ok := range match {
		if ok {
			c.arena = append(c.arena, in[i])
		}
	}
	return c.since(m)
}

type existsExpr struct{ crit expr }

func (e *existsExpr) eval(c *evalCtx, in []Item) []Item {
	if e.crit == nil {
		return boolResult(len(in) > 0)
	}
	for i := range in {
		if v, ok := truth(e.crit.eval(c, in[i:i+1])); ok && v {
			return boolResult(true)
		}
	}
	return boolResult(false)
}

type emptyExpr struct{}

func (emptyExpr) eval(_ *evalCtx, in []Item) []Item { return boolResult(len(in) == 0) }

type notExpr struct{}

func (notExpr) eval(_ *evalCtx, in []Item) []Item {
	if v, ok := truth(in); ok {
		return boolResult(!v)
	}
	return nil
}

type firstExpr struct{}

func (firstExpr) eval(_ *evalCtx, in []Item) []Item { return in[:min(len(in), 1):min(len(in), 1)] }

// resolveExpr yields, for each reference, an item that knows only the
// referenced resource's type: enough for `resolve() is Patient`.
type resolveExpr struct{}

func (resolveExpr) eval(c *evalCtx, in []Item) []Item {
	m := c.mark()
	for _, it := range in {
		if t := referencedType(c, it.n); t != "" {
			c.arena = append(c.arena, Item{typ: t})
		}
	}
	return c.since(m)
}

// referencedType is the resource type a Reference (or a canonical / uri
// string) points at: Reference.type, the Type of `Type/id`, an absolute URL
// ending in `/Type/id` (or `/Type/id/_history/v`), or a contained resource.
func referencedType(c *evalCtx, n *node) string {
	if n == nil {
		return ""
	}
	ref := ""
	switch n.kind {
	case kindString:
		ref = n.str
	case kindObject:
		ref = n.getString("reference")
		if ref == "" {
			return n.getString("type")
		}
	default:
		return ""
	}
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		if cs := c.root.get("contained"); cs != nil {
			for i := range cs.kids {
				if cs.kids[i].getString("id") == id {
					return cs.kids[i].getString("resourceType")
				}
			}
		}
		return ""
	}
	if r := ParseReference(ref); r.ResourceType != "" {
		return r.ResourceType
	}
	if n.kind == kindObject {
		return n.getString("type")
	}
	return ""
}

// typeExpr is `x is T`, `x as T`, x.is(T), x.as(T) and x.ofType(T) (as).
// `as` keeps the items of type T (FHIRPath allows one; several are kept, as
// `Observation.component.value as Quantity` needs); `is` answers for one.
type typeExpr struct {
	x    expr // nil for the function forms: the input itself
	op   string
	typ  string
	subs []string // the types derived from typ
}

func newTypeExpr(x expr, op, typ string) *typeExpr {
	return &typeExpr{x: x, op: op, typ: typ, subs: subtypes[strings.ToLower(typ)]}
}

func (e *typeExpr) eval(c *evalCtx, in []Item) []Item {
	items := in
	if e.x != nil {
		items = e.x.eval(c, in)
	}
	if e.op == "is" {
		if len(items) != 1 {
			return nil
		}
		return boolResult(isType(items[0], e.typ, e.subs))
	}
	return filter(c, items, func(it Item) bool { return isType(it, e.typ, e.subs) })
}

type unionExpr struct{ a, b expr }

func (e *unionExpr) eval(c *evalCtx, in []Item) []Item {
	a, b := e.a.eval(c, in), e.b.eval(c, in)
	m := c.mark()
	for _, list := range [2][]Item{a, b} {
		for _, it := range list {
			if !containsItem(c.arena[m:], it) {
				c.arena = append(c.arena, it)
			}
		}
	}
	return c.since(m)
}

// containsItem reports whether it is already in list: the same element,
// or an equal primitive.
func containsItem(list []Item, it Item) bool {
	for _, o := range list {
		if o.n == it.n && o.typ == it.typ {
			return true
		}
		if it.n != nil && it.n.kind != kindObject && it.n.kind != kindArray && itemsEqual(o, it) {
			return true
		}
	}
	return false
}

type eqExpr struct {
	a, b expr
	neg  bool
}

func (e *eqExpr) eval(c *evalCtx, in []Item) []Item {
	a, b := e.a.eval(c, in), e.b.eval(c, in)
	if len(a) == 0 || len(b) == 0 {
		return nil
	}
	eq := len(a) == len(b)
	for i := 0; eq && i < len(a); i++ {
		eq = itemsEqual(a[i], b[i])
	}
	return boolResult(eq != e.neg)
}

type logicExpr struct {
	a, b expr
	op   string // and, or, xor
}

func (e *logicExpr) eval(c *evalCtx, in []Item) []Item {
	a, aok := truth(e.a.eval(c, in))
	switch e.op {
	case "and":
		if aok && !a {
			return boolResult(false)
		}
		b, bok := truth(e.b.eval(c, in))
		switch {
		case bok && !b:
			return boolResult(false)
		case aok && bok:
			return boolResult(true)
		}
	case "or":
		if aok && a {
			return boolResult(true)
		}
		b, bok := truth(e.b.eval(c, in))
		switch {
		case bok && b:
			return boolResult(true)
		case aok && bok:
			return boolResult(false)
		}
	default: // xor
		b, bok := truth(e.b.eval(c, in))
		if aok && bok {
			return boolResult(a != b)
		}
	}
	return nil
}

// itemsEqual is FHIRPath equality of two items: primitives of the same
// kind by value (numbers numerically), objects member by member.
func itemsEqual(a, b Item) bool {
	if a.n == nil || b.n == nil {
		return a.n == b.n && a.typ == b.typ
	}
	return nodesEqual(a.n, b.n)
}

func nodesEqual(a, b *node) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case kindNumber:
		if a.str == b.str {
			return true
		}
		x, err1 := fhir.ParseDecimal(a.str)
		y, err2 := fhir.ParseDecimal(b.str)
		return err1 == nil && err2 == nil && x.Cmp(y) == 0
	case kindObject, kindArray:
		if len(a.kids) != len(b.kids) {
			return false
		}
		for i := range a.kids {
			if a.kids[i].key != b.kids[i].key || !nodesEqual(&a.kids[i], &b.kids[i]) {
				return false
			}
		}
		return true
	}
	return a.str == b.str
}

// isType reports whether an item is of type want or of one of subs, the
// types derived from want (subtypes, looked up once per expression).
// Names compare case-insensitively, so System types (DateTime, String) match
// FHIR primitives (dateTime, string), as the R4 definitions assume in
// `value.as(DateTime)`.
func isType(it Item, want string, subs []string) bool {
	have := it.Type()
	if have == "" {
		return false
	}
	if strings.EqualFold(have, want) {
		return true
	}
	if (want == "Resource" || want == "DomainResource") && it.n != nil && it.n.kind == kindObject && it.typ == "" {
		return true
	}
	for _, sub := range subs {
		if have == sub {
			return true
		}
	}
	return false
}

// subtypes lists, by lowercased type, the FHIR types derived from it.
var subtypes = map[string][]string{
	"quantity": {"Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity"},
	"string":   {"code", "id", "markdown"},
	"uri":      {"url", "canonical", "oid", "uuid"},
	"integer":  {"positiveInt", "unsignedInt"},
	"datetime": {"instant"},
}

// choiceTypes maps the suffix of a choice element's name (valueQuantity ->
// Quantity) to the FHIR R4 data type it names.
var choiceTypes = func() map[string]string {
	m := map[string]string{}
	for _, t := range []string{
		"base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant",
		"integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt", "uri", "url", "uuid",
		"Address", "Age", "Annotation", "Attachment", "CodeableConcept", "Coding", "ContactDetail",
		"ContactPoint", "Contributor", "Count", "DataRequirement", "Distance", "Dosage", "Duration",
		"Expression", "HumanName", "Identifier", "Meta", "Money", "ParameterDefinition", "Period",
		"Quantity", "Range", "Ratio", "Reference", "RelatedArtifact", "SampledData", "Signature",
		"Timing", "TriggerDefinition", "UsageContext",
	} {
		m[strings.ToUpper(t[:1])+t[1:]] = t
	}
	return m
}()

// addMembers adds to set the element names the expression navigates.
func (p *Path) addMembers(set map[string]bool) { walk(p.root, set) }

func walk(e expr, set map[string]bool) {
	switch e := e.(type) {
	case *memberExpr:
		set[e.name] = true
	case *chainExpr:
		for _, s := range e.steps {
			walk(s, set)
		}
	case *whereExpr:
		walk(e.crit, set)
	case *existsExpr:
		if e.crit != nil {
			walk(e.crit, set)
		}
	case *typeExpr:
		if e.x != nil {
			walk(e.x, set)
		}
	case *unionExpr:
		walk(e.a, set)
		walk(e.b, set)
	case *eqExpr:
		walk(e.a, set)
		walk(e.b, set)
	case *logicExpr:
		walk(e.a, set)
		walk(e.b, set)
	}
}
