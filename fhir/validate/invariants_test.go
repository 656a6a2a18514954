package validate_test

import (
	"fmt"
	"strings"
	"testing"

	"healthhub/fhir/validate"
)

// The R4 invariants of error severity on datatypes and resources
// (invariants.go): for each, bodies that break it, refused with an
// "invariant" issue at the element whose diagnostics name the rule, and
// bodies that keep it, accepted. Each datatype rule is also broken inside a
// contained resource, a Bundle entry or an extension, where the walk meets
// the datatype just the same.

type invariantCase struct{ name, typ, body, wantExpr string }

type keepCase struct{ name, typ, body string }

// mustBreak: each body is refused with an issue of code "invariant" at
// wantExpr whose diagnostics name rule, as "(qty-3)", and with no issue of
// another code: the body is valid but for its invariants.
func mustBreak(t *testing.T, rule string, cases []invariantCase) {
	t.Helper()
	validate.CrossCheck(t)
	v := validate.New()
	for _, c := range cases {
		t.Run("breaks/"+c.name, func(t *testing.T) {
			issues := check(t, v, c.typ, c.body)
			found := false
			for _, is := range issues {
				if is.Code != "invariant" {
					t.Errorf("%s: an issue other than the invariants%s", c.body, show(issues))
				}
				found = found || is.Expression[0] == c.wantExpr && is.Code == "invariant" && strings.Contains(is.Diagnostics, "("+rule+")")
			}
			if !found {
				t.Errorf("%s: got issues%s\nwant an invariant issue naming %s at %s", c.body, show(issues), rule, c.wantExpr)
			}
		})
	}
}

// mustKeep: each body is accepted.
func mustKeep(t *testing.T, cases []keepCase) {
	t.Helper()
	validate.CrossCheck(t)
	v := validate.New()
	for _, c := range cases {
		t.Run("keeps/"+c.name, func(t *testing.T) {
			if issues := check(t, v, c.typ, c.body); issues != nil {
				t.Errorf("%s: refused%s", c.body, show(issues))
			}
		})
	}
}

const (
	// obsHead opens an Observation; a body goes on with its other members.
	obsHead = `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},`
	ucumMin = `"system":"http://unitsofmeasure.org","code":"/min"`
)

// inBundle wraps a resource as the one entry of a collection Bundle.
func inBundle(resource string) string {
	return `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0b9a1f0e-2c1d-4c1e-9a61-7d1f9f3c2b10","resource":` + resource + `}]}`
}

// containedObs puts an Observation ending in member inside another one,
// which refers to it (hasMember), so dom-3 holds.
func containedObs(member string) string {
	return obsHead + `"contained":[{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"x"},` + member + `}],"hasMember":[{"reference":"#o2"}]}`
}

