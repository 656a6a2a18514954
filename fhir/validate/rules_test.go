package validate_test

import (
	"strings"
	"testing"

	"healthhub/fhir/validate"
)

// mustReject: each body breaks an R4 rule and must be refused, with an
// issue at wantExpr.
func mustReject(t *testing.T, cases []struct{ name, typ, body, wantExpr string }) {
	t.Helper()
	validate.CrossCheck(t)
	v := validate.New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			issues := check(t, v, c.typ, c.body)
			for _, is := range issues {
				if is.Expression[0] == c.wantExpr {
					return
				}
			}
			t.Errorf("%s: got issues%s\nwant an issue at %s", c.body, show(issues), c.wantExpr)
		})
	}
}

// TestChoiceOnlyOneType: a choice element value[x] has at most one
// value (max cardinality 1), so at most one of its typed JSON names may be
// present. The R4 JSON schema lists each typed name as a separate optional
// property and cannot say so.
func TestChoiceOnlyOneType(t *testing.T) {
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"Patient.deceased[x] twice", "Patient", `{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020-01-01"}`, "Patient.deceased"},
		{"Observation.value[x] twice", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a","valueBoolean":true}`, "Observation.value"},
		{"Extension.value[x] twice", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueString":"x","valueBoolean":true}]}`, "Patient.extension[0].value"},
		{"value and another type's extensions", "Patient", `{"resourceType":"Patient","deceasedBoolean":true,"_deceasedDateTime":{"extension":[` + ext + `]}}`, "Patient.deceased"},
	})
}

// TestRequiredPrimitivesEmbedded: Annotation.text (markdown 1..1) and
// SampledData.period (decimal 1..1) are required primitives of datatypes the
// exchange's Observation embeds (note, valueSampledData); requiredPrimitives
// promises to cover "what they embed".
func TestRequiredPrimitivesEmbedded(t *testing.T) {
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"Annotation without text", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[{"authorString":"Dr X"}]}`, "Observation.note[0].text"},
		{"SampledData without period", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueSampledData":{"origin":{"value":0},"dimensions":1}}`, "Observation.valueSampledData.period"},
	})
}

// TestPrimitiveArrayItemIDOnly: ele-1 (hasValue() or
// (children().count() > id.count())) holds for each item of a primitive
// array too. given[0] below has no value and only an id; the single-valued
// "_birthDate":{"id":"a"} without birthDate is already refused.
func TestPrimitiveArrayItemIDOnly(t *testing.T) {
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"_given item with only an id", "Patient", `{"resourceType":"Patient","name":[{"_given":[{"id":"x"}]}]}`, "Patient.name[0].given[0]"},
		{"null given, _given item with only an id", "Patient", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}]}`, "Patient.name[0].given[1]"},
	})
}

// TestBase64Binary: base64Binary is "A stream of bytes, base64
// encoded (RFC 4648)" (R4 datatypes.html, regex
// (\s*([0-9a-zA-Z\+/=]){4}\s*)+). The R4 JSON schema gives the base64Binary
// definition no pattern (only Extension.valueBase64Binary carries it inline,
// so "%%%" is refused there), so every other base64Binary element takes
// anything.
func TestBase64Binary(t *testing.T) {
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"Attachment.data not base64", "Patient", `{"resourceType":"Patient","photo":[{"data":"not base64!!"}]}`, "Patient.photo[0].data"},
	})
}

// TestEmptyURI: a primitive that is present has a value (ele-1); ""
// is refused for string and code (TestValidate "empty string") but passes
// for uri, url and canonical, whose schema pattern ^\S*$ matches "".
func TestEmptyURI(t *testing.T) {
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"Identifier.system empty", "Patient", `{"resourceType":"Patient","identifier":[{"system":"","value":"1"}]}`, "Patient.identifier[0].system"},
		{"Extension.url empty", "Patient", `{"resourceType":"Patient","extension":[{"url":"","valueString":"x"}]}`, "Patient.extension[0].url"},
		{"meta.profile empty canonical", "Patient", `{"resourceType":"Patient","meta":{"profile":[""]}}`, "Patient.meta.profile[0]"},
	})
}

// TestUnsignedIntMinusZero: unsignedInt is [0]|([1-9][0-9]*) in R4
// (datatypes.html); "-0" is not in it (integer's -?([0]|([1-9][0-9]*)) allows
// it, unsignedInt's does not).
func TestUnsignedIntMinusZero(t *testing.T) {
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"Attachment.size -0", "Patient", `{"resourceType":"Patient","photo":[{"size":-0}]}`, "Patient.photo[0].size"},
	})
}

// TestContainedIDsUnique: the contained resources of one container share
// its id space (R4 references.html#contained: a reference "#id" is resolved
// in the container), so two with the same id leave "#id" naming either;
// the reference validator refuses duplicate ids.
func TestContainedIDsUnique(t *testing.T) {
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"two contained with one id", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o1","name":"A"},{"resourceType":"Organization","id":"o1","name":"B"}],"managingOrganization":{"reference":"#o1"}}`, "Patient.contained[1].id"},
		{"different types, one id", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"x"},{"resourceType":"Practitioner","id":"x"}],"managingOrganization":{"reference":"#x"},"generalPractitioner":[{"reference":"#x"}]}`, "Patient.contained[1].id"},
	})
}

// TestStringAtMost1MiB: R4 datatypes.html, string: "strings SHALL NOT
// exceed 1MB (1024*1024 characters) in size"; markdown and code are
// strings too. Characters, not bytes, are counted.
func TestStringAtMost1MiB(t *testing.T) {
	validate.CrossCheck(t)
	v := validate.New()
	long := strings.Repeat("é", 1<<20+1)
	for _, c := range []struct{ name, typ, body, wantExpr string }{
		{"string", "Patient", `{"resourceType":"Patient","name":[{"text":"` + long + `"}]}`, "Patient.name[0].text"},
		{"markdown", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"note":[{"text":"` + long + `"}]}`, "Observation.note[0].text"},
		{"string in an extension", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueString":"` + long + `"}]}`, "Patient.extension[0].valueString"},
	} {
		found := false
		issues := check(t, v, c.typ, c.body)
		for _, is := range issues {
			found = found || is.Expression[0] == c.wantExpr
		}
		if !found {
			t.Errorf("%s of 1024*1024+1 characters: got %d issues, want one at %s", c.name, len(issues), c.wantExpr)
		}
	}
	ok := strings.Repeat("é", 1<<20)
	if err := v.Validate("Patient", []byte(`{"resourceType":"Patient","name":[{"text":"`+ok+`"}]}`)); err != nil {
		t.Errorf("a string of 1024*1024 characters: %v", err)
	}
}

