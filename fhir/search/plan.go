package search

import (
	"bytes"
	"math/big"
	"slices"
	"strings"
	"time"

	"healthhub/conformance"
	"healthhub/fhir"
)

// Planning one condition: the index key ranges that find its matches, and
// the exact in-memory test of a resource's entries.
//
// Every rule below cites R4 search.html (https://hl7.org/fhir/R4/search.html)
// by anchor. A resource matches an operand when any one of its values of the
// parameter does ("any value" semantics for repeating elements), and a
// condition when it matches any of its operands (#combining: comma is OR).
//
// # Dates (#date, #prefix)
//
// A value is the interval [S, E) it covers at its precision (a Period from
// the start of its start to the end of its end, DateMin / DateMax when
// open); the search value is the interval [qs, qe) of the date as written
// ("the range of the search value", #prefix). With the range below the
// search value (-inf, qs) and the range above it [qe, +inf), the prefix
// table reads:
//
//	eq  search range fully contains the target:       qs <= S && E <= qe (&& S < E)
//	ne  ... does not fully contain the target:        S < qs || E > qe
//	gt  range above intersects the target:            E > qe
//	lt  range below intersects the target:            S < qs
//	ge  gt, or the search range contains the target:  E > qe || S >= qs
//	le  lt, or the search range contains the target:  S < qs || E <= qe
//	sa  no overlap, the range above contains target:  S >= qe
//	eb  no overlap, the range below contains target:  E <= qs
//	ap  approximately: contained in [qs-d, qe+d) (eq against the widened
//	    range), d = 10% of the gap between now and qs, the spec's
//	    recommended value for dates
//
// So a Period that overlaps the end of the search range counts for gt (and
// ge) and one that overlaps its start counts for lt (and le), as the spec
// says: the ranges intersect. ge and le are written in the equivalent form
// on the right (gt || eq == E > qe || S >= qs for any value), which is what
// makes their scans exact. ne, like every prefix, applies per value: a
// resource with one value inside the search range and one outside matches
// both eq and ne. A value whose E is not after its S comes only from a
// Period that breaks per-1 (validation rejects it); it is compared by its
// raw ends as above, so it is never eq or ap, and ne only when an end lies
// outside the search range.
//
// Scans use the 'v' keys (ordered by start) and the 'z' keys (ordered by
// end): gt, lt, ge, le, ne, sa and eb are exact unions of one or two
// ranges; eq scans the starts within [qs, qe) and leaves the end to the
// post-filter (exact false), and so does ap over its widened range (plus
// apDateSlack, so that a Matches run a little later, with a later now,
// stays inside the scan).
//
// # Numbers and quantities (#number, #quantity, #prefix)
//
// The search value has the implicit precision of its written digits
// (QueryNumber.Range, [lo, hi)); the target value is the number stored.
// Following #number's examples ("lt100: values that are less than exactly
// 100", "ne100: not equal to 100 (actually, in the range 99.5 to 100.5)"):
//
//	eq  lo <= x < hi         ne  x < lo || x >= hi
//	gt  x > v   lt  x < v    ge  x >= v   le  x <= v
//	sa  x >= hi (the range above the search range contains x)
//	eb  x < lo  (the range below contains x)
//	ap  lo - |v|/10 <= x < hi + |v|/10 (10% of the stated value, #prefix)
//
// A Quantity's comparator (<, >= ...) is not taken into account: the value
// is compared as the number it states. Units (#quantity): number|system|code
// matches Quantity.system and Quantity.code exactly ('s' keys); number||unit
// matches Quantity.code or Quantity.unit ('n' keys); a bare number matches
// whatever the unit ('v' keys). Every prefix is one exact range, ne two.
//
// # Strings (#string)
//
// Default: the value, normalized (NormalizeString: case and accents
// folded), starts with the normalized search value: one 'v' prefix range,
// exact. :exact compares the value as written: the 'v' point of the
// normalized search value holds every candidate (the post-filter drops
// those that differ in case or accents only), so strings need no second
// key per value. :contains
// (the normalized search value anywhere in the normalized value) cannot be
// answered from the index: all.
//
// # Tokens (#token)
//
// code matches that code in any system ('c' keys, the code alone whatever
// the system); system|code both ('v' keys); |code a code without a system
// ('v' keys with an empty system); system| any code of the system (a 'v'
// prefix range). Codes compare exactly (case-sensitively). Booleans are the
// codes "true" and "false". :text is a string match (normalized prefix, as
// the default string search) on Coding.display, CodeableConcept.text and
// Identifier.type.text ('t' keys). :of-type matches an Identifier's type
// system, type code and value ('o' keys). All of these are exact.
//
// :not matches resources none of whose values matches any of the operands,
// including resources with no value at all (#modifiers: "do not contain a
// match"); with an OR list, code:not=a,b excludes both. Not answerable from
// the index: all.
//
// # References (#reference)
//
// Type/id (or an id with a :Type modifier, or a bare id on a parameter with
// one target type) matches a relative reference to that resource ('v'
// keys); a bare id on a parameter with several targets matches a relative
// reference to that id of any of the target types the definition allows
// (one 'v' point per type); an absolute URL matches an
// absolute reference as written ('u' keys). An absolute URL at this
// server's own base is the caller's to rewrite as Type/id first (the mirror
// of ReferenceValue.LocalTo), since a Condition does not know the base.
// With /_history/v the version must also be equal (post-filter: exact
// false); without one, any version matches. :identifier matches
// Reference.identifier with token rules ('i' keys for system|value, |value
// and system|, 'j' keys for value).
//
// # URIs (#uri)
//
// Default: the whole URI, as written ('v' keys). :below: the value starts
// with the search value (a prefix range). :above: the value is one of the
// search value's parents, cut at a "/" of its path (one point scan each).
// Both apply to URLs only (R4: "not URNs such as OIDs"): on another URI they
// mean equality. Exact.
//
// # Composites (#composite)
//
// A value is one tuple of component values taken from the same element; an
// operand matches a tuple whose every component matches its part with the
// component's own type rules. Composite keys are 'v' followed by one key of
// each component (values.go; a quantity by its number alone, so a unit in
// the query is the post-filter's), so the scan is the product of the leading
// parts' point keys (token code, system|code or |code; reference; uri)
// followed by the first part that is a range (number, quantity, date,
// string prefix, token system|): that range after each product prefix.
// Parts after the first range are left to the post-filter (exact false);
// so are the parts after a product that would exceed maxCompositePrefixes
// keys.
//
// # :missing (#missing)
//
// :missing=true matches resources with no value of the parameter: not
// answerable from the index (all). :missing=false matches resources with
// at least one value: one scan of the whole parameter index (every value
// has at least one key), exact.

