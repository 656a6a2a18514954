package search_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"healthhub/fhir"
	"healthhub/fhir/search"
)

// extracted runs Extract and groups the values by parameter.
func extracted(t testing.TB, r *search.Registry, typ, src string) map[string][]search.Value {
	t.Helper()
	entries, err := r.Extract(typ, []byte(src))
	if err != nil {
		t.Fatalf("Extract %s: %v", typ, err)
	}
	out := map[string][]search.Value{}
	for _, e := range entries {
		out[e.Param] = append(out[e.Param], e.Value)
	}
	return out
}

func dateV(start, end string) search.DateValue {
	return search.DateValue{DateRange: fhir.DateRange{Start: instant(start), End: instant(end)}}
}

func instant(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func stringV(s string) search.StringValue { return search.NewStringValue(s) }

func tokenV(system, code string) search.TokenValue {
	return search.TokenValue{System: system, Code: code}
}

func quantityV(v, system, code, unit string) search.QuantityValue {
	return search.QuantityValue{Value: fhir.MustDecimal(v), System: system, Code: code, Unit: unit}
}

func refV(typ, id string) search.ReferenceValue {
	return search.ReferenceValue{ResourceType: typ, ID: id}
}

func compositeV(vs ...search.Value) search.CompositeValue {
	return search.CompositeValue{Components: vs}
}

type extractCase struct {
	name, typ, src, param string
	want                  []search.Value // nil: the parameter has no entry
}

func runExtractCases(t *testing.T, tests []extractCase) {
	t.Helper()
	r := mustLoad(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := extracted(t, r, tt.typ, tt.src)[tt.param]
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s?%s over %s:\n got %s\nwant %s", tt.typ, tt.param, tt.src, showValues(got), showValues(tt.want))
			}
		})
	}
}

