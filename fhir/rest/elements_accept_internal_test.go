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
