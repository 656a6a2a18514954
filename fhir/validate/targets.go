package validate

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"

	"healthhub/conformance"
)

// A Reference element names the resource types it may point at
// (Observation.subject: Patient, Group, Device or Location). The R4 JSON
// schema does not carry those lists; the official search parameters do,
// for every element a reference parameter searches: its target list is
// the union over the elements its expression names, so for an element
// that only that parameter names, it is the element's own list, and for
// an element of a parameter defined on many types (encounter) it is wider
// than the element's. Checked against it, a reference to a type no
// definition allows is refused, and none the element allows is.

var (
	targetsOnce sync.Once
	targets     map[string][]string // "Type.element.path" -> allowed types, sorted
)

// plainPath is an expression alternative that names an element without
// a function, a type test or a choice: Observation.subject,
// Encounter.participant.individual.
var plainPath = regexp.MustCompile(`^[A-Z][A-Za-z]+(\.[a-z][A-Za-z]*)+$`)

// choiceReference is a choice element's Reference type, which JSON names
// with the type appended (medicationReference).
var choiceReference = regexp.MustCompile(`^\(([A-Z][A-Za-z]+(?:\.[a-z][A-Za-z]*)+) as Reference\)$`)

func loadTargets() {
	var bundle struct {
		Entry []struct {
			Resource struct {
				Type       string   `json:"type"`
				Expression string   `json:"expression"`
				Target     []string `json:"target"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(conformance.SearchParametersJSON(), &bundle); err != nil {
		panic("validate: embedded search parameters do not parse: " + err.Error())
	}
	targets = map[string][]string{}
	anyType := map[string]bool{} // elements of Reference(Any)
	for _, e := range bundle.Entry {
		d := e.Resource
		if d.Type != "reference" || len(d.Target) == 0 {
			continue
		}
		for _, alt := range strings.Split(d.Expression, "|") {
			alt = strings.TrimSpace(alt)
			if m := choiceReference.FindStringSubmatch(alt); m != nil {
				alt = m[1] + "Reference" // (MedicationRequest.medication as Reference): medicationReference
			}
			if !plainPath.MatchString(alt) || !conformance.IsResourceType(alt[:strings.IndexByte(alt, '.')]) {
				continue
			}
			if anyTarget(d.Target) {
				anyType[alt] = true
				continue
			}
			for _, t := range d.Target {
				if !slices.Contains(targets[alt], t) {
					targets[alt] = append(targets[alt], t)
				}
			}
		}
	}
	for path := range anyType {
		delete(targets, path)
	}
	for _, ts := range targets {
		slices.Sort(ts)
	}
}

// anyTarget reports whether a parameter's targets are those of a
// Reference(Any): the official lists of such elements (Observation.focus,
// Provenance.target) name every resource type but Parameters, which R4
// lets them name as well (a Task's focus on its input Parameters, a
// Provenance of one). Such an element is not checked.
func anyTarget(types []string) bool {
	for _, t := range conformance.ResourceTypes() {
		if t != "Parameters" && !slices.Contains(types, t) {
			return false
		}
	}
	return true
}

// referenceTargets returns the types the Reference element at path (a
// resource type and element names, no indexes) may point at, or nil when
// no definition says or the element is a Reference(Any).
func referenceTargets(path string) []string {
	targetsOnce.Do(loadTargets)
	return targets[path]
}

// referenceType is the resource type a reference names: Type/id,
// Type/id/_history/v, Type?criteria, or an absolute RESTful URL ending so;
// "" for a contained (#id) or Bundle-local (urn:) reference, or a URL
// that names no type.
func referenceType(ref string) string {
	if typ, _, ok := strings.Cut(ref, "?"); ok && !strings.Contains(typ, "/") {
		return typ // conditional
	}
	if strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
		return ""
	}
	if i := strings.Index(ref, "://"); i >= 0 {
		ref = ref[i+3:]
		if j := strings.IndexAny(ref, "?#"); j >= 0 {
			ref = ref[:j]
		}
	}
	parts := strings.Split(ref, "/")
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	if n := len(parts); n >= 2 && conformance.IsResourceType(parts[n-2]) {
		return parts[n-2]
	}
	return ""
}

// elementPath is the element of a FHIRPath with indexes (resource-
// relative, from its first "."): ".performer[1].reference" is
// ".performer".
func elementPath(rel string) string {
	rel = strings.TrimSuffix(rel, ".reference")
	if !strings.Contains(rel, "[") {
		return rel
	}
	var b strings.Builder
	for len(rel) > 0 {
		i := strings.IndexByte(rel, '[')
		if i < 0 {
			b.WriteString(rel)
			break
		}
		b.WriteString(rel[:i])
		j := strings.IndexByte(rel[i:], ']')
		if j < 0 {
			break
		}
		rel = rel[i+j+1:]
	}
	return b.String()
}

// referenceTypeMember checks a Reference's type member at w.path: a type
// its element allows, and the type its reference names, when it names one
// (R4 Reference.type: "If both Reference.type and Reference.reference are
// populated and Reference.reference is a FHIR URL, both SHALL be
// consistent"). A type is relative to
// http://hl7.org/fhir/StructureDefinition/; an absolute one names a logical
// model, which no element list holds: it is left alone.
func (w *walker) referenceTypeMember(obj map[string]any) {
	typ, ok := obj["type"].(string)
	if !ok {
		return
	}
	typ = strings.TrimPrefix(typ, "http://hl7.org/fhir/StructureDefinition/")
	if !conformance.IsResourceType(typ) {
		return
	}
	if ref, ok := obj["reference"].(string); ok {
		if named := referenceType(ref); named != "" && named != typ {
			w.add("value", ".type", "type %s, but the reference %q names a %s: the two must agree", typ, short(ref), named)
			return
		}
	}
	// w.path is the Reference itself, which elementPath reads as the
	// element of its reference member: ".reference" is what it drops (an
	// element may itself be called reference: CarePlan.activity.reference).
	elem := w.resType + elementPath(string(w.path[w.resRoot:])+".reference")
	if allowed := referenceTargets(elem); allowed != nil && !slices.Contains(allowed, typ) {
		w.add("value", ".type", "type %s: %s refers to %s", typ, elem, orList(allowed))
	}
}