// Scan is one range of value keys in one parameter's index: From <= key <
// To (To nil: no upper bound). Keys are value keys as Value.Keys makes them
// (form byte first), compared as the store compares its index keys (value
// key, then id): every value key is self-delimiting, so the bounds Scans
// makes split value keys, never ids.
type Scan struct {
	Param    string
	From, To []byte // From <= value key < To; To nil: no upper bound
	// Point: the range holds one value key, so it lists a resource at
	// most once (a resource's keys are distinct); a wider range lists a
	// resource once for each of its values within it.
	Point bool
}

// nowFunc is the clock ap on dates measures its gap from; tests replace it.
var nowFunc = time.Now

// apDateSlack widens the scan of an ap date beyond the approximation, so
// that a Matches made later (with a later now, hence a slightly different
// approximation) stays within it: it covers ten days of drift.
const apDateSlack = 24 * time.Hour

// Scans returns ranges of value keys whose union of resource ids is a
// superset of the condition's matches (the OR of its operands), and exact
// = true when that union is exactly the match set (no post-filter needed).
// all = true means the condition cannot be answered from an index
// (:missing=true, token :not, string :contains): the caller must consider
// every resource of the type and post-filter with Matches. Overlapping and
// adjacent ranges are merged; the result is sorted by From.
func (c *Condition) Scans() (scans []Scan, exact, all bool) {
	if c.Param == nil {
		return nil, false, true
	}
	if len(c.Param.UnionOf) > 0 {
		return c.unionScans()
	}
	if c.Param.Code == "_id" {
		return nil, false, true // not indexed: IDs names the candidates
	}
	if w := c.Param.Within; w != nil {
		sub := *c
		sub.Param = w
		if scans, exact, all = sub.Scans(); all {
			return nil, false, true
		}
		return scans, exact && c.Param.WithinType != "" && c.onlyTyped(c.Param.WithinType), false
	}
	code := c.Param.Code
	switch c.Modifier {
	case ModMissing:
		if c.Missing {
			return nil, false, true
		}
		return []Scan{{Param: code}}, true, false
	case ModNot:
		return nil, false, true
	}
	exact = true
	now := nowFunc()
	for i := range c.Operands {
		op := compileOperand(c.Param, c.Modifier, &c.Operands[i], now)
		if !op.indexed {
			return nil, false, true
		}
		exact = exact && op.exact
		for _, s := range op.spans {
			scans = append(scans, Scan{Param: code, From: s.from, To: s.to, Point: s.key != nil})
		}
	}
	return mergeScans(scans), exact, false
}

