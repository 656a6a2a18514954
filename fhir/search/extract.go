package search

import (
	"fmt"
	"slices"
	"sync"

	"healthhub/fhir"
)

// Entry is one index value of a resource: a search parameter's code and a
// value of the parameter's type.
type Entry struct {
	Param string
	Value Value
}

// plan is a registry's compiled expressions.
type plan struct {
	byType map[string][]compiledParam
	// stored is byType less the parameters whose keys the index does not
	// keep (Param.Stored): what ExtractStored evaluates.
	stored map[string][]compiledParam
	// members are the element names any expression or value conversion
	// reads; Extract decodes nothing else.
	members map[string]bool
	sizes   map[string]int // parameters per type when compiled
}

// current reports whether p was compiled from r as it is now (a test hook
// can add parameters to a loaded registry).
func (p *plan) current(r *Registry) bool {
	if len(p.sizes) != len(r.byType) {
		return false
	}
	for typ, params := range r.byType {
		if p.sizes[typ] != len(params) {
			return false
		}
	}
	return true
}

// convertMembers are the elements appendValues and resolve() read.
var convertMembers = []string{
	"resourceType", "id", "contained", // resolve() of #id
	"coding", "text", "system", "code", "display", "value", "type", // tokens
	"reference", "identifier", // references
	"start", "end", "event", "repeat", "boundsPeriod", // dates
	"comparator", "unit", "origin", // quantities
}

// want reports whether Extract needs the member called key: a name some
// expression or conversion reads, or a choice element (valueQuantity) of
// one (value).
func (p *plan) want(key string) bool {
	if p.members[key] {
		return true
	}
	for i := 1; i < len(key); i++ {
		if c := key[i]; c >= 'A' && c <= 'Z' {
			_, ok := choiceTypes[key[i:]]
			return ok && p.members[key[:i]]
		}
	}
	return false
}

type compiledParam struct {
	param *Param
	path  *Path
	comps []*Path // composite components, relative to path
}

// ctxPool recycles evaluation arenas between Extract calls.
var ctxPool = sync.Pool{New: func() any { return &evalCtx{arena: make([]Item, 0, 256)} }}

// plans caches each registry's compiled plan. Registry lives in param.go;
// a field there would do the same.
var plans sync.Map // *Registry -> *plan

// Compile compiles the FHIRPath expression of every parameter (and of every
// composite component). It fails on the first expression outside the
// supported subset, naming the parameter. Extract compiles on first use;
// calling Compile right after Load moves that cost, and any error, to
// start-up.
func (r *Registry) Compile() error {
	_, err := r.plan()
	return err
}

func (r *Registry) plan() (*plan, error) {
	if p, ok := plans.Load(r); ok && p.(*plan).current(r) {
		return p.(*plan), nil
	}
	p := &plan{byType: map[string][]compiledParam{}, stored: map[string][]compiledParam{}, members: map[string]bool{}, sizes: map[string]int{}}
	for _, m := range stringParts {
		p.members[m] = true
	}
	for _, m := range convertMembers {
		p.members[m] = true
	}
	for typ := range r.byType {
		p.sizes[typ] = len(r.byType[typ])
		for _, param := range r.Params(typ) {
			cp := compiledParam{param: param}
			var err error
			if cp.path, err = CompilePath(param.Expression); err != nil {
				return nil, fmt.Errorf("search: %s?%s: %w", typ, param.Code, err)
			}
			for _, c := range param.Components {
				cpath, err := CompilePath(c.Expression)
				if err != nil {
					return nil, fmt.Errorf("search: %s?%s component %s: %w", typ, param.Code, c.Param.Code, err)
				}
				cp.comps = append(cp.comps, cpath)
				cpath.addMembers(p.members)
			}
			cp.path.addMembers(p.members)
			if param.Type == Composite && len(cp.comps) == 0 {
				return nil, fmt.Errorf("search: %s?%s: composite without components", typ, param.Code)
			}
			p.byType[typ] = append(p.byType[typ], cp)
			if param.Stored() {
				p.stored[typ] = append(p.stored[typ], cp)
			}
		}
	}
	plans.Store(r, p)
	return p, nil
}

