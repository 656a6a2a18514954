package validate

import (
	"encoding/json"
	"strconv"

	"healthhub/fhir"
)

// The R4 invariants of error severity ("Rule" in the specification) on
// datatypes and resources that the schema cannot express, beyond ele-1,
// ext-1, per-1, ref-1, dom-2..5 and bdl-*, which are checked elsewhere. Each is checked
// by walker.object wherever its definition appears: a datatype inside any
// resource, a resource at the top, contained or in a Bundle entry.
//
// FHIRPath's exists() is true for a primitive that has only extensions
// ("_start": {"extension": [...]}), and such an element has no value to
// compare. Each check below refuses only what the expression refuses
// whichever way that is read: an element counts as absent when neither x
// nor _x is there, and as present, for a rule that forbids it, only when x
// has a value. In doubt, a body is accepted.

// present: x has a value or extensions (FHIRPath x.exists()).
func present(obj map[string]any, key string) bool {
	if _, ok := obj[key]; ok {
		return true
	}
	_, ok := obj["_"+key]
	return ok
}

// quantity checks qty-3 on a Quantity or one of its R4 profiles (Age,
// Count, Distance, Duration; SimpleQuantity and MoneyQuantity are plain
// Quantity in the JSON schema): code.empty() or system.exists().
func (w *walker) quantity(obj map[string]any, typ string) {
	code, ok := obj["code"].(string)
	if !ok || present(obj, "system") {
		return
	}
	w.add("invariant", "", "%s has the unit code %q but no system: a coded unit needs the system that defines it (qty-3)", typ, code)
}

// rangeOrder checks rng-2 on a Range: low.empty() or high.empty() or
// (low <= high). The values are compared exactly, as decimals, and only when
// both are plain numbers in the same unit: the same code and system, or no
// code on either and the same unit text and system (no units at all
// included). Quantities in different units are not converted, and a
// comparator (which a Range's SimpleQuantity may not carry) makes the
// comparison moot: both are accepted.
func (w *walker) rangeOrder(obj map[string]any) {
	low, _ := obj["low"].(map[string]any)
	high, _ := obj["high"].(map[string]any)
	if low == nil || high == nil {
		return
	}
	lv, ok1 := low["value"].(json.Number)
	hv, ok2 := high["value"].(json.Number)
	if !ok1 || !ok2 || present(low, "comparator") || present(high, "comparator") || !sameUnit(low, high) {
		return
	}
	if c, ok := compareDecimal(string(lv), string(hv)); ok && c > 0 {
		w.add("invariant", "", "low %s is above high %s: a Range's low is not above its high (rng-2)", lv, hv)
	}
}

// sameUnit reports whether two Quantities are certainly in the same unit.
func sameUnit(a, b map[string]any) bool {
	str := func(m map[string]any, k string) (string, bool) {
		if _, ok := m["_"+k]; ok {
			return "", false // extensions could say anything about it
		}
		v, present := m[k]
		s, isString := v.(string)
		return s, !present || isString
	}
	as, ok1 := str(a, "system")
	bs, ok2 := str(b, "system")
	ac, ok3 := str(a, "code")
	bc, ok4 := str(b, "code")
	au, ok5 := str(a, "unit")
	bu, ok6 := str(b, "unit")
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || as != bs || ac != bc {
		return false
	}
	return ac != "" || au == bu
}

// compareDecimal compares two JSON numbers exactly (-1, 0, +1), as
// written, never through float64; ok is false when either is not a
// decimal (fhir.ParseDecimal).
func compareDecimal(a, b string) (int, bool) {
	x, err := fhir.ParseDecimal(a)
	if err != nil {
		return 0, false
	}
	y, err := fhir.ParseDecimal(b)
	if err != nil {
		return 0, false
	}
	return x.Cmp(y), true
}

// contactPoint checks cpt-2: value.empty() or system.exists().
func (w *walker) contactPoint(obj map[string]any) {
	if _, ok := obj["value"]; ok && !present(obj, "system") {
		w.add("invariant", "", "a ContactPoint with a value needs a system (phone, email ...) (cpt-2)")
	}
}