func showValues(vs []search.Value) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%+v", v))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func TestExtractToken(t *testing.T) {
	const mr = "http://terminology.hl7.org/CodeSystem/v2-0203"
	runExtractCases(t, []extractCase{
		// A code element's values carry the system its binding names.
		{"code", "Patient", `{"resourceType":"Patient","gender":"female"}`, "gender", []search.Value{tokenV("http://hl7.org/fhir/administrative-gender", "female")}},
		{"code of a Practitioner", "Practitioner", `{"resourceType":"Practitioner","gender":"other"}`, "gender", []search.Value{tokenV("http://hl7.org/fhir/administrative-gender", "other")}},
		{"status", "Observation", `{"resourceType":"Observation","status":"final"}`, "status", []search.Value{tokenV("http://hl7.org/fhir/observation-status", "final")}},
		{"encounter status", "Encounter", `{"resourceType":"Encounter","status":"finished"}`, "status", []search.Value{tokenV("http://hl7.org/fhir/encounter-status", "finished")}},
		{"appointment status", "Appointment", `{"resourceType":"Appointment","status":"booked"}`, "status", []search.Value{tokenV("http://hl7.org/fhir/appointmentstatus", "booked")}},
		{"address use", "Organization", `{"resourceType":"Organization","address":[{"use":"work"},{"city":"X"}]}`, "address-use", []search.Value{tokenV("http://hl7.org/fhir/address-use", "work")}},
		{"boolean", "Patient", `{"resourceType":"Patient","active":false}`, "active", []search.Value{tokenV("", "false")}},
		{"id", "Patient", `{"resourceType":"Patient","id":"p-1"}`, "_id", []search.Value{tokenV("", "p-1")}},
		{"identifier", "Patient", `{"resourceType":"Patient","identifier":[
			{"system":"urn:a","value":"1"},
			{"type":{"coding":[{"system":"` + mr + `","code":"MR"},{"system":"urn:local","code":"H"}],"text":"Medical record"},"system":"urn:b","value":"2"},
			{"value":"3"}]}`, "identifier", []search.Value{
			tokenV("urn:a", "1"),
			search.TokenValue{System: "urn:b", Code: "2", Display: "Medical record", TypeSystem: mr, TypeCode: "MR"},
			search.TokenValue{System: "urn:b", Code: "2", Display: "Medical record", TypeSystem: "urn:local", TypeCode: "H"},
			tokenV("", "3"),
		}},
		{"telecom", "Patient", `{"resourceType":"Patient","telecom":[{"system":"phone","value":"555"},{"system":"email","value":"a@b"}]}`,
			"telecom", []search.Value{tokenV("phone", "555"), tokenV("email", "a@b")}},
		{"email", "Patient", `{"resourceType":"Patient","telecom":[{"system":"phone","value":"555"},{"system":"email","value":"a@b"}]}`,
			"email", []search.Value{tokenV("email", "a@b")}},
		{"phone", "Practitioner", `{"resourceType":"Practitioner","telecom":[{"system":"phone","value":"555"},{"system":"email","value":"a@b"}]}`,
			"phone", []search.Value{tokenV("phone", "555")}},
		{"CodeableConcept", "Patient", `{"resourceType":"Patient","communication":[{"language":{"coding":[{"system":"urn:ietf:bcp:47","code":"de","display":"German"}],"text":"Deutsch"}}]}`,
			"language", []search.Value{search.TokenValue{System: "urn:ietf:bcp:47", Code: "de", Display: "German"}, search.TokenValue{Display: "Deutsch"}}},
		{"text equal to a display", "Encounter", `{"resourceType":"Encounter","type":[{"coding":[{"system":"s","code":"c","display":"D"}],"text":"D"}]}`,
			"type", []search.Value{search.TokenValue{System: "s", Code: "c", Display: "D"}}},
		{"Coding", "Encounter", `{"resourceType":"Encounter","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}}`,
			"class", []search.Value{tokenV("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB")}},
		{"meta tag", "Observation", `{"resourceType":"Observation","meta":{"tag":[{"system":"urn:t","code":"x"}],"security":[{"code":"R"}]}}`,
			"_tag", []search.Value{tokenV("urn:t", "x")}},
		{"meta security", "Observation", `{"resourceType":"Observation","meta":{"security":[{"system":"urn:s","code":"R"}]}}`,
			"_security", []search.Value{tokenV("urn:s", "R")}},
		{"deceased absent", "Patient", `{"resourceType":"Patient"}`, "deceased", []search.Value{tokenV("", "false")}},
		{"deceased false", "Patient", `{"resourceType":"Patient","deceasedBoolean":false}`, "deceased", []search.Value{tokenV("", "false")}},
		{"deceased true", "Patient", `{"resourceType":"Patient","deceasedBoolean":true}`, "deceased", []search.Value{tokenV("", "true")}},
		{"deceased date", "Patient", `{"resourceType":"Patient","deceasedDateTime":"2001-01-01"}`, "deceased", []search.Value{tokenV("", "true")}},
		{"value-concept", "Observation", `{"resourceType":"Observation","valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"260385009"}]}}`,
			"value-concept", []search.Value{tokenV("http://snomed.info/sct", "260385009")}},
		{"value-concept of a quantity", "Observation", `{"resourceType":"Observation","valueQuantity":{"value":1}}`, "value-concept", nil},
		{"combo-code", "Observation", `{"resourceType":"Observation","code":{"coding":[{"system":"l","code":"1"}]},"component":[{"code":{"coding":[{"system":"l","code":"2"}]}},{"code":{"coding":[{"system":"l","code":"1"}]}}]}`,
			"combo-code", []search.Value{tokenV("l", "1"), tokenV("l", "2")}},
		{"participant status", "Appointment", `{"resourceType":"Appointment","participant":[{"status":"accepted"},{"status":"accepted"},{"status":"declined"}]}`,
			"part-status", []search.Value{tokenV("http://hl7.org/fhir/participationstatus", "accepted"), tokenV("http://hl7.org/fhir/participationstatus", "declined")}},
		{"empty identifier", "Patient", `{"resourceType":"Patient","identifier":[{"use":"usual"}]}`, "identifier", nil},
	})
}