// Extract evaluates every search parameter of typ over a resource's JSON
// and returns the values to index, parameter by parameter (in code order),
// without repeats within a parameter. A type without parameters gives no
// entries. It fails on invalid JSON or a resourceType other than typ.
func (r *Registry) Extract(typ string, resource []byte) ([]Entry, error) {
	return r.extractJSON(typ, resource, false)
}

// ExtractStored is Extract less the parameters the index does not keep
// (Param.Stored): what a write indexes. Unions such as Observation's
// combo-code-value-quantity are composites, the dearest to evaluate, and
// their values are their members' anyway.
func (r *Registry) ExtractStored(typ string, resource []byte) ([]Entry, error) {
	return r.extractJSON(typ, resource, true)
}

// extractJSON decodes what the plan reads of resource and evaluates typ's
// parameters: those the index keeps, if stored, else all.
func (r *Registry) extractJSON(typ string, resource []byte, stored bool) ([]Entry, error) {
	p, err := r.plan()
	if err != nil {
		return nil, err
	}
	doc, err := parseDocument(resource, p.want)
	if err != nil {
		return nil, err
	}
	params := p.byType[typ]
	if stored {
		params = p.stored[typ]
	}
	return r.extract(typ, doc, params)
}

// ExtractDocument is Extract over an already decoded resource.
func (r *Registry) ExtractDocument(typ string, doc *Document) ([]Entry, error) {
	p, err := r.plan()
	if err != nil {
		return nil, err
	}
	return r.extract(typ, doc, p.byType[typ])
}

func (r *Registry) extract(typ string, doc *Document, params []compiledParam) ([]Entry, error) {
	if rt := doc.ResourceType(); rt != typ {
		return nil, fmt.Errorf("search: resourceType %q is not %q", rt, typ)
	}
	// Most parameters of a resource have no value or one, and a few have
	// several: room for one each is mostly enough, where room for four
	// each was a third of what an extraction allocated.
	entries := make([]Entry, 0, len(params))
	c := ctxPool.Get().(*evalCtx)
	defer func() {
		if cap(c.arena) > 1<<14 {
			return // an outsized resource's arena is not worth keeping
		}
		clear(c.arena) // drop the pointers into doc
		*c = evalCtx{arena: c.arena[:0]}
		ctxPool.Put(c)
	}()
	c.root, c.rootType = &doc.root, typ
	root := []Item{doc.Root()}
	var vals []Value
	for i := range params {
		cp := &params[i]
		items := cp.path.eval(c, root)
		if len(items) == 0 {
			continue
		}
		vals = vals[:0]
		if cp.param.Type == Composite {
			vals = compositeValues(c, cp, items, vals)
		} else {
			for _, it := range items {
				vals = appendValues(vals, cp.param.Type, it)
			}
			if sys := cp.param.CodeSystem; sys != "" {
				for j, v := range vals {
					if t, ok := v.(TokenValue); ok && t.System == "" {
						t.System = sys
						vals[j] = t
					}
				}
			}
		}
	next:
		for j, v := range vals {
			if _, ok := v.(CompositeValue); !ok {
				for _, w := range vals[:j] {
					if v == w {
						continue next
					}
				}
			}
			entries = append(entries, Entry{Param: cp.param.Code, Value: v})
		}
	}
	return entries, nil
}