// unionScans plans a condition on a union parameter as the same condition
// on each member: a value of the union is a value of one of them.
func (c *Condition) unionScans() (scans []Scan, exact, all bool) {
	exact = true
	for _, m := range c.Param.UnionOf {
		sub := *c
		sub.Param = m
		s, e, a := sub.Scans()
		if a {
			return nil, false, true
		}
		scans = append(scans, s...)
		exact = exact && e
	}
	return mergeScans(scans), exact, false
}

// onlyTyped: every operand is a relative Type/id reference to typ, whose
// key in a wider parameter's index (Param.Within) names exactly it. Other
// operands (an identifier, an absolute URL, :missing) find references of
// other types there too: the post-filter sorts them out.
func (c *Condition) onlyTyped(typ string) bool {
	if c.Modifier != ModNone && c.Modifier != ModType {
		return false
	}
	for _, o := range c.Operands {
		if o.Ref.Type != typ || o.Ref.ID == "" || o.Ref.URL != "" {
			return false
		}
	}
	return true
}

// IDs returns the ids an _id condition names (_id=a,b), for the caller to
// look up directly; ok is false for any other condition, and for _id with a
// modifier (which Scans leaves to the post-filter).
func (c *Condition) IDs() (ids []string, ok bool) {
	if c.Param == nil || c.Param.Code != "_id" || c.Modifier != ModNone {
		return nil, false
	}
	for _, o := range c.Operands {
		if o.Token.SystemGiven && o.Token.System != "" {
			continue // an id has no system: sys|x names nothing
		}
		if o.Token.Code != "" {
			ids = append(ids, o.Token.Code)
		}
	}
	return ids, true
}

// Matches reports whether a resource, given its extracted entries (all
// parameters), satisfies the condition. It is Matcher()(entries); to test
// many resources, build the Matcher once.
func (c *Condition) Matches(entries []Entry) bool { return c.Matcher()(entries) }

// Matcher compiles the condition into the test Matches makes: the search
// values are parsed into bounds once, and for ap on dates "now" is read
// once.
func (c *Condition) Matcher() func(entries []Entry) bool {
	if c.Param == nil {
		return func([]Entry) bool { return false }
	}
	code := c.Param.Code
	if c.Modifier == ModMissing {
		want := !c.Missing
		return func(entries []Entry) bool {
			for i := range entries {
				if entries[i].Param == code {
					return want
				}
			}
			return !want
		}
	}
	now := nowFunc()
	preds := make([]func(Value) bool, len(c.Operands))
	for i := range c.Operands {
		preds[i] = compileOperand(c.Param, c.Modifier, &c.Operands[i], now).match
	}
	anyMatch := func(entries []Entry) bool {
		for i := range entries {
			if entries[i].Param != code {
				continue
			}
			for _, p := range preds {
				if p(entries[i].Value) {
					return true
				}
			}
		}
		return false
	}
	if c.Modifier == ModNot {
		return func(entries []Entry) bool { return !anyMatch(entries) }
	}
	return anyMatch
}

// span is a range [from, to) of one parameter's value keys, form byte
// included (to nil: no upper bound). When key is set the span is exactly
// the keys equal to key, a complete self-delimiting value key, which a
// composite can extend with its next component.
type span struct {
	from, to []byte
	key      []byte
}

