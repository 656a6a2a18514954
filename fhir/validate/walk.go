package validate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"healthhub/conformance"
	"healthhub/fhir"
)

// walker makes the one pass over a decoded body that finds what the schema
// cannot: it knows at every step which definition it is in (from the schema
// itself), so it can check dates as dates, references as references,
// Periods as Periods, and dispatch nested resources to their own schema.
type walker struct {
	set    *schemaSet
	issues []fhir.Issue
	err    error // the validator's own failure (a schema that does not compile)

	// schemaBad is set when the walker's copy of the schema check finds a
	// problem in the resource being walked; the schema library then runs
	// on that resource and reports the problems in its own terms.
	schemaBad bool
	path      []byte // FHIRPath of the current element, e.g. "Patient.name[0].given"
	scope     *scope // the resource being walked, with its contained resources
	resType   string // the type of the resource being walked
	resRoot   int    // where its elements start in path

	// entryScopes holds the scope of each Bundle entry's resource by its
	// path, for the Bundle rules checked after the entries are walked.
	entryScopes map[string]*scope
}

// scope is one resource and the resources it contains: what ref-1 and dom-3
// need, and the references a Bundle resolves among its entries.
type scope struct {
	contained []containedRes
	cur       int             // index in contained of the resource being walked; -1: the container
	hashRefs  map[string]bool // "#..." values of references, canonicals and uris anywhere in the scope
	localRefs []located       // references to "#id", checked against contained ids (ref-1)
	refs      []located       // every Reference.reference, for a Bundle to resolve (only when inEntry)
	inEntry   bool
}

type containedRes struct {
	id         string
	path       string
	typ        string
	refersToUs bool // has a reference "#" to its container
}

type located struct {
	value   string
	path    string
	elem    string   // a reference's element (Observation.subject)
	targets []string // and the types it may refer to, if known
}

// add records one issue at the current path plus suffix.
func (w *walker) add(code, suffix, format string, args ...any) {
	w.addAt(code, string(w.path)+suffix, format, args...)
}

func (w *walker) addAt(code, expr, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	w.issues = append(w.issues, fhir.Issue{Severity: "error", Code: code, Diagnostics: msg, Expression: []string{expr}})
}

// resource validates one whole resource found at w.path. containedAt is
// its index in the container's contained array, or -1 when it is not a
// contained resource (a top-level resource, a Bundle entry, a Parameters
// value): those start a scope of their own, which is returned. inEntry marks
// the scope of a Bundle entry's resource.
//
// The walk mirrors the resource's JSON schema (see schemaOK). Only when it
// finds a schema problem does the compiled schema of the type run, so the
// findings come from the official schema and the library, while a valid
// body, the common case, pays for one walk (the library alone costs ~400 µs
// on a Synthea Patient). Nested resources are separate units: the schema
// sees them as plain objects (the ResourceList overlay) and the walker
// dispatches each to its own type.
func (w *walker) resource(obj map[string]any, typ string, containedAt int, inEntry bool) *scope {
	def := w.set.defs[typ]
	outer, outerBad := w.scope, w.schemaBad
	outerType, outerRoot := w.resType, w.resRoot
	w.resType, w.resRoot = typ, len(w.path)
	defer func() { w.resType, w.resRoot = outerType, outerRoot }()
	if containedAt < 0 {
		w.scope = &scope{cur: -1, inEntry: inEntry}
	} else {
		w.scope.cur = containedAt
	}
	w.schemaBad = false
	w.object(obj, def)
	if typ == "Bundle" {
		w.bundle(obj)
	}
	if w.schemaBad || crossCheck.Load() {
		w.librarySchema(obj, typ)
	}
	sc := w.scope
	if containedAt < 0 {
		w.finishScope()
		w.scope = outer
	} else {
		w.scope.cur = -1
	}
	w.schemaBad = outerBad
	return sc
}

// librarySchema validates one resource with its type's compiled schema and
// reports what it finds. With crossCheck on (tests, fuzzing) it also runs
// when the walk found nothing, and a disagreement between the two is an
// internal error: the walk must never pass what the schema rejects.
func (w *walker) librarySchema(obj map[string]any, typ string) {
	sch, err := w.set.schema(typ)
	if err != nil {
		w.err = err
		return
	}
	verr := sch.Validate(obj)
	if crossCheck.Load() && (verr != nil) != w.schemaBad {
		w.err = fmt.Errorf("validate: the walk (schema problem: %v) and the %s schema (%v) disagree at %s", w.schemaBad, typ, verr, w.path)
		return
	}
	if verr != nil {
		w.schemaIssues(verr, obj)
	}
}