// compositeValues makes, for each focus item, the tuples of its
// components' values (every combination within that one focus).
func compositeValues(ctx *evalCtx, cp *compiledParam, focus []Item, out []Value) []Value {
	comps := make([][]Value, len(cp.comps))
	for i := range focus {
		ok := true
		// Last first: the value part is the one usually missing, and then
		// the code part need not be converted at all.
		for c := len(cp.comps) - 1; c >= 0 && ok; c-- {
			path := cp.comps[c]
			comps[c] = comps[c][:0]
			for _, it := range path.eval(ctx, focus[i:i+1]) {
				comps[c] = appendValues(comps[c], cp.param.Components[c].Param.Type, it)
			}
			// A text-only token (CodeableConcept.text) has no code to pair.
			comps[c] = slices.DeleteFunc(comps[c], func(v Value) bool {
				t, ok := v.(TokenValue)
				return ok && t.System == "" && t.Code == ""
			})
			ok = len(comps[c]) > 0
		}
		if !ok {
			continue
		}
		// Odometer over the components' values.
		idx := make([]int, len(comps))
		for {
			tuple := make([]Value, len(comps))
			for c := range comps {
				tuple[c] = comps[c][idx[c]]
			}
			out = append(out, CompositeValue{Components: tuple})
			c := len(idx) - 1
			for c >= 0 {
				idx[c]++
				if idx[c] < len(comps[c]) {
					break
				}
				idx[c] = 0
				c--
			}
			if c < 0 {
				break
			}
		}
	}
	return out
}

// appendValues converts one evaluated item to the values of a parameter
// type. The item's FHIR type is known for choice elements (valueQuantity);
// otherwise it is told from the JSON's shape: a CodeableConcept has coding
// or text, a Coding code, an Identifier or ContactPoint value, a Period
// start or end, a Timing event or repeat, a SampledData origin.
func appendValues(out []Value, t Type, it Item) []Value {
	n := it.n
	if n == nil {
		return out
	}
	switch t {
	case Token:
		return appendTokens(out, it)
	case String:
		return appendStrings(out, n)
	case Date:
		return appendDates(out, it)
	case Reference:
		return appendReference(out, n)
	case Quantity:
		return appendQuantity(out, it)
	case Number:
		if n.kind == kindNumber {
			if d, err := fhir.ParseDecimal(n.str); err == nil {
				out = append(out, NumberValue{Value: d})
			}
		}
	case URI:
		if n.kind == kindString && n.str != "" {
			out = append(out, URIValue{URI: n.str})
		}
	}
	return out
}

func appendTokens(out []Value, it Item) []Value {
	n := it.n
	switch n.kind {
	case kindString, kindBool, kindNumber:
		if n.str != "" {
			out = append(out, TokenValue{Code: n.str})
		}
		return out
	case kindObject:
	default:
		return out
	}
	typ := it.typ
	switch {
	case typ == "CodeableConcept" || (typ == "" && (n.get("coding") != nil || n.get("text") != nil)):
		start := len(out)
		out = fold(n, "coding", out, appendCoding)
		if text := n.getString("text"); text != "" && !slices.ContainsFunc(out[start:], func(v Value) bool {
			return v.(TokenValue).Display == text
		}) { // the usual text == display needs no value of its own
			out = append(out, TokenValue{Display: text})
		}
	case typ == "Coding" || (typ == "" && (n.get("code") != nil || n.get("display") != nil)):
		out = appendCoding(out, n)
	case typ == "Identifier" || typ == "ContactPoint" || (typ == "" && (n.get("value") != nil || n.get("system") != nil)):
		v := TokenValue{System: n.getString("system"), Code: n.getString("value")}
		if v.System == "" && v.Code == "" {
			return out
		}
		typeCC := n.get("type")
		v.Display = typeCC.getString("text")
		start := len(out)
		out = fold(typeCC, "coding", identifierTypes{out, v}, appendIdentifierType).out
		if len(out) == start {
			out = append(out, v)
		}
	}
	return out
}

// identifierTypes is fold's accumulator over an Identifier's type codings:
// one value of the identifier per coding.
type identifierTypes struct {
	out []Value
	id  TokenValue
}

func appendIdentifierType(acc identifierTypes, c *node) identifierTypes {
	if code := c.getString("code"); code != "" {
		w := acc.id
		w.TypeSystem, w.TypeCode = c.getString("system"), code
		acc.out = append(acc.out, w)
	}
	return acc
}