// TestReferenceTargetTypes: a Reference points at the types its element
// allows (Observation.subject: Patient, Group, Device or Location), as the
// official search parameters list them; a reference that names another
// type, relative, absolute, conditional or to a contained resource, is
// refused at that reference.
func TestReferenceTargetTypes(t *testing.T) {
	const obs = `{"resourceType":"Observation","status":"final","code":{"text":"x"},`
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"relative", "Observation", obs + `"subject":{"reference":"Medication/m1"}}`, "Observation.subject.reference"},
		{"versioned", "Observation", obs + `"subject":{"reference":"Organization/o1/_history/2"}}`, "Observation.subject.reference"},
		{"absolute", "Observation", obs + `"subject":{"reference":"https://other.example/fhir/Practitioner/p1"}}`, "Observation.subject.reference"},
		{"conditional", "Observation", obs + `"subject":{"reference":"Organization?identifier=urn:x|1"}}`, "Observation.subject.reference"},
		{"in an array", "Observation", obs + `"performer":[{"reference":"Practitioner/p1"},{"reference":"Medication/m1"}]}`, "Observation.performer[1].reference"},
		{"nested element", "Encounter", `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"participant":[{"individual":{"reference":"Patient/p1"}}]}`, "Encounter.participant[0].individual.reference"},
		{"contained", "Observation", obs + `"contained":[{"resourceType":"Medication","id":"m"}],"subject":{"reference":"#m"}}`, "Observation.subject.reference"},
		{"in a contained resource", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Organization/o1"}}],"extension":[{"url":"http://e.org","valueReference":{"reference":"#o"}}]}`, "Patient.contained[0].subject.reference"},
		{"choice element", "MedicationRequest", `{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p"},"medicationReference":{"reference":"Substance/s1"}}`, "MedicationRequest.medicationReference.reference"},
		{"in a Bundle entry", "Bundle", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0b9a1f0e-2c1d-4c1e-9a61-7d1f9f3c2b10","resource":{"resourceType":"Patient","managingOrganization":{"reference":"Patient/p2"}}}]}`, "Bundle.entry[0].resource.managingOrganization.reference"},
	})
	validate.CrossCheck(t)
	v := validate.New()
	for _, body := range []string{
		obs + `"subject":{"reference":"Patient/p1"}}`,
		obs + `"subject":{"reference":"Group/g1"},"performer":[{"reference":"Organization/o1"},{"reference":"PractitionerRole/r1"}]}`,
		obs + `"subject":{"reference":"https://other.example/fhir/Patient/p1/_history/3"}}`,
		obs + `"subject":{"reference":"Patient?identifier=urn:x|1"}}`,
		obs + `"subject":{"reference":"urn:uuid:0b9a1f0e-2c1d-4c1e-9a61-7d1f9f3c2b10"}}`,
		obs + `"subject":{"identifier":{"system":"urn:x","value":"1"}}}`, // logical: no type to check
		obs + `"contained":[{"resourceType":"Patient","id":"p"}],"subject":{"reference":"#p"}}`,
		obs + `"subject":{"reference":"https://other.example/some/page"}}`, // names no type
		// an element no search parameter names is not checked
		obs + `"extension":[{"url":"http://e.org","valueReference":{"reference":"Medication/m1"}}]}`,
	} {
		if issues := check(t, v, "Observation", body); issues != nil {
			t.Errorf("%s: refused%s", body, show(issues))
		}
	}
	// Reference(Any) is any resource, Parameters too (the official target
	// lists of such elements name every type but Parameters).
	for _, c := range []struct{ typ, body string }{
		{"Observation", obs + `"focus":[{"reference":"Parameters/in1"}]}`},
		{"Observation", obs + `"contained":[{"resourceType":"Parameters","id":"in","parameter":[{"name":"n","valueString":"x"}]}],"focus":[{"reference":"#in"}]}`},
		{"Provenance", `{"resourceType":"Provenance","recorded":"2024-01-01T00:00:00Z","target":[{"reference":"https://other.example/fhir/Parameters/p1"}],"agent":[{"who":{"reference":"Device/d1"}}]}`},
		// a choice element's Reference, to the type it allows
		{"MedicationRequest", `{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p"},"medicationReference":{"reference":"Medication/m1"}}`},
	} {
		if issues := check(t, v, c.typ, c.body); issues != nil {
			t.Errorf("%s: refused%s", c.body, show(issues))
		}
	}
}