// object walks the members of one JSON object of definition def.
func (w *walker) object(obj map[string]any, def *definition) {
	mark := len(w.path)
	for key, val := range obj {
		p := def.props[key]
		if p == nil {
			// Unknown to the schema (additionalProperties is false
			// everywhere); resourceType is checked by the dispatcher.
			if key != "resourceType" || !def.resource || val != def.name {
				w.schemaBad = true
			}
			continue
		}
		w.path = append(append(w.path[:mark], '.'), key...)
		switch {
		case p.kind == kindPrimExt:
			w.primitiveExtension(obj, key, val, p, def)
		case p.array:
			w.array(obj, key, val, p, def)
		default:
			w.value(val, p, def)
		}
	}
	w.path = w.path[:mark]
	for _, r := range def.required {
		if _, ok := obj[r]; !ok {
			w.schemaBad = true
		}
	}

	for base, names := range def.choices {
		var present []string
		for _, n := range names {
			_, hasValue := obj[n]
			_, hasExtension := obj["_"+n]
			if hasValue || hasExtension {
				present = append(present, n)
			}
		}
		if len(present) > 1 {
			w.add("structure", "."+base, "%s.%s[x] has %d values (%s): a choice element takes one type", w.path, base, len(present), strings.Join(present, ", "))
		}
	}
	for _, r := range requiredPrimitives[def.name] {
		_, hasValue := obj[r]
		_, hasExtension := obj["_"+r] // an element present only through its extensions counts
		if !hasValue && !hasExtension {
			w.add("required", "."+r, "%s.%s is required (minimum cardinality 1)", w.path, r)
		}
	}

	switch def.name {
	case "Period":
		w.period(obj)
	case "Reference":
		w.referenceTypeMember(obj)
	case "Extension":
		w.extension(obj)
	case "Quantity", "Age", "Count", "Distance", "Duration":
		w.quantity(obj, def.name)
	case "Range":
		w.rangeOrder(obj)
	case "ContactPoint":
		w.contactPoint(obj)
	case "Observation":
		w.observation(obj, def)
	case "Observation_ReferenceRange":
		w.referenceRange(obj)
	case "Patient_Contact":
		w.patientContact(obj)
	case "Organization":
		w.organization(obj)
	case "Appointment":
		w.appointment(obj)
	case "Narrative":
		if _, ok := obj["status"]; !ok {
			w.add("required", ".status", "Narrative.status is required")
		}
	}
}

// schemaOK is the walker's copy of the JSON-schema check of one value of a
// primitive or nested-resource property: the type keyword, then the
// pattern (strings only), then the enum, as the library evaluates them.
func (p *property) schemaOK(val any) bool {
	switch p.jsonType {
	case "string":
		s, ok := val.(string)
		if !ok || (p.pattern != nil && !p.pattern.match(s)) {
			return false
		}
	case "number":
		if _, ok := val.(json.Number); !ok {
			return false
		}
	case "boolean":
		if _, ok := val.(bool); !ok {
			return false
		}
	case "object":
		if _, ok := val.(map[string]any); !ok {
			return false
		}
	}
	if p.enum != nil {
		s, ok := val.(string)
		return ok && p.enum[s]
	}
	return true
}

// array walks an array member at w.path.
func (w *walker) array(obj map[string]any, key string, val any, p *property, def *definition) {
	arr, ok := val.([]any)
	if !ok {
		w.schemaBad = true // the schema says "type": "array"
		return
	}
	if len(arr) == 0 {
		w.add("structure", "", "empty array: FHIR JSON leaves out an element that has no values")
		return
	}
	if p.kind == kindPrimitive {
		w.alignment(obj, key)
	}
	mark := len(w.path)
	for i, item := range arr {
		w.path = appendIndex(w.path[:mark], i)
		if item == nil {
			// In a primitive array a null is a placeholder for a value that
			// only has extensions; alignment judged it, though the R4
			// schema (unaware of the convention) rejects it. Elsewhere null
			// is not FHIR JSON, though the schema lets it pass.
			switch p.kind {
			case kindPrimitive:
				w.schemaBad = true
			case kindResource:
				w.schemaBad = true // "type": "object" (the overlay); reported here
				w.add("structure", "", "null is not allowed here")
			default:
				w.add("structure", "", "null is not allowed here")
			}
			continue
		}
		w.value(item, p, def)
	}
	w.path = w.path[:mark]
}