// TestQuantityUnitSystem: qty-3, code.empty() or system.exists(), on
// Quantity and its profiles (Age, Count, Distance, Duration, and
// SimpleQuantity, which the JSON schema spells Quantity).
func TestQuantityUnitSystem(t *testing.T) {
	mustBreak(t, "qty-3", []invariantCase{
		{"Quantity", "Observation", obsHead + `"valueQuantity":{"value":72,"unit":"beats/min","code":"/min"}}`, "Observation.valueQuantity"},
		{"SimpleQuantity", "Observation", obsHead + `"referenceRange":[{"low":{"value":60,"code":"/min"}}]}`, "Observation.referenceRange[0].low"},
		{"Age", "Condition", `{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"onsetAge":{"value":52,"code":"a"}}`, "Condition.onsetAge"},
		{"Duration in an extension", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueDuration":{"value":3,"code":"d"}}]}`, "Patient.extension[0].valueDuration"},
		{"Count in an extension", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueCount":{"value":3,"code":"1"}}]}`, "Patient.extension[0].valueCount"},
		{"Distance in an extension", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueDistance":{"value":3,"code":"km"}}]}`, "Patient.extension[0].valueDistance"},
		{"in a Range", "Observation", obsHead + `"valueRange":{"low":{"value":1,"code":"mg"}}}`, "Observation.valueRange.low"},
		{"in a component", "Observation", obsHead + `"component":[{"code":{"text":"c"},"valueQuantity":{"value":1,"code":"mg"}}]}`, "Observation.component[0].valueQuantity"},
		{"contained", "Observation", containedObs(`"valueQuantity":{"value":1,"code":"mg"}`), "Observation.contained[0].valueQuantity"},
		{"Bundle entry", "Bundle", inBundle(obsHead + `"valueQuantity":{"value":1,"code":"mg"}}`), "Bundle.entry[0].resource.valueQuantity"},
	})
	mustKeep(t, []keepCase{
		{"code and system", "Observation", obsHead + `"valueQuantity":{"value":72,"unit":"beats/min",` + ucumMin + `}}`},
		{"unit text only", "Observation", obsHead + `"valueQuantity":{"value":72,"unit":"beats/min"}}`},
		{"value only", "Observation", obsHead + `"valueQuantity":{"value":72}}`},
		{"system given by its extensions", "Observation", obsHead + `"valueQuantity":{"value":72,"code":"/min","_system":{"extension":[` + ext + `]}}}`},
	})
}

// TestRangeLowNotAboveHigh: rng-2, low.empty() or high.empty() or
// (low <= high), compared exactly as decimals when both are in one unit (or
// neither has one).
func TestRangeLowNotAboveHigh(t *testing.T) {
	rng := func(low, high string) string {
		return obsHead + `"valueRange":{"low":` + low + `,"high":` + high + `}}`
	}
	q := func(v string) string {
		return `{"value":` + v + `,"unit":"mg","system":"http://unitsofmeasure.org","code":"mg"}`
	}
	n := func(v string) string { return `{"value":` + v + `}` }
	mustBreak(t, "rng-2", []invariantCase{
		{"no units", "Observation", rng(n("10"), n("5")), "Observation.valueRange"},
		{"same unit", "Observation", rng(q("1.50"), q("1.4999")), "Observation.valueRange"},
		{"exponent", "Observation", rng(n("1e2"), n("99.9")), "Observation.valueRange"},
		{"negative", "Observation", rng(n("-1"), n("-2")), "Observation.valueRange"},
		{"zero above a negative", "Observation", rng(n("0"), n("-0.001")), "Observation.valueRange"},
		{"beyond float64", "Observation", rng(n("0.30000000000000001"), n("0.3")), "Observation.valueRange"},
		{"long integers", "Observation", rng(n("12345678901234567890.2"), n("12345678901234567890.1")), "Observation.valueRange"},
		{"units without codes", "Observation", rng(`{"value":3,"unit":"tablets"}`, `{"value":2,"unit":"tablets"}`), "Observation.valueRange"},
		{"referenceRange.age", "Observation", obsHead + `"referenceRange":[{"text":"adults","age":{"low":{"value":65,"system":"http://unitsofmeasure.org","code":"a"},"high":{"value":18,"system":"http://unitsofmeasure.org","code":"a"}}}]}`, "Observation.referenceRange[0].age"},
		{"Condition.onsetRange", "Condition", `{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"onsetRange":{"low":{"value":5},"high":{"value":4}}}`, "Condition.onsetRange"},
		{"in an extension", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueRange":{"low":{"value":5},"high":{"value":4}}}]}`, "Patient.extension[0].valueRange"},
		{"Bundle entry", "Bundle", inBundle(rng(n("2"), n("1"))), "Bundle.entry[0].resource.valueRange"},
	})
	mustKeep(t, []keepCase{
		{"low below high", "Observation", rng(q("2"), q("10"))},
		{"equal, written differently", "Observation", rng(n("1.0"), n("1.00"))},
		{"equal, exponent", "Observation", rng(n("100"), n("1E2"))},
		{"zero and minus zero", "Observation", rng(n("0"), n("-0"))},
		{"negatives", "Observation", rng(n("-2"), n("-1.5"))},
		{"small values", "Observation", rng(n("0.000001"), n("1e-5"))},
		{"long integers", "Observation", rng(n("12345678901234567890.1"), n("12345678901234567890.2"))},
		{"low only", "Observation", obsHead + `"valueRange":{"low":{"value":5}}}`},
		{"high only", "Observation", obsHead + `"valueRange":{"high":{"value":5}}}`},
		// Not comparable without converting units: accepted.
		{"different units", "Observation", rng(`{"value":1,"system":"http://unitsofmeasure.org","code":"g"}`, `{"value":500,"system":"http://unitsofmeasure.org","code":"mg"}`)},
		{"a unit and none", "Observation", rng(q("10"), n("5"))},
		{"different unit texts", "Observation", rng(`{"value":3,"unit":"g"}`, `{"value":2,"unit":"kg"}`)},
		{"same code, different systems", "Observation", rng(`{"value":3,"system":"http://unitsofmeasure.org","code":"mg"}`, `{"value":2,"system":"http://example.org/units","code":"mg"}`)},
		{"a value given by its extensions", "Observation", rng(`{"_value":{"extension":[`+ext+`]}}`, n("1"))},
	})
}

// TestContactPointSystem: cpt-2, value.empty() or system.exists().
func TestContactPointSystem(t *testing.T) {
	mustBreak(t, "cpt-2", []invariantCase{
		{"Patient.telecom", "Patient", `{"resourceType":"Patient","telecom":[{"system":"phone","value":"1"},{"value":"555-0100","use":"home"}]}`, "Patient.telecom[1]"},
		{"Patient.contact.telecom", "Patient", `{"resourceType":"Patient","contact":[{"telecom":[{"value":"555-0100"}]}]}`, "Patient.contact[0].telecom[0]"},
		{"in an extension", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueContactPoint":{"value":"a@b.org"}}]}`, "Patient.extension[0].valueContactPoint"},
		{"contained", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"A","telecom":[{"value":"555-0100"}]}],"managingOrganization":{"reference":"#o"}}`, "Patient.contained[0].telecom[0]"},
		{"Bundle entry", "Bundle", inBundle(`{"resourceType":"Practitioner","telecom":[{"value":"555-0100"}]}`), "Bundle.entry[0].resource.telecom[0]"},
	})
	mustKeep(t, []keepCase{
		{"system and value", "Patient", `{"resourceType":"Patient","telecom":[{"system":"email","value":"a@b.org"}]}`},
		{"system only", "Patient", `{"resourceType":"Patient","telecom":[{"system":"phone","use":"home"}]}`},
		{"system given by its extensions", "Patient", `{"resourceType":"Patient","telecom":[{"value":"555-0100","_system":{"extension":[` + ext + `]}}]}`},
	})
}

// TestObservationDataAbsentReason: obs-6, dataAbsentReason.empty() or
// value.empty().
func TestObservationDataAbsentReason(t *testing.T) {
	const dar = `"dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"unknown"}]}`
	mustBreak(t, "obs-6", []invariantCase{
		{"valueQuantity", "Observation", obsHead + `"valueQuantity":{"value":72,` + ucumMin + `},` + dar + `}`, "Observation.dataAbsentReason"},
		{"valueString", "Observation", obsHead + `"valueString":"x",` + dar + `}`, "Observation.dataAbsentReason"},
		{"valueBoolean false", "Observation", obsHead + `"valueBoolean":false,` + dar + `}`, "Observation.dataAbsentReason"},
		{"contained", "Observation", containedObs(`"valueString":"x",` + dar), "Observation.contained[0].dataAbsentReason"},
		{"Bundle entry", "Bundle", inBundle(obsHead + `"valueString":"x",` + dar + `}`), "Bundle.entry[0].resource.dataAbsentReason"},
	})
	mustKeep(t, []keepCase{
		{"dataAbsentReason only", "Observation", obsHead + dar + `}`},
		{"value only", "Observation", obsHead + `"valueString":"x"}`},
		// A component's value is not the Observation's.
		{"component values", "Observation", obsHead + dar + `,"component":[{"code":{"text":"c"},"valueString":"x"}]}`},
	})
}

// TestObservationComponentRepeatsCode: obs-7, value.empty() or
// component.code.where(coding.intersect(%resource.code.coding).exists()).empty():
// when a component repeats the Observation's code, the value belongs to
// that component, not to the Observation.
func TestObservationComponentRepeatsCode(t *testing.T) {
	const (
		bp    = `{"system":"http://loinc.org","code":"85354-9"}`
		sys   = `{"system":"http://loinc.org","code":"8480-6"}`
		local = `{"system":"http://example.org/codes","code":"bp"}`
	)
	obs := func(code, value, components string) string {
		return `{"resourceType":"Observation","status":"final","code":{"coding":[` + code + `]},` + value + `"component":[` + components + `]}`
	}
	comp := func(code string) string {
		return `{"code":{"coding":[` + code + `]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`
	}
	const val = `"valueString":"120/80",`
	mustBreak(t, "obs-7", []invariantCase{
		{"component with the same code", "Observation", obs(bp, val, comp(sys)+","+comp(bp)), "Observation.valueString"},
		{"one coding in common", "Observation", obs(local+","+bp, `"valueQuantity":{"value":1},`, comp(bp)), "Observation.valueQuantity"},
		{"contained", "Observation", obsHead + `"contained":[` + strings.Replace(obs(bp, val, comp(bp)), `"Observation",`, `"Observation","id":"o2",`, 1) + `],"hasMember":[{"reference":"#o2"}]}`, "Observation.contained[0].valueString"},
		{"Bundle entry", "Bundle", inBundle(obs(bp, val, comp(bp))), "Bundle.entry[0].resource.valueString"},
	})
	mustKeep(t, []keepCase{
		{"no value of its own", "Observation", obs(bp, "", comp(bp))},
		{"other codes", "Observation", obs(bp, val, comp(sys))},
		// intersect compares whole Codings: a different display is a different Coding.
		{"same code, another display", "Observation", obs(bp, val, comp(`{"system":"http://loinc.org","code":"85354-9","display":"BP panel"}`))},
		{"same code, another system", "Observation", obs(bp, val, comp(`{"system":"http://example.org/codes","code":"85354-9"}`))},
	})
}

// TestReferenceRangeContent: obs-3, low.exists() or high.exists() or
// text.exists(), on Observation.referenceRange and a component's.
func TestReferenceRangeContent(t *testing.T) {
	const normal = `"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/referencerange-meaning","code":"normal"}]}`
	mustBreak(t, "obs-3", []invariantCase{
		{"type only", "Observation", obsHead + `"referenceRange":[{` + normal + `}]}`, "Observation.referenceRange[0]"},
		{"second range", "Observation", obsHead + `"referenceRange":[{"text":"ok"},{"appliesTo":[{"text":"women"}]}]}`, "Observation.referenceRange[1]"},
		{"component's", "Observation", obsHead + `"component":[{"code":{"text":"c"},"referenceRange":[{` + normal + `}]}]}`, "Observation.component[0].referenceRange[0]"},
		{"Bundle entry", "Bundle", inBundle(obsHead + `"referenceRange":[{` + normal + `}]}`), "Bundle.entry[0].resource.referenceRange[0]"},
	})
	mustKeep(t, []keepCase{
		{"low", "Observation", obsHead + `"referenceRange":[{"low":{"value":60,` + ucumMin + `}}]}`},
		{"high", "Observation", obsHead + `"referenceRange":[{"high":{"value":100,` + ucumMin + `},` + normal + `}]}`},
		{"text", "Observation", obsHead + `"referenceRange":[{"text":"60-100"}]}`},
		{"text given by its extensions", "Observation", obsHead + `"referenceRange":[{"_text":{"extension":[` + ext + `]}}]}`},
	})
}

// TestPatientContactDetails: pat-1, name.exists() or telecom.exists() or
// address.exists() or organization.exists(), on each Patient.contact.
func TestPatientContactDetails(t *testing.T) {
	const rel = `"relationship":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0131","code":"N"}]}]`
	mustBreak(t, "pat-1", []invariantCase{
		{"relationship only", "Patient", `{"resourceType":"Patient","contact":[{` + rel + `}]}`, "Patient.contact[0]"},
		{"gender and period", "Patient", `{"resourceType":"Patient","contact":[{"name":{"family":"A"}},{"gender":"female","period":{"start":"2020-01-01"}}]}`, "Patient.contact[1]"},
		{"Bundle entry", "Bundle", inBundle(`{"resourceType":"Patient","contact":[{` + rel + `}]}`), "Bundle.entry[0].resource.contact[0]"},
	})
	mustKeep(t, []keepCase{
		{"name", "Patient", `{"resourceType":"Patient","contact":[{` + rel + `,"name":{"family":"A"}}]}`},
		{"telecom", "Patient", `{"resourceType":"Patient","contact":[{"telecom":[{"system":"phone","value":"1"}]}]}`},
		{"address", "Patient", `{"resourceType":"Patient","contact":[{"address":{"city":"X"}}]}`},
		{"organization", "Patient", `{"resourceType":"Patient","contact":[{"organization":{"reference":"Organization/o1"}}]}`},
	})
}

// TestOrganizationRules: org-1, (identifier.count() + name.count()) > 0;
// org-2 and org-3, an Organization's address and telecom are never of use
// 'home' (a contact person's may be).
func TestOrganizationRules(t *testing.T) {
	mustBreak(t, "org-1", []invariantCase{
		{"neither", "Organization", `{"resourceType":"Organization","active":true}`, "Organization"},
		{"alias is not a name", "Organization", `{"resourceType":"Organization","alias":["A"]}`, "Organization"},
		{"contained", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","active":true}],"managingOrganization":{"reference":"#o"}}`, "Patient.contained[0]"},
		{"Bundle entry", "Bundle", inBundle(`{"resourceType":"Organization","active":true}`), "Bundle.entry[0].resource"},
	})
	mustBreak(t, "org-2", []invariantCase{
		{"home address", "Organization", `{"resourceType":"Organization","name":"A","address":[{"use":"work","city":"X"},{"use":"home","city":"Y"}]}`, "Organization.address[1].use"},
		{"contained", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"A","address":[{"use":"home"}]}],"managingOrganization":{"reference":"#o"}}`, "Patient.contained[0].address[0].use"},
	})
	mustBreak(t, "org-3", []invariantCase{
		{"home telecom", "Organization", `{"resourceType":"Organization","name":"A","telecom":[{"system":"phone","value":"1","use":"home"}]}`, "Organization.telecom[0].use"},
		{"Bundle entry", "Bundle", inBundle(`{"resourceType":"Organization","name":"A","telecom":[{"system":"phone","value":"1","use":"work"},{"system":"phone","value":"2","use":"home"}]}`), "Bundle.entry[0].resource.telecom[1].use"},
	})
	mustKeep(t, []keepCase{
		{"name", "Organization", `{"resourceType":"Organization","name":"A"}`},
		{"identifier", "Organization", `{"resourceType":"Organization","identifier":[{"system":"urn:x","value":"1"}]}`},
		{"work address and telecom", "Organization", `{"resourceType":"Organization","name":"A","address":[{"use":"work"}],"telecom":[{"system":"phone","value":"1","use":"work"}]}`},
		{"a contact's home address and telecom", "Organization", `{"resourceType":"Organization","name":"A","contact":[{"address":{"use":"home","city":"X"},"telecom":[{"system":"phone","value":"1","use":"home"}]}]}`},
		{"a Patient's home address", "Patient", `{"resourceType":"Patient","address":[{"use":"home"}]}`},
	})
}

// TestAppointmentRules: app-2, start.exists() = end.exists(); app-3,
// (start.exists() and end.exists()) or (status in ('proposed' |
// 'cancelled' | 'waitlist')); app-4, cancelationReason.exists() implies
// (status='no-show' or status='cancelled'), with R4's code noshow for the
// 'no-show' it names.
func TestAppointmentRules(t *testing.T) {
	app := func(status, members string) string {
		return fmt.Sprintf(`{"resourceType":"Appointment","status":%q,%s"participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"}]}`, status, members)
	}
	const (
		start  = `"start":"2024-03-08T09:00:00Z",`
		end    = `"end":"2024-03-08T09:20:00Z",`
		reason = `"cancelationReason":{"text":"patient unwell"},`
	)
	mustBreak(t, "app-2", []invariantCase{
		{"start without end", "Appointment", app("booked", start), "Appointment.end"},
		{"end without start", "Appointment", app("booked", end), "Appointment.start"},
		{"proposed, start without end", "Appointment", app("proposed", start), "Appointment.end"},
		{"Bundle entry", "Bundle", inBundle(app("proposed", end)), "Bundle.entry[0].resource.start"},
	})
	mustBreak(t, "app-3", []invariantCase{
		{"booked without times", "Appointment", app("booked", ""), "Appointment.start"},
		{"arrived without end", "Appointment", app("arrived", start), "Appointment.end"},
		{"pending without times", "Appointment", app("pending", ""), "Appointment.start"},
		{"Bundle entry", "Bundle", inBundle(app("fulfilled", "")), "Bundle.entry[0].resource.start"},
	})
	mustBreak(t, "app-4", []invariantCase{
		{"booked", "Appointment", app("booked", start+end+reason), "Appointment.cancelationReason"},
		{"proposed", "Appointment", app("proposed", reason), "Appointment.cancelationReason"},
	})
	mustKeep(t, []keepCase{
		{"booked with times", "Appointment", app("booked", start+end)},
		{"proposed without times", "Appointment", app("proposed", "")},
		{"cancelled without times, with a reason", "Appointment", app("cancelled", reason)},
		{"waitlist without times", "Appointment", app("waitlist", "")},
		// R4's app-4 says 'no-show', a code R4 does not have; its noshow is meant.
		{"noshow with a reason", "Appointment", app("noshow", start+end+reason)},
		{"start given by its extensions", "Appointment", app("proposed", `"_start":{"extension":[`+ext+`]},`)},
	})
}