// TestReferenceTargetTypesInBundle: a urn:uuid: or urn:oid: reference
// names the entry with that fullUrl, so its type is that entry's, and its
// element must allow it, in a transaction as in any other Bundle.
func TestReferenceTargetTypesInBundle(t *testing.T) {
	const (
		med = `{"fullUrl":"urn:uuid:0b9a1f0e-2c1d-4c1e-9a61-7d1f9f3c2b10","resource":{"resourceType":"Medication"},"request":{"method":"POST","url":"Medication"}}`
		pat = `{"fullUrl":"urn:oid:1.2.3","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`
		obs = `{"fullUrl":"urn:uuid:1b9a1f0e-2c1d-4c1e-9a61-7d1f9f3c2b11","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"%s"}},"request":{"method":"POST","url":"Observation"}}`
	)
	bundle := func(subject string) string {
		return `{"resourceType":"Bundle","type":"transaction","entry":[` + med + `,` + pat + `,` + strings.Replace(obs, "%s", subject, 1) + `]}`
	}
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"urn:uuid of a Medication", "Bundle", bundle("urn:uuid:0b9a1f0e-2c1d-4c1e-9a61-7d1f9f3c2b10"), "Bundle.entry[2].resource.subject.reference"},
	})
	validate.CrossCheck(t)
	v := validate.New()
	if issues := check(t, v, "Bundle", bundle("urn:oid:1.2.3")); issues != nil {
		t.Errorf("subject urn:oid: of a Patient entry: refused%s", show(issues))
	}
}

// TestReferenceTypeMember: Reference.type names a type the element
// allows, and agrees with the type its reference names (R4 Reference.type).
func TestReferenceTypeMember(t *testing.T) {
	const obs = `{"resourceType":"Observation","status":"final","code":{"text":"x"},`
	mustReject(t, []struct{ name, typ, body, wantExpr string }{
		{"type not allowed", "Observation", obs + `"subject":{"type":"Medication","identifier":{"system":"urn:x","value":"1"}}}`, "Observation.subject.type"},
		{"canonical form not allowed", "Observation", obs + `"subject":{"type":"http://hl7.org/fhir/StructureDefinition/Medication","display":"x"}}`, "Observation.subject.type"},
		{"disagrees with the reference", "Observation", obs + `"subject":{"type":"Group","reference":"Patient/p1"}}`, "Observation.subject.type"},
		{"in an array", "Observation", obs + `"performer":[{"type":"Practitioner","reference":"Practitioner/a"},{"type":"Device","display":"x"}]}`, "Observation.performer[1].type"},
		{"an element called reference", "CarePlan", `{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/p"},"activity":[{"reference":{"type":"Patient","display":"x"}}]}`, "CarePlan.activity[0].reference.type"},
	})
	validate.CrossCheck(t)
	v := validate.New()
	for _, body := range []string{
		obs + `"subject":{"type":"Patient","identifier":{"system":"urn:x","value":"1"}}}`,
		obs + `"subject":{"type":"Patient","reference":"Patient/p1"}}`,
		obs + `"subject":{"type":"http://hl7.org/fhir/StructureDefinition/Patient","reference":"https://other.example/fhir/Patient/p1"}}`,
		obs + `"subject":{"type":"Patient","reference":"urn:uuid:0b9a1f0e-2c1d-4c1e-9a61-7d1f9f3c2b10"}}`,
		obs + `"subject":{"type":"http://example.org/logical/Thing","display":"x"}}`, // a logical model
		obs + `"focus":[{"type":"Medication","display":"x"}]}`,                       // Reference(Any)
		obs + `"extension":[{"url":"http://e.org","valueReference":{"type":"Medication","display":"x"}}]}`,
	} {
		if issues := check(t, v, "Observation", body); issues != nil {
			t.Errorf("%s: refused%s", body, show(issues))
		}
	}
}