func TestExtractString(t *testing.T) {
	runExtractCases(t, []extractCase{
		{"family with accents", "Patient", `{"resourceType":"Patient","name":[{"family":"Müller-Łódź"}]}`,
			"family", []search.Value{search.StringValue{Normalized: "muller-lodz", Exact: "Müller-Łódź"}}},
		{"given over names", "Practitioner", `{"resourceType":"Practitioner","name":[{"given":["Anna","Maria"]},{"given":["ANNA"]}]}`,
			"given", []search.Value{stringV("Anna"), stringV("Maria"), stringV("ANNA")}},
		{"name parts", "Patient", `{"resourceType":"Patient","name":[{"text":"Dr. Anna Smith","family":"Smith","given":["Anna"],"prefix":["Dr."],"suffix":["PhD"]}]}`,
			"name", []search.Value{stringV("Smith"), stringV("Anna"), stringV("Dr."), stringV("PhD"), stringV("Dr. Anna Smith")}},
		{"address parts", "Organization", `{"resourceType":"Organization","address":[{"line":["1 Main St","Apt 2"],"city":"Springfield","district":"Greene","state":"MO","postalCode":"65801","country":"US","text":"x"}]}`,
			"address", []search.Value{stringV("1 Main St"), stringV("Apt 2"), stringV("Springfield"), stringV("Greene"), stringV("MO"), stringV("65801"), stringV("US"), stringV("x")}},
		{"address-city", "Patient", `{"resourceType":"Patient","address":[{"city":"Zürich"},{"city":"Bern"}]}`,
			"address-city", []search.Value{stringV("Zürich"), stringV("Bern")}},
		{"name or alias", "Organization", `{"resourceType":"Organization","name":"Acme","alias":["ACME","Acme"]}`,
			"name", []search.Value{stringV("Acme"), stringV("ACME")}},
		{"value-string of a string", "Observation", `{"resourceType":"Observation","valueString":"Positive"}`,
			"value-string", []search.Value{stringV("Positive")}},
		{"value-string of a concept's text", "Observation", `{"resourceType":"Observation","valueCodeableConcept":{"text":"Négatif"}}`,
			"value-string", []search.Value{stringV("Négatif")}},
	})
	if got := stringV("Müller").Normalized; got != "muller" {
		t.Errorf("Müller: normalized %q", got)
	}
}

func TestExtractDate(t *testing.T) {
	runExtractCases(t, []extractCase{
		{"date", "Patient", `{"resourceType":"Patient","birthDate":"1980-05-17"}`,
			"birthdate", []search.Value{dateV("1980-05-17T00:00:00Z", "1980-05-18T00:00:00Z")}},
		{"year", "Patient", `{"resourceType":"Patient","birthDate":"1980"}`,
			"birthdate", []search.Value{dateV("1980-01-01T00:00:00Z", "1981-01-01T00:00:00Z")}},
		{"invalid date", "Patient", `{"resourceType":"Patient","birthDate":"1980-02-30"}`, "birthdate", nil},
		{"dateTime with zone", "Patient", `{"resourceType":"Patient","deceasedDateTime":"1989-05-09T20:35:22-04:00"}`,
			"death-date", []search.Value{dateV("1989-05-10T00:35:22Z", "1989-05-10T00:35:23Z")}},
		{"death-date of a boolean", "Patient", `{"resourceType":"Patient","deceasedBoolean":true}`, "death-date", nil},
		{"instant", "Appointment", `{"resourceType":"Appointment","start":"2024-03-01T09:30:00.250+01:00"}`,
			"date", []search.Value{dateV("2024-03-01T08:30:00.250Z", "2024-03-01T08:30:00.251Z")}},
		{"lastUpdated", "Organization", `{"resourceType":"Organization","meta":{"lastUpdated":"2024-01-02T03:04:05.123Z"}}`,
			"_lastUpdated", []search.Value{dateV("2024-01-02T03:04:05.123Z", "2024-01-02T03:04:05.124Z")}},
		{"period", "Encounter", `{"resourceType":"Encounter","period":{"start":"2024-01-01","end":"2024-01-03T10:00:00Z"}}`,
			"date", []search.Value{dateV("2024-01-01T00:00:00Z", "2024-01-03T10:00:01Z")}}, // to the end of the second
		{"period open end", "Encounter", `{"resourceType":"Encounter","period":{"start":"2024-01-01T10:00:00Z"}}`,
			"date", []search.Value{search.DateValue{DateRange: fhir.DateRange{Start: instant("2024-01-01T10:00:00Z"), End: search.DateMax}}}},
		{"period open start", "Encounter", `{"resourceType":"Encounter","period":{"end":"2024"}}`,
			"date", []search.Value{search.DateValue{DateRange: fhir.DateRange{Start: search.DateMin, End: instant("2025-01-01T00:00:00Z")}}}},
		// A Timing's outer limits (R4 search.html#date): one range.
		{"effective timing", "Observation", `{"resourceType":"Observation","effectiveTiming":{"event":["2024-02-01","2024-01-01"]}}`,
			"date", []search.Value{dateV("2024-01-01T00:00:00Z", "2024-02-02T00:00:00Z")}},
		{"effective timing with bounds", "Observation", `{"resourceType":"Observation","effectiveTiming":{"event":["2024-01-15"],"repeat":{"boundsPeriod":{"start":"2024-01-01","end":"2024-03-01"}}}}`,
			"date", []search.Value{dateV("2024-01-01T00:00:00Z", "2024-03-02T00:00:00Z")}},
		{"effective instant", "Observation", `{"resourceType":"Observation","effectiveInstant":"2024-01-01T00:00:00Z"}`,
			"date", []search.Value{dateV("2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z")}},
		{"value-date", "Observation", `{"resourceType":"Observation","valuePeriod":{"start":"2020","end":"2021"}}`,
			"value-date", []search.Value{dateV("2020-01-01T00:00:00Z", "2022-01-01T00:00:00Z")}},
		{"location-period", "Encounter", `{"resourceType":"Encounter","location":[{"period":{"start":"2024-05"}},{"period":{}}]}`,
			"location-period", []search.Value{search.DateValue{DateRange: fhir.DateRange{Start: instant("2024-05-01T00:00:00Z"), End: search.DateMax}}}},
	})
}

