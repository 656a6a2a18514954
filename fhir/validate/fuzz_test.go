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

// FuzzLinks: the link walk, though meant for validated resources, never
// panics on any bytes and only reports ranges inside them that start and
// end with a quote.
func FuzzLinks(f *testing.F) {
	f.Add("DocumentReference", []byte(`{"resourceType":"DocumentReference","status":"current","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:x\">d</a></div>"},"content":[{"attachment":{"url":"urn:uuid:x"}}]}`))
	f.Add("Patient", []byte(`{"resourceType":"Patient","_birthDate":{"extension":[{"url":"u","valueUri":"urn:oid:1.2"}]},"contained":[{"resourceType":"Organization","id":"o","extension":[{"url":"v","valueUrl":"x"}]}]}`))
	f.Add("Bundle", []byte(`{"resourceType":"Bundle","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Binary"}},{"resource":[}]}`))
	v := validate.New()
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		err := v.Links(typ, body, func(start, end int, _ validate.LinkKind) {
			if start < 0 || end > len(body) || start >= end || body[start] != '"' {
				t.Fatalf("range [%d, %d) of %d bytes", start, end, len(body))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