// value checks one value (an array item or a single member) at w.path.
func (w *walker) value(val any, p *property, def *definition) {
	switch p.kind {
	case kindComplex:
		m, ok := val.(map[string]any)
		if !ok {
			// The R4 schema gives datatypes no "type": "object", so it lets
			// "name": ["Smith"] or "code": "1234-5" pass.
			w.add("structure", "", "expected an object (%s), got %s", p.def.name, jsonKind(val))
			return
		}
		if emptyElement(m) {
			w.add("invariant", "", "element has no value and no children (ele-1); leave it out")
		}
		w.object(m, p.def)
	case kindPrimitive:
		if !p.schemaOK(val) {
			w.schemaBad = true
			return
		}
		w.primitive(val, p.prim, def, p.name)
	case kindXHTML:
		s, ok := val.(string)
		if !ok {
			w.add("structure", "", "the narrative div must be a string of XHTML, got %s", jsonKind(val))
			return
		}
		if problem := narrativeProblem(s); problem != "" {
			w.add("value", "", "%s", problem)
		}
	case kindResource:
		m, ok := val.(map[string]any)
		if !ok {
			w.schemaBad = true
			return
		}
		w.nested(m, def, p.name)
	}
}

// jsonKind names the JSON type of a decoded value, for diagnostics.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// emptyElement: an element must have a value or children other than id
// (ele-1); {} and {"id": "x"} have neither.
func emptyElement(m map[string]any) bool {
	if len(m) == 0 {
		return true
	}
	_, hasID := m["id"]
	return len(m) == 1 && hasID
}

// primitiveExtension walks "_x", the id and extensions of primitive x.
func (w *walker) primitiveExtension(obj map[string]any, key string, val any, p *property, def *definition) {
	base := key[1:]
	// Inside a primitive's extensions FHIRPath names the primitive itself:
	// Patient.birthDate.extension[0], not Patient._birthDate.
	w.path = append(w.path[:len(w.path)-len(key)], base...)
	bp := def.props[base]
	if p.array {
		arr, ok := val.([]any)
		if !ok {
			w.schemaBad = true
			return
		}
		if len(arr) == 0 {
			w.add("structure", "", "empty array _%s: FHIR JSON leaves out an element that has no values", base)
			return
		}
		if _, hasValues := obj[base]; !hasValues && bp != nil && bp.array {
			w.alignment(obj, base) // otherwise done when the values were walked
		}
		values, _ := obj[base].([]any)
		mark := len(w.path)
		for i, item := range arr {
			w.path = appendIndex(w.path[:mark], i)
			switch m := item.(type) {
			case nil: // a value without extensions; alignment judged it
			case map[string]any:
				hasValue := i < len(values) && values[i] != nil
				if len(m) == 0 {
					w.add("invariant", "", "element has no value and no children (ele-1); use null for a value without extensions")
				} else if !hasValue && !hasExtensions(m) {
					w.add("invariant", "", "element has no value and no extensions (ele-1)")
				}
				w.object(m, p.def)
			default:
				w.add("structure", "", "expected an object with the id and extensions of %s[%d], got %s", base, i, jsonKind(item))
			}
		}
		w.path = w.path[:mark]
		return
	}
	m, ok := val.(map[string]any)
	if !ok {
		w.add("structure", "", "expected an object with the id and extensions of %s, got %s", base, jsonKind(val))
		return
	}
	_, hasValue := obj[base]
	if len(m) == 0 || (!hasValue && !hasExtensions(m)) {
		w.add("invariant", "", "element has no value and no extensions (ele-1)")
	}
	w.object(m, p.def)
}

func hasExtensions(m map[string]any) bool {
	a, _ := m["extension"].([]any)
	return len(a) > 0
}

// alignment checks a primitive array x against its extensions _x: in FHIR
// JSON they are parallel, null filling the gaps, so they must be the same
// length and no position may be null in both. w.path is the element x.
func (w *walker) alignment(obj map[string]any, key string) {
	values, _ := obj[key].([]any)
	exts, _ := obj["_"+key].([]any)
	if _, ok := obj["_"+key]; ok && exts == nil {
		return // _x is not an array: the schema reports it
	}
	if _, ok := obj[key]; ok && values == nil {
		return
	}
	if values != nil && exts != nil && len(values) != len(exts) {
		w.add("structure", "", "%s has %d values but _%s has %d; the arrays must be the same length, null filling the gaps",
			key, len(values), key, len(exts))
	}
	n := max(len(values), len(exts))
	for i := 0; i < n; i++ {
		var v, e any
		if i < len(values) {
			v = values[i]
		}
		if i < len(exts) {
			e = exts[i]
		}
		if v == nil && e == nil {
			w.add("structure", "["+strconv.Itoa(i)+"]", "%s[%d] has neither a value nor extensions", key, i)
		}
	}
}