func TestExtractReference(t *testing.T) {
	runExtractCases(t, []extractCase{
		{"relative", "Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/p1","display":"x"}}`,
			"subject", []search.Value{refV("Patient", "p1")}},
		{"patient of a patient subject", "Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`,
			"patient", []search.Value{refV("Patient", "p1")}},
		{"patient of a group subject", "Observation", `{"resourceType":"Observation","subject":{"reference":"Group/g1"}}`, "patient", nil},
		{"versioned", "Encounter", `{"resourceType":"Encounter","subject":{"reference":"Patient/p1/_history/7"}}`,
			"patient", []search.Value{search.ReferenceValue{ResourceType: "Patient", ID: "p1", Version: "7"}}},
		{"absolute", "Encounter", `{"resourceType":"Encounter","subject":{"reference":"https://other.org/fhir/Patient/p9/_history/2"}}`,
			"patient", []search.Value{search.ReferenceValue{ResourceType: "Patient", ID: "p9", Version: "2", URL: "https://other.org/fhir/Patient/p9"}}},
		{"urn:uuid with type", "Encounter", `{"resourceType":"Encounter","subject":{"reference":"urn:uuid:5c1e","type":"Patient"}}`,
			"patient", []search.Value{search.ReferenceValue{ResourceType: "Patient", URL: "urn:uuid:5c1e"}}},
		{"urn:uuid without type", "Encounter", `{"resourceType":"Encounter","subject":{"reference":"urn:uuid:5c1e"}}`,
			"subject", []search.Value{search.ReferenceValue{URL: "urn:uuid:5c1e"}}},
		{"contained", "Encounter", `{"resourceType":"Encounter","contained":[{"resourceType":"Patient","id":"c"}],"subject":{"reference":"#c"}}`,
			"subject", nil},
		{"identifier only", "Encounter", `{"resourceType":"Encounter","subject":{"type":"Patient","identifier":{"system":"urn:mrn","value":"42"}}}`,
			"patient", []search.Value{search.ReferenceValue{Identifier: tokenV("urn:mrn", "42")}}},
		{"conditional reference", "Encounter", `{"resourceType":"Encounter","participant":[{"individual":{"reference":"Practitioner?identifier=x|1"}}]}`,
			"participant", nil},
		{"appointment actors", "Appointment", `{"resourceType":"Appointment","participant":[{"actor":{"reference":"Patient/p"}},{"actor":{"reference":"Location/l"}},{"actor":{"reference":"Practitioner/d"}}]}`,
			"actor", []search.Value{refV("Patient", "p"), refV("Location", "l"), refV("Practitioner", "d")}},
		{"appointment location", "Appointment", `{"resourceType":"Appointment","participant":[{"actor":{"reference":"Patient/p"}},{"actor":{"reference":"Location/l"}}]}`,
			"location", []search.Value{refV("Location", "l")}},
		{"general practitioner", "Patient", `{"resourceType":"Patient","generalPractitioner":[{"reference":"Organization/o"},{"reference":"Practitioner/d"}]}`,
			"general-practitioner", []search.Value{refV("Organization", "o"), refV("Practitioner", "d")}},
		{"practitioner participant", "Encounter", `{"resourceType":"Encounter","participant":[{"individual":{"reference":"Practitioner/d"}},{"individual":{"reference":"RelatedPerson/r"}}]}`,
			"practitioner", []search.Value{refV("Practitioner", "d")}},
	})
}