func pointSpan(k []byte) span  { return span{from: k, to: prefixEnd(k), key: k} }
func prefixSpan(p []byte) span { return span{from: p, to: prefixEnd(p)} }

// prefixEnd is the least byte string greater than every string that starts
// with p, or nil when there is none (p empty or all 0xFF).
func prefixEnd(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xFF {
			e := append([]byte(nil), p[:i+1]...)
			e[i]++
			return e
		}
	}
	return nil
}

// cat concatenates into a new slice.
func cat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// formKey starts a key with its form byte and the given strings, each
// escaped and terminated.
func formKey(form byte, strs ...string) []byte {
	b := []byte{form}
	for _, s := range strs {
		b = AppendKeyString(b, s)
	}
	return b
}

// opPlan is one operand compiled: its spans (when indexed), whether their
// union is exact, and the value test.
type opPlan struct {
	spans   []span
	exact   bool
	indexed bool
	match   func(Value) bool
}

func never(Value) bool { return false }

// nothing is an operand that matches no value: an empty, exact scan.
var nothing = opPlan{exact: true, indexed: true, match: never}

func compileOperand(p *Param, mod Modifier, o *Operand, now time.Time) opPlan {
	switch p.Type {
	case Number:
		return compileNumber(o)
	case Quantity:
		return compileQuantity(o)
	case Date:
		return compileDate(o, now)
	case String:
		return compileString(mod, o)
	case Token:
		return compileToken(mod, o)
	case Reference:
		return compileReference(mod, o, p.Targets)
	case URI:
		return compileURI(mod, o)
	case Composite:
		return compileComposite(p, o, now)
	}
	return opPlan{match: never}
}

// numCond is a number or quantity operand's prefix and bounds.
type numCond struct {
	prefix    Prefix
	v, lo, hi Decimal // the value as written and its precision range [lo, hi), widened for ap
}

func newNumCond(o *Operand) (numCond, bool) {
	n := numCond{prefix: o.Prefix}
	if n.prefix == "" {
		n.prefix = PrefixEq
	}
	v, err := fhir.ParseDecimal(o.Number.Text)
	if err != nil || o.Number.Rat == nil {
		return numCond{}, false
	}
	lo, hi := o.Number.Range()
	if lo == nil {
		return numCond{}, false
	}
	if n.prefix == PrefixAp {
		d := new(big.Rat).Abs(o.Number.Rat)
		d.Quo(d, big.NewRat(10, 1))
		lo = new(big.Rat).Sub(lo, d)
		hi = new(big.Rat).Add(hi, d)
	}
	dlo, err1 := fhir.DecimalFromRat(lo)
	dhi, err2 := fhir.DecimalFromRat(hi)
	if err1 != nil || err2 != nil {
		return numCond{}, false
	}
	n.v, n.lo, n.hi = v, dlo, dhi
	return n, true
}

func (n numCond) match(x Decimal) bool {
	switch n.prefix {
	case PrefixEq, PrefixAp:
		return x.Cmp(n.lo) >= 0 && x.Cmp(n.hi) < 0
	case PrefixNe:
		return x.Cmp(n.lo) < 0 || x.Cmp(n.hi) >= 0
	case PrefixGt:
		return x.Cmp(n.v) > 0
	case PrefixLt:
		return x.Cmp(n.v) < 0
	case PrefixGe:
		return x.Cmp(n.v) >= 0
	case PrefixLe:
		return x.Cmp(n.v) <= 0
	case PrefixSa:
		return x.Cmp(n.hi) >= 0
	case PrefixEb:
		return x.Cmp(n.lo) < 0
	}
	return false
}