// observation checks obs-6 and obs-7 on an Observation.
//
//	obs-6: dataAbsentReason.empty() or value.empty()
//	obs-7: value.empty() or
//	       component.code.where(coding.intersect(%resource.code.coding).exists()).empty()
//
// obs-7 forbids the Observation's own value when a component repeats its
// code: the value belongs to that component. FHIRPath's intersect compares
// whole Codings (system, version, code, display, userSelected, their ids
// and extensions), so only an identical Coding counts as a repeat here.
func (w *walker) observation(obj map[string]any, def *definition) {
	valueKey := ""
	for _, n := range def.choices["value"] {
		if _, ok := obj[n]; ok {
			valueKey = n
			break
		}
	}
	if valueKey == "" {
		return
	}
	if _, ok := obj["dataAbsentReason"]; ok {
		w.add("invariant", ".dataAbsentReason", "dataAbsentReason is only for an Observation without a value, and this one has %s (obs-6)", valueKey)
	}
	own := codings(obj["code"])
	if len(own) == 0 {
		return
	}
	comps, _ := obj["component"].([]any)
	for i, c := range comps {
		cm, _ := c.(map[string]any)
		for _, cc := range codings(cm["code"]) {
			for _, oc := range own {
				if fhir.JSONEqual(cc, oc) {
					w.add("invariant", "."+valueKey, "component[%d].code repeats the Observation's code %s, so the Observation has no value of its own: the value belongs in that component (obs-7)", i, codingText(oc))
					return
				}
			}
		}
	}
}

// codings returns the Codings of a CodeableConcept.
func codings(cc any) []any {
	m, _ := cc.(map[string]any)
	a, _ := m["coding"].([]any)
	return a
}

func codingText(c any) string {
	m, _ := c.(map[string]any)
	system, _ := m["system"].(string)
	code, _ := m["code"].(string)
	return strconv.Quote(system + "|" + code)
}

// referenceRange checks obs-3 on an Observation.referenceRange (and a
// component's, which R4 defines as the same element):
// low.exists() or high.exists() or text.exists().
func (w *walker) referenceRange(obj map[string]any) {
	if !present(obj, "low") && !present(obj, "high") && !present(obj, "text") {
		w.add("invariant", "", "a reference range needs a low, a high or a text (obs-3)")
	}
}

// patientContact checks pat-1 on a Patient.contact: name.exists() or
// telecom.exists() or address.exists() or organization.exists().
func (w *walker) patientContact(obj map[string]any) {
	for _, k := range [...]string{"name", "telecom", "address", "organization"} {
		if present(obj, k) {
			return
		}
	}
	w.add("invariant", "", "a contact needs a name, telecom, address or organization (pat-1)")
}

// organization checks org-1, org-2 and org-3 on an Organization:
//
//	org-1: (identifier.count() + name.count()) > 0
//	org-2: address.where(use = 'home').empty()
//	org-3: telecom.where(use = 'home').empty()
func (w *walker) organization(obj map[string]any) {
	if !present(obj, "identifier") && !present(obj, "name") {
		w.add("invariant", "", "an Organization needs a name or an identifier (org-1)")
	}
	for _, r := range [...]struct{ key, rule string }{{"address", "org-2"}, {"telecom", "org-3"}} {
		items, _ := obj[r.key].([]any)
		for i, it := range items {
			m, _ := it.(map[string]any)
			if m["use"] == "home" {
				w.add("invariant", "."+r.key+"["+strconv.Itoa(i)+"].use", "an Organization's %s is never of use 'home' (%s)", r.key, r.rule)
			}
		}
	}
}

// appointment checks app-2, app-3 and app-4 on an Appointment:
//
//	app-2: start.exists() = end.exists()
//	app-3: (start.exists() and end.exists()) or
//	       (status in ('proposed' | 'cancelled' | 'waitlist'))
//	app-4: Appointment.cancelationReason.exists() implies
//	       (Appointment.status='no-show' or Appointment.status='cancelled')
//
// Each is reported at the element that is missing or out of place. R4's
// app-4 names a status 'no-show' that R4 does not have (its code is
// "noshow", which R4B's app-4 uses): "noshow" is accepted too, as the rule
// means, though a literal reading would refuse it.
func (w *walker) appointment(obj map[string]any) {
	_, startValue := obj["start"]
	_, endValue := obj["end"]
	start, end := present(obj, "start"), present(obj, "end")
	switch {
	case startValue && !end:
		w.add("invariant", ".end", "the Appointment has a start but no end: it has both or neither (app-2)")
	case endValue && !start:
		w.add("invariant", ".start", "the Appointment has an end but no start: it has both or neither (app-2)")
	}
	status, ok := obj["status"].(string)
	if !ok {
		return
	}
	if !start || !end {
		switch status {
		case "proposed", "cancelled", "waitlist":
		default:
			missing := ".start"
			if start {
				missing = ".end"
			}
			w.add("invariant", missing, "an Appointment with status %q needs a start and an end; only a proposed, cancelled or waitlist one may leave them out (app-3)", status)
		}
	}
	if _, ok := obj["cancelationReason"]; ok && status != "cancelled" && status != "noshow" && status != "no-show" {
		w.add("invariant", ".cancelationReason", "cancelationReason is only for a cancelled or noshow Appointment, not one with status %q (app-4)", status)
	}
}