func appendCoding(out []Value, c *node) []Value {
	v := TokenValue{System: c.getString("system"), Code: c.getString("code"), Display: c.getString("display")}
	if v == (TokenValue{}) {
		return out
	}
	return append(out, v)
}

// stringParts are the string elements of HumanName and Address.
var stringParts = []string{"family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country", "text"}

func appendStrings(out []Value, n *node) []Value {
	switch n.kind {
	case kindString:
		if n.str != "" {
			out = append(out, NewStringValue(n.str))
		}
	case kindObject:
		for _, part := range stringParts {
			out = fold(n, part, out, appendStrings)
		}
	}
	return out
}

func appendDates(out []Value, it Item) []Value {
	n := it.n
	switch n.kind {
	case kindString:
		out = appendDate(out, n)
	case kindObject:
		if it.typ == "Timing" || (it.typ == "" && (n.get("event") != nil || n.get("repeat") != nil)) {
			// One range, from the earliest event (or bound) to the latest:
			// "the specified scheduling details are ignored and only the
			// outer limits matter" (R4 search.html#date, Timing).
			first := len(out)
			out = fold(n, "event", out, appendDate)
			if b := n.get("repeat").get("boundsPeriod"); b != nil {
				out = appendPeriod(out, b)
			}
			if len(out)-first > 1 {
				hull := out[first].(DateValue)
				for _, v := range out[first+1:] {
					d := v.(DateValue)
					if d.Start.Before(hull.Start) {
						hull.Start = d.Start
					}
					if d.End.After(hull.End) {
						hull.End = d.End
					}
				}
				out = append(out[:first], hull)
			}
			return out
		}
		out = appendPeriod(out, n)
	}
	return out
}

func appendDate(out []Value, n *node) []Value {
	if n.kind != kindString {
		return out
	}
	if r, err := fhir.ParseDateTime(n.str); err == nil {
		out = append(out, DateValue{r})
	}
	return out
}

func appendPeriod(out []Value, n *node) []Value {
	start, end := n.get("start"), n.get("end")
	if start == nil && end == nil {
		return out
	}
	v := DateValue{fhir.DateRange{Start: DateMin, End: DateMax}}
	if start != nil && start.kind == kindString {
		if r, err := fhir.ParseDateTime(start.str); err == nil {
			v.Start = r.Start
		}
	}
	if end != nil && end.kind == kindString {
		if r, err := fhir.ParseDateTime(end.str); err == nil {
			v.End = r.End
		}
	}
	return append(out, v)
}

func appendReference(out []Value, n *node) []Value {
	var v ReferenceValue
	switch n.kind {
	case kindString: // canonical or uri
		v = ParseReference(n.str)
	case kindObject:
		v = ParseReference(n.getString("reference"))
		if v.URL != "" && v.ResourceType == "" {
			v.ResourceType = n.getString("type")
		}
		if id := n.get("identifier"); id != nil && id.kind == kindObject {
			v.Identifier = TokenValue{System: id.getString("system"), Code: id.getString("value")}
		}
	}
	if v == (ReferenceValue{}) || (v.URL == "" && v.Identifier == (TokenValue{}) && !v.Local()) {
		return out
	}
	return append(out, v)
}

func appendQuantity(out []Value, it Item) []Value {
	n := it.n
	switch n.kind {
	case kindNumber:
		if d, err := fhir.ParseDecimal(n.str); err == nil {
			out = append(out, QuantityValue{Value: d})
		}
		return out
	case kindObject:
	default:
		return out
	}
	if it.typ == "SampledData" || (it.typ == "" && n.get("origin") != nil) {
		if n = n.get("origin"); n == nil {
			return out
		}
	}
	num := n.get("value")
	if num == nil || num.kind != kindNumber {
		return out
	}
	d, err := fhir.ParseDecimal(num.str)
	if err != nil {
		return out
	}
	return append(out, QuantityValue{
		Value:      d,
		Comparator: n.getString("comparator"),
		System:     n.getString("system"),
		Code:       n.getString("code"),
		Unit:       n.getString("unit"),
	})
}