// spans are the ranges of keys P + decimal key that hold the matches.
func (n numCond) spans(P []byte) []span {
	key := func(d Decimal) []byte { return d.AppendKey(slices.Clip(P)) }
	end := prefixEnd(P)
	switch n.prefix {
	case PrefixEq, PrefixAp:
		return []span{{from: key(n.lo), to: key(n.hi)}}
	case PrefixNe:
		return []span{{from: P, to: key(n.lo)}, {from: key(n.hi), to: end}}
	case PrefixGt:
		return []span{{from: prefixEnd(key(n.v)), to: end}}
	case PrefixLt:
		return []span{{from: P, to: key(n.v)}}
	case PrefixGe:
		return []span{{from: key(n.v), to: end}}
	case PrefixLe:
		return []span{{from: P, to: prefixEnd(key(n.v))}}
	case PrefixSa:
		return []span{{from: key(n.hi), to: end}}
	case PrefixEb:
		return []span{{from: P, to: key(n.lo)}}
	}
	return nil
}

func compileNumber(o *Operand) opPlan {
	n, ok := newNumCond(o)
	if !ok {
		return nothing
	}
	return opPlan{
		spans: n.spans([]byte{FormValue}), exact: true, indexed: true,
		match: func(v Value) bool {
			switch x := v.(type) {
			case NumberValue:
				return n.match(x.Value)
			case QuantityValue:
				return n.match(x.Value)
			}
			return false
		},
	}
}

func compileQuantity(o *Operand) opPlan {
	n, ok := newNumCond(o)
	if !ok {
		return nothing
	}
	sys, unit := o.Token.System, o.Token.Code
	var P []byte
	var unitOK func(QuantityValue) bool
	switch {
	case sys != "": // number|system|code
		P = formKey(FormSystemCode, sys, unit)
		unitOK = func(q QuantityValue) bool { return q.System == sys && q.Code == unit }
	case unit != "": // number||unit: the coded unit or the unit text
		P = formKey(FormUnit, unit)
		unitOK = func(q QuantityValue) bool { return q.Code == unit || q.Unit == unit }
	default:
		P = []byte{FormValue}
		unitOK = func(QuantityValue) bool { return true }
	}
	return opPlan{
		spans: n.spans(P), exact: true, indexed: true,
		match: func(v Value) bool {
			q, ok := v.(QuantityValue)
			return ok && unitOK(q) && n.match(q.Value)
		},
	}
}

// dateCond is a date operand: its prefix and the search range, widened for
// ap.
type dateCond struct {
	prefix Prefix
	qs, qe time.Time
}

// addSeconds adds s seconds to t without time.Duration's ±292-year limit.
func addSeconds(t time.Time, s int64) time.Time {
	return time.Unix(t.Unix()+s, int64(t.Nanosecond())).UTC()
}

func newDateCond(o *Operand, now time.Time) dateCond {
	d := dateCond{prefix: o.Prefix, qs: o.Date.Start, qe: o.Date.End}
	if d.prefix == "" {
		d.prefix = PrefixEq
	}
	if d.prefix == PrefixAp {
		gap := now.Unix() - d.qs.Unix()
		if gap < 0 {
			gap = -gap
		}
		d.qs, d.qe = addSeconds(d.qs, -gap/10), addSeconds(d.qe, gap/10)
	}
	return d
}

func (d dateCond) match(s, e time.Time) bool {
	switch d.prefix {
	case PrefixEq, PrefixAp:
		return !s.Before(d.qs) && !e.After(d.qe) && s.Before(e)
	case PrefixNe:
		return s.Before(d.qs) || e.After(d.qe)
	case PrefixGt:
		return e.After(d.qe)
	case PrefixLt:
		return s.Before(d.qs)
	case PrefixGe:
		return e.After(d.qe) || !s.Before(d.qs)
	case PrefixLe:
		return s.Before(d.qs) || !e.After(d.qe)
	case PrefixSa:
		return !s.Before(d.qe)
	case PrefixEb:
		return !e.After(d.qs)
	}
	return false
}

