package validate_test

import (
	"encoding/json"
	"os"
	"testing"

	"healthhub/fhir"
	"healthhub/fhir/validate"
)

// FuzzValidate: Validate never panics; it returns nil or an Invalid error,
// never an internal one (with the cross-check on, that includes the walk and
// the schema library disagreeing); and what it accepts is one JSON object
// with the right resourceType, which the store's parser (fhir.ParseObject)
// also reads. Seeds: testdata/fuzz/FuzzValidate and the ones added here.
func FuzzValidate(f *testing.F) {
	validate.CrossCheck(f)
	if body, err := os.ReadFile("testdata/synthea-patient.json"); err == nil {
		f.Add("Patient", body)
	}
	f.Add("Patient", []byte(`{"resourceType":"Patient","id":"p1","birthDate":"2024-02-29","name":[{"given":["a",null],"_given":[null,{"extension":[{"url":"http://e.org","valueCode":"x"}]}]}]}`))
	f.Add("Encounter", []byte(`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"period":{"start":"2023-06-21","end":"2023-06-21T06:20:00Z"}}`))
	f.Add("Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"valueQuantity":{"value":1.50},"contained":[{"resourceType":"Patient","id":"p"}]}`))
	v := validate.New()
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		err := v.Validate(typ, body)
		if err != nil {
			if k := fhir.KindOf(err); k != fhir.Invalid {
				t.Fatalf("Validate(%q, %q): error of kind %v, want Invalid: %v", typ, body, k, err)
			}
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			t.Fatalf("Validate(%q, %q) accepted a body that is not a JSON object: %v", typ, body, err)
		}
		var rt string
		if err := json.Unmarshal(obj["resourceType"], &rt); err != nil || rt != typ {
			t.Fatalf("Validate(%q, %q) accepted resourceType %s", typ, body, obj["resourceType"])
		}
		if _, err := fhir.ParseObject(body); err != nil {
			t.Fatalf("Validate(%q, %q) accepted a body the store cannot parse: %v", typ, body, err)
		}
	})
}