func TestExtractQuantity(t *testing.T) {
	const ucum = "http://unitsofmeasure.org"
	runExtractCases(t, []extractCase{
		{"value quantity", "Observation", `{"resourceType":"Observation","valueQuantity":{"value":120.50,"unit":"mmHg","system":"` + ucum + `","code":"mm[Hg]"}}`,
			"value-quantity", []search.Value{quantityV("120.50", ucum, "mm[Hg]", "mmHg")}},
		{"comparator", "Observation", `{"resourceType":"Observation","valueQuantity":{"value":5,"comparator":"<","code":"mg"}}`,
			"value-quantity", []search.Value{search.QuantityValue{Value: fhir.MustDecimal("5"), Comparator: "<", Code: "mg"}}},
		{"sampled data origin", "Observation", `{"resourceType":"Observation","valueSampledData":{"origin":{"value":-2.5e1,"unit":"mV"},"period":10,"dimensions":1}}`,
			"value-quantity", []search.Value{quantityV("-2.5e1", "", "", "mV")}},
		{"value of another type", "Observation", `{"resourceType":"Observation","valueString":"5"}`, "value-quantity", nil},
		{"combo", "Observation", `{"resourceType":"Observation","valueQuantity":{"value":1},"component":[{"valueQuantity":{"value":2}},{"valueString":"x"},{"valueQuantity":{"value":3}}]}`,
			"combo-value-quantity", []search.Value{quantityV("1", "", "", ""), quantityV("2", "", "", ""), quantityV("3", "", "", "")}},
		{"encounter length", "Encounter", `{"resourceType":"Encounter","length":{"value":90,"unit":"min","system":"` + ucum + `","code":"min"}}`,
			"length", []search.Value{quantityV("90", ucum, "min", "min")}},
	})
}

func TestExtractURI(t *testing.T) {
	runExtractCases(t, []extractCase{
		{"profile", "Patient", `{"resourceType":"Patient","meta":{"profile":["http://a/p","http://b/p|1.0"]}}`,
			"_profile", []search.Value{search.URIValue{URI: "http://a/p"}, search.URIValue{URI: "http://b/p|1.0"}}},
		{"source", "Encounter", `{"resourceType":"Encounter","meta":{"source":"http://lab.example#1"}}`,
			"_source", []search.Value{search.URIValue{URI: "http://lab.example#1"}}},
	})
}

func TestExtractComposite(t *testing.T) {
	const bp = `{"resourceType":"Observation",
		"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"},{"system":"urn:x","code":"BP"}]},
		"valueQuantity":{"value":1,"code":"u"},
		"component":[
			{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"code":"mm[Hg]"}},
			{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"code":"mm[Hg]"}},
			{"code":{"coding":[{"system":"http://loinc.org","code":"9999-9"}]},"valueCodeableConcept":{"coding":[{"system":"urn:v","code":"pos"}]}},
			{"code":{"coding":[{"system":"http://loinc.org","code":"0000-0"}]}}
		]}`
	loinc := func(code string) search.TokenValue { return tokenV("http://loinc.org", code) }
	mm := func(v string) search.QuantityValue { return quantityV(v, "", "mm[Hg]", "") }
	runExtractCases(t, []extractCase{
		{"code-value-quantity: one per coding", "Observation", bp, "code-value-quantity", []search.Value{
			compositeV(loinc("85354-9"), quantityV("1", "", "u", "")), compositeV(tokenV("urn:x", "BP"), quantityV("1", "", "u", "")),
		}},
		{"component-code-value-quantity: per component, no cross product", "Observation", bp, "component-code-value-quantity", []search.Value{
			compositeV(loinc("8480-6"), mm("120")), compositeV(loinc("8462-4"), mm("80")),
		}},
		{"component-code-value-concept", "Observation", bp, "component-code-value-concept", []search.Value{
			compositeV(loinc("9999-9"), tokenV("urn:v", "pos")),
		}},
		{"combo-code-value-quantity", "Observation", bp, "combo-code-value-quantity", []search.Value{
			compositeV(loinc("85354-9"), quantityV("1", "", "u", "")), compositeV(tokenV("urn:x", "BP"), quantityV("1", "", "u", "")),
			compositeV(loinc("8480-6"), mm("120")), compositeV(loinc("8462-4"), mm("80")),
		}},
		{"code-value-concept without a concept", "Observation", bp, "code-value-concept", nil},
		{"code-value-date", "Observation", `{"resourceType":"Observation","code":{"coding":[{"code":"d"}]},"valueDateTime":"2024-02"}`,
			"code-value-date", []search.Value{compositeV(tokenV("", "d"), dateV("2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"))}},
		{"code-value-string", "Observation", `{"resourceType":"Observation","code":{"coding":[{"code":"s"}]},"valueString":"Ähnlich"}`,
			"code-value-string", []search.Value{compositeV(tokenV("", "s"), stringV("Ähnlich"))}},
	})
}