func compileDate(o *Operand, now time.Time) opPlan {
	d := newDateCond(o, now)
	v := func(t time.Time) []byte { return AppendKeyTime([]byte{FormValue}, t) }
	z := func(t time.Time) []byte { return AppendKeyTime([]byte{FormEnd}, t) }
	vAll, zAll := []byte{FormValue}, []byte{FormEnd}
	vEnd, zEnd := prefixEnd(vAll), prefixEnd(zAll)
	startsBefore := func(t time.Time) span { return span{from: vAll, to: v(t)} }         // S < t
	startsFrom := func(t time.Time) span { return span{from: v(t), to: vEnd} }           // S >= t
	endsAfter := func(t time.Time) span { return span{from: prefixEnd(z(t)), to: zEnd} } // E > t
	endsBy := func(t time.Time) span { return span{from: zAll, to: prefixEnd(z(t))} }    // E <= t
	p := opPlan{exact: true, indexed: true}
	switch d.prefix {
	case PrefixEq:
		p.spans, p.exact = []span{{from: v(d.qs), to: v(d.qe)}}, false
	case PrefixAp:
		slack := int64(apDateSlack / time.Second)
		p.spans, p.exact = []span{{from: v(addSeconds(d.qs, -slack)), to: v(addSeconds(d.qe, slack))}}, false
	case PrefixNe:
		p.spans = []span{startsBefore(d.qs), endsAfter(d.qe)}
	case PrefixGt:
		p.spans = []span{endsAfter(d.qe)}
	case PrefixLt:
		p.spans = []span{startsBefore(d.qs)}
	case PrefixGe:
		p.spans = []span{startsFrom(d.qs), endsAfter(d.qe)}
	case PrefixLe:
		p.spans = []span{startsBefore(d.qs), endsBy(d.qe)}
	case PrefixSa:
		p.spans = []span{startsFrom(d.qe)}
	case PrefixEb:
		p.spans = []span{endsBy(d.qs)}
	default:
		return nothing
	}
	p.match = func(val Value) bool {
		x, ok := val.(DateValue)
		return ok && d.match(x.Start, x.End)
	}
	return p
}

func compileString(mod Modifier, o *Operand) opPlan {
	switch mod {
	case ModExact:
		// The values equal to q are among those whose normalized form
		// equals q's: that point of the 'v' keys, then the comparison.
		q := o.Text
		return opPlan{
			spans: []span{pointSpan(formKey(FormValue, NormalizeString(q)))}, indexed: true,
			match: func(v Value) bool { s, ok := v.(StringValue); return ok && s.Exact == q },
		}
	case ModContains:
		q := NormalizeString(o.Text)
		return opPlan{match: func(v Value) bool { s, ok := v.(StringValue); return ok && strings.Contains(s.Normalized, q) }}
	}
	q := NormalizeString(o.Text)
	return opPlan{
		spans: []span{prefixSpan(AppendKeyPrefix([]byte{FormValue}, q))}, exact: true, indexed: true,
		match: func(v Value) bool { s, ok := v.(StringValue); return ok && strings.HasPrefix(s.Normalized, q) },
	}
}

// tokenPlan compiles a token operand (code, system|code, |code, system|)
// against the token fields get reads from a value, on the keys of form
// codeForm (code alone) and pairForm (system, code).
func tokenPlan(t TokenOperand, codeForm, pairForm byte, get func(Value) (system, code string, ok bool)) opPlan {
	p := opPlan{exact: true, indexed: true}
	switch {
	case !t.SystemGiven:
		if t.Code == "" {
			return nothing
		}
		p.spans = []span{pointSpan(formKey(codeForm, t.Code))}
		p.match = func(v Value) bool { _, c, ok := get(v); return ok && c == t.Code }
	case t.Code == "": // system|
		if t.System == "" {
			return nothing
		}
		p.spans = []span{prefixSpan(formKey(pairForm, t.System))}
		p.match = func(v Value) bool { s, _, ok := get(v); return ok && s == t.System }
	default: // system|code, |code
		p.spans = []span{pointSpan(formKey(pairForm, t.System, t.Code))}
		p.match = func(v Value) bool { s, c, ok := get(v); return ok && s == t.System && c == t.Code }
	}
	return p
}