// primitive checks what the schema's regular expressions cannot.
func (w *walker) primitive(val any, prim string, def *definition, name string) {
	switch prim {
	case "date", "dateTime", "instant":
		if s, ok := val.(string); ok {
			if _, syntaxOK, real := parseMoment(s, prim); syntaxOK && !real {
				w.add("value", "", "%q is not a real calendar date", s)
			}
		}
	case "integer", "positiveInt", "unsignedInt":
		if n, ok := val.(json.Number); ok {
			if problem := integerProblem(string(n), prim); problem != "" {
				w.add("value", "", "%s", problem)
			}
		}
	case "uri", "url", "canonical":
		s, ok := val.(string)
		if ok && s == "" {
			// The schema's \S* lets "" through; an element has a value or
			// is left out (ele-1), as string's and code's patterns say.
			w.add("value", "", "empty %s: FHIR JSON leaves out an element that has no value", prim)
		}
		if ok && strings.HasPrefix(s, "#") && w.scope != nil {
			w.scope.hash(s)
		}
	case "base64Binary":
		// The schema's base64Binary has no pattern (Extension's inline one
		// does): R4's is (\s*([0-9a-zA-Z\+/=]){4}\s*)+, RFC 4648 with
		// padding, whitespace allowed between the groups.
		if s, ok := val.(string); ok {
			if _, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), "")); err != nil || strings.TrimSpace(s) == "" {
				w.add("value", "", "not base64 (RFC 4648, padded): %s", base64Problem(s, err))
			}
		}
	case "string", "markdown", "code":
		s, ok := val.(string)
		if ok && len(s) > maxStringChars && utf8.RuneCountInString(s) > maxStringChars {
			w.add("value", "", "%s of %d characters: R4 strings are at most 1024*1024 characters", prim, utf8.RuneCountInString(s))
		}
		if ok && prim == "string" && def.name == "Reference" && name == "reference" {
			w.reference(s)
		}
	}
}

// maxStringChars: "strings SHALL NOT exceed 1MB (1024*1024 characters) in
// size" (R4 datatypes.html, string; markdown and code are strings).
const maxStringChars = 1 << 20

func base64Problem(s string, err error) string {
	if err == nil {
		return "the value is empty"
	}
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%q: %v", s, err)
}

// integerProblem: the schema says "number" for the integer types (its
// patterns apply to strings only), so 1.5 and 3e9 pass it.
func integerProblem(n, prim string) string {
	if strings.ContainsAny(n, ".eE") {
		return fmt.Sprintf("%q is not a whole number, as %s requires", n, prim)
	}
	i, err := strconv.ParseInt(n, 10, 32)
	if err != nil {
		return fmt.Sprintf("%q is outside the 32-bit range of %s", n, prim)
	}
	switch {
	case prim == "positiveInt" && i < 1:
		return fmt.Sprintf("%q is not a positiveInt (1 or more)", n)
	case prim == "unsignedInt" && (i < 0 || strings.HasPrefix(n, "-")): // -0 too: [0]|([1-9][0-9]*)
		return fmt.Sprintf("%q is not an unsignedInt (0 or more)", n)
	}
	return ""
}

func (s *scope) hash(v string) {
	if s.hashRefs == nil {
		s.hashRefs = make(map[string]bool)
	}
	s.hashRefs[v] = true
}

// reference checks Reference.reference at w.path and records it in the scope.
func (w *walker) reference(ref string) {
	if problem := referenceProblem(ref); problem != "" {
		w.add("value", "", "%s", problem)
		return
	}
	elem := w.resType + elementPath(string(w.path[w.resRoot:]))
	allowed := referenceTargets(elem)
	if typ := referenceType(ref); typ != "" && allowed != nil && !slices.Contains(allowed, typ) {
		w.add("value", "", "%q refers to a %s: %s refers to %s", short(ref), typ, elem, orList(allowed))
		return
	}
	sc := w.scope
	if sc == nil {
		return
	}
	if strings.HasPrefix(ref, "#") {
		sc.hash(ref)
		if ref == "#" {
			if sc.cur >= 0 {
				sc.contained[sc.cur].refersToUs = true
			}
		} else {
			sc.localRefs = append(sc.localRefs, located{ref, string(w.path), elem, allowed})
		}
		return
	}
	if sc.inEntry {
		sc.refs = append(sc.refs, located{ref, string(w.path), elem, allowed})
	}
}