func TestExtractErrors(t *testing.T) {
	r := mustLoad(t)
	for _, tt := range []struct{ typ, src, want string }{
		{"Patient", `{"resourceType":"Observation"}`, `resourceType "Observation" is not "Patient"`},
		{"Patient", `{"resourceType":"Patient"`, "invalid JSON"},
		{"Patient", `[]`, "must be an object"},
	} {
		_, err := r.Extract(tt.typ, []byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %s: got %v, want an error containing %q", tt.typ, tt.src, err, tt.want)
		}
	}
	entries, err := r.Extract("Basic", []byte(`{"resourceType":"Basic","id":"x"}`))
	if err != nil || len(entries) != 0 {
		t.Errorf("Basic (no parameters): got %v, %v; want no entries, no error", entries, err)
	}
}

// Every entry's parameter is in the registry, its value has the
// parameter's type, and makes at least one key of a known form.
func checkEntries(t *testing.T, r *search.Registry, typ string, entries []search.Entry) {
	t.Helper()
	for _, e := range entries {
		p, ok := r.Lookup(typ, e.Param)
		if !ok {
			t.Errorf("%s: entry for unknown parameter %s", typ, e.Param)
			continue
		}
		if e.Value.Type() != p.Type {
			t.Errorf("%s?%s: value of type %s, parameter of type %s", typ, e.Param, e.Value.Type(), p.Type)
		}
		keys := e.Value.Keys()
		if len(keys) == 0 {
			t.Errorf("%s?%s: %+v makes no index key", typ, e.Param, e.Value)
		}
		for _, k := range keys {
			if len(k) < 2 || !strings.ContainsRune("vctoezduijsn", rune(k[0])) {
				t.Errorf("%s?%s: key %q has no known form", typ, e.Param, k)
			}
		}
	}
}

func TestExtractChecksEntries(t *testing.T) {
	r := mustLoad(t)
	for typ, src := range map[string]string{"Patient": patientJSON, "Observation": observationJSON} {
		entries, err := r.Extract(typ, []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		checkEntries(t, r, typ, entries)
	}
}

// Extract is safe for concurrent use, first use (compilation) included.
func TestExtractConcurrently(t *testing.T) {
	r, err := search.Load() // a fresh registry: compiled by the first caller below
	if err != nil {
		t.Fatal(err)
	}
	want, err := mustLoad(t).Extract("Observation", []byte(observationJSON))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := r.Extract("Observation", []byte(observationJSON))
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("concurrent Extract: %d entries, %v; want %d", len(got), err, len(want))
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestReferenceLocalTo(t *testing.T) {
	const base = "https://hie.example/fhir"
	tests := []struct {
		in   string
		want search.ReferenceValue
	}{
		{base + "/Patient/p1", refV("Patient", "p1")},
		{base + "/Patient/p1/_history/3", search.ReferenceValue{ResourceType: "Patient", ID: "p1", Version: "3"}},
		{"https://other.example/fhir/Patient/p1", search.ReferenceValue{ResourceType: "Patient", ID: "p1", URL: "https://other.example/fhir/Patient/p1"}},
		{base + "x/Patient/p1", search.ReferenceValue{ResourceType: "Patient", ID: "p1", URL: base + "x/Patient/p1"}},
		{"Patient/p1", refV("Patient", "p1")},
	}
	for _, tt := range tests {
		if got := search.ParseReference(tt.in).LocalTo(base); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// Every parameter of every type finds a value in the fixtures of
// testdata/extract, which use each element a parameter reads: each
// expression works end to end, not only compiles.
func TestExtractEveryParameter(t *testing.T) {
	r := mustLoad(t)
	for _, typ := range search.SearchTypes {
		files, _ := filepath.Glob(filepath.Join("testdata", "extract", typ+"*.json"))
		if len(files) == 0 {
			t.Errorf("%s: no fixture in testdata/extract", typ)
			continue
		}
		found := map[string]bool{}
		for _, name := range files {
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := r.Extract(typ, raw)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			checkEntries(t, r, typ, entries)
			for _, e := range entries {
				found[e.Param] = true
			}
		}
		var missing []string
		for _, p := range r.Params(typ) {
			if !found[p.Code] {
				missing = append(missing, p.Code+" ("+p.Expression+")")
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: no value for %s", typ, strings.Join(missing, ", "))
		}
	}
}