func compileToken(mod Modifier, o *Operand) opPlan {
	switch mod {
	case ModText:
		q := NormalizeString(o.Text)
		return opPlan{
			spans: []span{prefixSpan(AppendKeyPrefix([]byte{FormText}, q))}, exact: true, indexed: true,
			match: func(v Value) bool {
				t, ok := v.(TokenValue)
				return ok && t.Display != "" && strings.HasPrefix(NormalizeString(t.Display), q)
			},
		}
	case ModOfType:
		t := o.Token
		if t.Code == "" {
			return nothing
		}
		return opPlan{
			spans: []span{pointSpan(formKey(FormOfType, t.System, t.Code, t.Value))}, exact: true, indexed: true,
			match: func(v Value) bool {
				x, ok := v.(TokenValue)
				return ok && x.TypeSystem == t.System && x.TypeCode == t.Code && x.Code == t.Value
			},
		}
	}
	// ModNone, and ModNot (whose negation is the condition's).
	return tokenPlan(o.Token, FormCode, FormValue, func(v Value) (string, string, bool) {
		t, ok := v.(TokenValue)
		return t.System, t.Code, ok
	})
}

func compileReference(mod Modifier, o *Operand, targets []string) opPlan {
	if mod == ModIdentifier {
		return tokenPlan(o.Token, FormIdentifierValue, FormIdentifier, func(v Value) (string, string, bool) {
			r, ok := v.(ReferenceValue)
			return r.Identifier.System, r.Identifier.Code, ok
		})
	}
	ref := o.Ref
	var p opPlan
	var same func(ReferenceValue) bool
	typed := false // the type is checked on the value, not in the key
	version := ref.Version
	switch {
	case ref.URL != "":
		// Read the URL as a value's is read, so /_history/v is cut the same way.
		q := ParseReference(ref.URL)
		if q.URL == "" {
			return nothing
		}
		version = q.Version
		p.spans = []span{pointSpan(formKey(FormURL, q.URL))}
		// With a type (a :Type modifier, or the URL's own Type/id tail) the
		// reference must be to that type: for a URL without such a tail
		// (urn:uuid:) that is its Reference.type, which the key lacks.
		typ := ref.Type
		typed = typ != "" && q.ResourceType != typ
		same = func(r ReferenceValue) bool { return r.URL == q.URL && (typ == "" || r.ResourceType == typ) }
	case ref.ID != "":
		// Type/id, or a bare id on a parameter with several targets: Type/id
		// of each (one point each, no index of ids alone to write on every
		// create); and with a Base, the absolute URL of each under it.
		types := []string{ref.Type}
		if ref.Type == "" {
			if types = targets; len(types) == 0 {
				types = conformance.ResourceTypes()
			}
		}
		var urls []string
		for _, t := range types {
			p.spans = append(p.spans, pointSpan(formKey(FormValue, t, ref.ID)))
			if ref.Base != "" {
				u := ParseReference(ref.Base + "/" + t + "/" + ref.ID).URL
				urls = append(urls, u)
				p.spans = append(p.spans, pointSpan(formKey(FormURL, u)))
			}
		}
		same = func(r ReferenceValue) bool {
			if r.Local() {
				return r.ID == ref.ID && slices.Contains(types, r.ResourceType)
			}
			return r.URL != "" && slices.Contains(urls, r.URL)
		}
	default:
		return nothing
	}
	p.indexed, p.exact = true, version == "" && !typed
	p.match = func(v Value) bool {
		r, ok := v.(ReferenceValue)
		return ok && same(r) && (version == "" || r.Version == version)
	}
	return p
}

func compileURI(mod Modifier, o *Operand) opPlan {
	q := o.Text
	p := opPlan{exact: true, indexed: true}
	switch mod {
	case ModBelow:
		if !strings.Contains(q, "://") { // "only apply to URLs, and not URNs such as OIDs"
			return compileURI(ModNone, o)
		}
		p.spans = []span{prefixSpan(AppendKeyPrefix([]byte{FormValue}, q))}
		p.match = func(v Value) bool { u, ok := v.(URIValue); return ok && strings.HasPrefix(u.URI, q) }
	case ModAbove:
		if !strings.Contains(q, "://") {
			return compileURI(ModNone, o)
		}
		parents := urlParents(q)
		for _, u := range parents {
			p.spans = append(p.spans, pointSpan(formKey(FormValue, u)))
		}
		p.match = func(v Value) bool { u, ok := v.(URIValue); return ok && slices.Contains(parents, u.URI) }
	default:
		p.spans = []span{pointSpan(formKey(FormValue, q))}
		p.match = func(v Value) bool { u, ok := v.(URIValue); return ok && u.URI == q }
	}
	return p
}