// orList writes types as "A", "A or B", "A, B or C".
func orList(types []string) string {
	if len(types) < 2 {
		return strings.Join(types, "")
	}
	return strings.Join(types[:len(types)-1], ", ") + " or " + types[len(types)-1]
}

// nested dispatches a resource held inside another (contained, a Bundle
// entry, a Parameters value, an outcome) to its own type's schema.
func (w *walker) nested(m map[string]any, parent *definition, key string) {
	rt, ok := m["resourceType"].(string)
	switch {
	case m["resourceType"] == nil:
		w.add("required", ".resourceType", "a resource here needs a resourceType")
		return
	case !ok || !conformance.IsResourceType(rt) || w.set.defs[rt] == nil:
		w.add("invalid", ".resourceType", "%s is not an R4 resource type", jsonText(m["resourceType"]))
		return
	}
	if key == "contained" && parent.resource && w.scope != nil {
		w.containedRules(m)
		id, _ := m["id"].(string)
		w.scope.contained = append(w.scope.contained, containedRes{id: id, path: string(w.path), typ: rt})
		w.resource(m, rt, len(w.scope.contained)-1, false)
		return
	}
	entry := parent.name == "Bundle_Entry" && key == "resource"
	sc := w.resource(m, rt, -1, entry)
	if entry && sc != nil {
		if w.entryScopes == nil {
			w.entryScopes = make(map[string]*scope)
		}
		w.entryScopes[string(w.path)] = sc
	}
}

// containedRules: a contained resource has no contained resources of its
// own (dom-2), no version or update time of its own (dom-4), and no
// security labels (dom-5): it is part of its container in all three.
func (w *walker) containedRules(m map[string]any) {
	if _, ok := m["contained"]; ok {
		w.add("invariant", ".contained", "a contained resource cannot contain resources (dom-2)")
	}
	meta, _ := m["meta"].(map[string]any)
	if _, ok := meta["versionId"]; ok {
		w.add("invariant", ".meta.versionId", "a contained resource has no versionId of its own (dom-4)")
	}
	if _, ok := meta["lastUpdated"]; ok {
		w.add("invariant", ".meta.lastUpdated", "a contained resource has no lastUpdated of its own (dom-4)")
	}
	if _, ok := meta["security"]; ok {
		w.add("invariant", ".meta.security", "a contained resource cannot have security labels (dom-5)")
	}
}

// finishScope checks the references between a resource and its contained
// resources, once all of them have been walked.
func (w *walker) finishScope() {
	sc := w.scope
	if len(sc.localRefs) == 0 && len(sc.contained) == 0 {
		return
	}
	ids := make(map[string]string, len(sc.contained)) // id -> type
	for _, c := range sc.contained {
		if c.id == "" {
			continue
		}
		if _, dup := ids[c.id]; dup {
			// The contained resources share their container's id space:
			// "#id" must name one of them.
			w.addAt("invariant", c.path+".id", "another contained resource has the id %q; \"#%s\" would name either", c.id, c.id)
		}
		ids[c.id] = c.typ
	}
	for _, r := range sc.localRefs {
		typ, ok := ids[r.value[1:]]
		switch {
		case !ok:
			w.addAt("invariant", r.path, "%q refers to no contained resource (ref-1)", r.value)
		case r.targets != nil && !slices.Contains(r.targets, typ):
			w.addAt("value", r.path, "%q refers to a contained %s: %s refers to %s", r.value, typ, r.elem, orList(r.targets))
		}
	}
	for _, c := range sc.contained {
		switch {
		case c.id == "":
			w.addAt("invariant", c.path, "contained %s has no id, so nothing can refer to it (dom-3)", c.typ)
		case !sc.hashRefs["#"+c.id] && !c.refersToUs:
			w.addAt("invariant", c.path, "contained %s %q is not referred to from its container (dom-3)", c.typ, c.id)
		}
	}
}

// extension: an Extension has a url, and either a value or extensions,
// never both (ext-1). The schema cannot say so: url is a primitive, and the
// JSON schema lists only complex elements as required.
func (w *walker) extension(obj map[string]any) {
	if _, ok := obj["url"]; !ok {
		w.add("required", ".url", "an extension needs a url")
	}
	hasValue := false
	for k := range obj {
		if strings.HasPrefix(k, "value") || strings.HasPrefix(k, "_value") {
			hasValue = true
			break
		}
	}
	if hasValue == hasExtensions(obj) {
		w.add("invariant", "", "an extension has either a value or nested extensions, not both and not neither (ext-1)")
	}
}

func appendIndex(b []byte, i int) []byte {
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, ']')
}
