package rest

import "testing"

// TestAcceptsPlainJSONQZero: negotiate reads q=0, 0.0, 0.000 alike as
// "not acceptable" (4907441), but acceptsPlainJSON compares q with the
// string "0" only, so Accept: application/json;q=0.0, */* labels the answer
// application/json, the one type the client refused.
func TestAcceptsPlainJSONQZero(t *testing.T) {
	for _, accept := range []string{"application/json;q=0, */*", "application/json;q=0.0, */*", "application/json; q=0.000, */*"} {
		if acceptsPlainJSON(accept) {
			t.Errorf("Accept: %s: labelled application/json", accept)
		}
	}
}

// TestElementsCamelCaseChoice: namedIn takes a choice element's base
// name as what precedes the first capital letter, so a camel-case base
// (Patient.multipleBirth[x], ServiceRequest.asNeeded[x]) never matches:
// _elements=multipleBirth drops multipleBirthBoolean/multipleBirthInteger.
func TestElementsCamelCaseChoice(t *testing.T) {
	for _, tc := range []struct{ name, prop string }{
		{"multipleBirth", "multipleBirthBoolean"},
		{"multipleBirth", "_multipleBirthInteger"},
		{"asNeeded", "asNeededCodeableConcept"},
		{"value", "valueQuantity"}, // works
	} {
		if !namedIn(map[string]bool{tc.name: true}, tc.prop) {
			t.Errorf("_elements=%s does not keep %s", tc.name, tc.prop)
		}
	}
}

// TestAcceptsPlainJSONFHIRRefused: an Accept that refuses
// application/fhir+json (q=0) and takes application/json, by name or by
// a wildcard, was answered labelled application/fhir+json, the one type
// the client refused: any mention of the FHIR type kept the FHIR label.
func TestAcceptsPlainJSONFHIRRefused(t *testing.T) {
	for accept, want := range map[string]bool{
		"application/fhir+json;q=0, application/json":    true,
		"application/fhir+json; q=0.0, application/json": true,
		"application/fhir+json;q=0, */*":                 true,
		"application/fhir+json;q=0, application/*":       true,
		"application/json, application/fhir+json;q=0":    true,
		// The FHIR type acceptable: it is preferred.
		"application/fhir+json, application/json":              false,
		"application/json, application/fhir+json":              false,
		"application/fhir+json;q=0.5, application/json":        false,
		"application/fhir+json":                                false,
		"*/*":                                                  false,
		"application/json;q=0, application/fhir+json;q=0, */*": false,
		// Plain JSON by name, as before.
		"application/json":                  true,
		"application/json;q=0.5, text/html": true,
		"application/json;q=0, */*":         false,
	} {
		if got := acceptsPlainJSON(accept); got != want {
			t.Errorf("Accept: %s: labelled application/json %v, want %v", accept, got, want)
		}
	}
}