// urlParents are the URLs above url, url included: cut before and after
// each "/" of its path (http://a.org/fhir/x: http://a.org, http://a.org/,
// http://a.org/fhir, http://a.org/fhir/, http://a.org/fhir/x). A leading
// substring is not a parent: .../enc is not above .../encounter.
func urlParents(url string) []string {
	out := []string{url}
	authority := strings.Index(url, "://") + len("://")
	for k := authority; k < len(url); k++ {
		if url[k] == '/' {
			out = append(out, url[:k], url[:k+1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// maxCompositePrefixes bounds the product of point keys a composite scan
// enumerates; beyond it the scan stops at the prefixes so far.
const maxCompositePrefixes = 256

func compileComposite(p *Param, o *Operand, now time.Time) opPlan {
	if len(o.Parts) != len(p.Components) || len(o.Parts) == 0 {
		return nothing
	}
	parts := make([]opPlan, len(o.Parts))
	unitChecked := false // a quantity part's unit, left to the post-filter
	for i := range o.Parts {
		parts[i] = compileOperand(p.Components[i].Param, ModNone, &o.Parts[i], now)
		if q := &o.Parts[i]; p.Components[i].Param.Type == Quantity && (q.Token.System != "" || q.Token.Code != "") {
			// Composite keys hold a quantity's number only (CompositeValue.Keys):
			// scan by the number, match the unit too.
			bare := *q
			bare.Token = TokenOperand{}
			match := parts[i].match
			parts[i] = compileQuantity(&bare)
			parts[i].match = match
			unitChecked = true
		}
	}
	plan := opPlan{exact: !unitChecked, indexed: true}
	plan.match = func(v Value) bool {
		cv, ok := v.(CompositeValue)
		if !ok || len(cv.Components) != len(parts) {
			return false
		}
		for i, part := range parts {
			if !part.match(cv.Components[i]) {
				return false
			}
		}
		return true
	}
	prefixes := [][]byte{{FormValue}}
	last := len(parts) - 1
	for i, part := range parts {
		if !part.indexed {
			// Scan the prefixes so far; the rest is the post-filter's.
			for _, pre := range prefixes {
				plan.spans = append(plan.spans, prefixSpan(pre))
			}
			plan.exact = false
			return plan
		}
		plan.exact = plan.exact && part.exact
		points := !slices.ContainsFunc(part.spans, func(s span) bool { return s.key == nil })
		if points && i < last && len(prefixes)*len(part.spans) <= maxCompositePrefixes {
			next := make([][]byte, 0, len(prefixes)*len(part.spans))
			for _, pre := range prefixes {
				for _, s := range part.spans {
					next = append(next, cat(pre, s.key))
				}
			}
			prefixes = next
			continue
		}
		// The first range (or the last part): it ends the key.
		for _, pre := range prefixes {
			for _, s := range part.spans {
				to := prefixEnd(pre)
				if s.to != nil {
					to = cat(pre, s.to)
				}
				plan.spans = append(plan.spans, span{from: cat(pre, s.from), to: to})
			}
		}
		if i < last {
			plan.exact = false
		}
		return plan
	}
	return plan // not reached: the last part always ends the loop
}

// mergeScans sorts scans by parameter and From and merges those that
// overlap or touch.
func mergeScans(scans []Scan) []Scan {
	if len(scans) < 2 {
		return scans
	}
	slices.SortFunc(scans, func(a, b Scan) int {
		if c := strings.Compare(a.Param, b.Param); c != 0 {
			return c
		}
		return bytes.Compare(a.From, b.From)
	})
	out := scans[:1]
	for _, s := range scans[1:] {
		cur := &out[len(out)-1]
		if s.Param == cur.Param && (cur.To == nil || bytes.Compare(s.From, cur.To) <= 0) {
			same := bytes.Equal(s.From, cur.From) && bytes.Equal(s.To, cur.To)
			cur.Point = cur.Point && s.Point && same
			if cur.To != nil && (s.To == nil || bytes.Compare(s.To, cur.To) > 0) {
				cur.To = s.To
			}
			continue
		}
		out = append(out, s)
	}
	return out
}
