package validate_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"healthhub/conformance"
	"healthhub/fhir"
	"healthhub/fhir/validate"
)

// check validates body as typ and returns its issues; a non-Invalid error
// (an internal one, such as the walk and the schema library disagreeing
// under the cross-check) fails the test.
func check(t *testing.T, v *validate.Validator, typ, body string) []fhir.Issue {
	t.Helper()
	err := v.Validate(typ, []byte(body))
	if err == nil {
		return nil
	}
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.Invalid {
		t.Fatalf("Validate(%s): got %v (%T), want nil or a *fhir.Error of Kind Invalid", typ, err, err)
	}
	if len(fe.Issues) == 0 {
		t.Fatalf("Validate(%s): an Invalid error with no issues", typ)
	}
	for _, is := range fe.Issues {
		if is.Severity != "error" || is.Code == "" || is.Diagnostics == "" || len(is.Expression) != 1 {
			t.Errorf("Validate(%s): malformed issue %+v", typ, is)
		}
	}
	return fe.Issues
}

func show(issues []fhir.Issue) string {
	var b strings.Builder
	for _, is := range issues {
		fmt.Fprintf(&b, "\n\t%s %s: %s", is.Code, strings.Join(is.Expression, ","), is.Diagnostics)
	}
	return b.String()
}

const (
	ext    = `{"url":"http://example.org/x","valueString":"x"}`
	div    = `<div xmlns=\"http://www.w3.org/1999/xhtml\">`
	uuid1  = "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"
	uuid2  = "urn:uuid:4b6f4b8f-3f2a-4c59-a3c5-2a8e0c1c9d01"
	period = `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"period":%s}`
)

// TestValidate: one line per check. want is "" for a valid body, else an
// expression and an issue code that must be among the issues.
func TestValidate(t *testing.T) {
	validate.CrossCheck(t)
	tests := []struct {
		name, typ, body string
		wantExpr        string
		wantCode        string
	}{
		// The body and its resourceType.
		{"minimal", "Patient", `{"resourceType":"Patient"}`, "", ""},
		{"not an object", "Patient", `["resourceType"]`, "Patient", "structure"},
		{"not JSON", "Patient", `{"resourceType":"Patient",}`, "Patient", "structure"},
		{"trailing data", "Patient", `{"resourceType":"Patient"} {}`, "Patient", "structure"},
		{"duplicate member", "Patient", `{"resourceType":"Patient","active":true,"active":false}`, "Patient", "structure"},
		{"byte order mark", "Patient", "\ufeff{\"resourceType\":\"Patient\"}", "Patient", "structure"},
		{"invalid UTF-8", "Patient", "{\"resourceType\":\"Patient\",\"gender\":\"m\xffle\"}", "Patient", "structure"},
		{"lone surrogate", "Patient", `{"resourceType":"Patient","name":[{"text":"\ud800"}]}`, "Patient", "structure"},
		{"resourceType missing", "Patient", `{"id":"a"}`, "resourceType", "invalid"},
		{"resourceType missing, rest checked", "Patient", `{"id":"a b"}`, "Patient.id", "value"},
		{"resourceType mismatch", "Patient", `{"resourceType":"Observation"}`, "resourceType", "invalid"},
		{"resourceType not a string", "Patient", `{"resourceType":5}`, "resourceType", "invalid"},
		{"unknown resource type", "Patient2", `{"resourceType":"Patient2"}`, "resourceType", "invalid"},

		// What the schema catches.
		{"unknown element", "Patient", `{"resourceType":"Patient","foo":1}`, "Patient.foo", "structure"},
		{"unknown nested element", "Patient", `{"resourceType":"Patient","name":[{"given":["a"],"nick":"b"}]}`, "Patient.name[0].nick", "structure"},
		{"extension on id", "Patient", `{"resourceType":"Patient","id":"a","_id":{"extension":[` + ext + `]}}`, "Patient._id", "structure"},
		{"wrong JSON type", "Patient", `{"resourceType":"Patient","active":"yes"}`, "Patient.active", "structure"},
		{"array expected", "Patient", `{"resourceType":"Patient","name":{"family":"a"}}`, "Patient.name", "structure"},
		{"single value expected", "Patient", `{"resourceType":"Patient","birthDate":["2000-01-01"]}`, "Patient.birthDate", "structure"},
		{"null value", "Patient", `{"resourceType":"Patient","birthDate":null}`, "Patient.birthDate", "structure"},
		{"required element", "Observation", `{"resourceType":"Observation","status":"final"}`, "Observation.code", "required"},
		{"bad id", "Patient", `{"resourceType":"Patient","id":"a b"}`, "Patient.id", "value"},
		{"id too long", "Patient", `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`, "Patient.id", "value"},
		{"bad code", "Patient", `{"resourceType":"Patient","gender":"f"}`, "Patient.gender", "value"},
		{"code with double space", "Observation", `{"resourceType":"Observation","status":"final","code":{"coding":[{"code":"a  b"}]}}`, "Observation.code.coding[0].code", "value"},
		{"empty string", "Patient", `{"resourceType":"Patient","name":[{"family":""}]}`, "Patient.name[0].family", "value"},
		{"date syntax", "Patient", `{"resourceType":"Patient","birthDate":"2023-13-01"}`, "Patient.birthDate", "value"},
		{"dateTime without zone", "Patient", `{"resourceType":"Patient","deceasedDateTime":"2023-01-01T10:00:00"}`, "Patient.deceasedDateTime", "value"},
		{"uri with space", "Patient", `{"resourceType":"Patient","identifier":[{"system":"http://a b","value":"1"}]}`, "Patient.identifier[0].system", "value"},
		{"inline pattern", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueDate":"20230101"}]}`, "Patient.extension[0].valueDate", "value"},
		{"decimal as string", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.5"}}`, "Observation.valueQuantity.value", "structure"},
		{"decimal kept exact", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":0.10000000000000000000000001}}`, "", ""},

		// Wrong JSON types the R4 schema lets through (datatypes have no "type": "object").
		{"datatype as string", "Patient", `{"resourceType":"Patient","maritalStatus":"M"}`, "Patient.maritalStatus", "structure"},
		{"datatype item as string", "Patient", `{"resourceType":"Patient","name":["Smith"]}`, "Patient.name[0]", "structure"},
		{"required datatype null", "Observation", `{"resourceType":"Observation","status":"final","code":null}`, "Observation.code", "structure"},
		{"div not a string", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":5}}`, "Patient.text.div", "structure"},
		{"primitive extension not an object", "Patient", `{"resourceType":"Patient","_birthDate":"x"}`, "Patient.birthDate", "structure"},

		// Real calendar dates.
		{"date Feb 30", "Patient", `{"resourceType":"Patient","birthDate":"2023-02-30"}`, "Patient.birthDate", "value"},
		{"date Feb 29 leap year", "Patient", `{"resourceType":"Patient","birthDate":"2024-02-29"}`, "", ""},
		{"date Feb 29 not leap", "Patient", `{"resourceType":"Patient","birthDate":"2023-02-29"}`, "Patient.birthDate", "value"},
		{"date Feb 29 1900", "Patient", `{"resourceType":"Patient","birthDate":"1900-02-29"}`, "Patient.birthDate", "value"},
		{"date Feb 29 2000", "Patient", `{"resourceType":"Patient","birthDate":"2000-02-29"}`, "", ""},
		{"date partial", "Patient", `{"resourceType":"Patient","birthDate":"1970-06"}`, "", ""},
		{"dateTime Apr 31", "Patient", `{"resourceType":"Patient","deceasedDateTime":"2023-04-31T10:00:00Z"}`, "Patient.deceasedDateTime", "value"},
		{"dateTime +14:00", "Patient", `{"resourceType":"Patient","deceasedDateTime":"2023-04-30T10:00:00.123+14:00"}`, "", ""},
		{"dateTime leap second", "Patient", `{"resourceType":"Patient","deceasedDateTime":"2016-12-31T23:59:60Z"}`, "", ""},
		{"instant Jun 31", "Patient", `{"resourceType":"Patient","meta":{"lastUpdated":"2023-06-31T00:00:00Z"}}`, "Patient.meta.lastUpdated", "value"},
		{"date in extension", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueDate":"2023-11-31"}]}`, "Patient.extension[0].valueDate", "value"},
		{"date in contained", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p","birthDate":"2023-02-30"}]}`, "Observation.contained[0].birthDate", "value"},

		// Integers (the schema's "number" lets fractions and big values through).
		{"integer fraction", "Patient", `{"resourceType":"Patient","multipleBirthInteger":1.5}`, "Patient.multipleBirthInteger", "value"},
		{"integer exponent", "Patient", `{"resourceType":"Patient","multipleBirthInteger":1e2}`, "Patient.multipleBirthInteger", "value"},
		{"integer overflow", "Patient", `{"resourceType":"Patient","multipleBirthInteger":3000000000}`, "Patient.multipleBirthInteger", "value"},
		{"integer ok", "Patient", `{"resourceType":"Patient","multipleBirthInteger":-2}`, "", ""},
		{"unsignedInt negative", "Patient", `{"resourceType":"Patient","photo":[{"size":-1}]}`, "Patient.photo[0].size", "value"},
		{"positiveInt zero", "MedicationRequest", `{"resourceType":"MedicationRequest","status":"active","intent":"order","medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/1"},"dosageInstruction":[{"timing":{"repeat":{"frequency":0}}}]}`, "MedicationRequest.dosageInstruction[0].timing.repeat.frequency", "value"},

		// Reference syntax.
		{"ref relative", "Observation", obsRef("Patient/123"), "", ""},
		{"ref versioned", "Observation", obsRef("Patient/123/_history/2"), "", ""},
		{"ref absolute", "Observation", obsRef("https://fhir.example.org/r4/Patient/123"), "", ""},
		{"ref urn:uuid", "Observation", obsRef(uuid1), "", ""},
		{"ref urn:oid", "Observation", obsRef("urn:oid:1.2.840.113619.2.62"), "", ""},
		{"ref conditional", "Observation", obsRef("Patient?identifier=http://hospital.example.org/mrn|123"), "", ""},
		{"ref no id", "Observation", obsRef("Patient/"), "Observation.subject.reference", "value"},
		{"ref unknown type", "Observation", obsRef("Patients/123"), "Observation.subject.reference", "value"},
		{"ref lower-case type", "Observation", obsRef("patient/123"), "Observation.subject.reference", "value"},
		{"ref bad id", "Observation", obsRef("Patient/a_b"), "Observation.subject.reference", "value"},
		{"ref bad history", "Observation", obsRef("Patient/1/_history/"), "Observation.subject.reference", "value"},
		{"ref too many segments", "Observation", obsRef("Patient/1/2"), "Observation.subject.reference", "value"},
		{"ref bare id", "Observation", obsRef("123"), "Observation.subject.reference", "value"},
		{"ref white space", "Observation", obsRef("Patient/ 1"), "Observation.subject.reference", "value"},
		{"ref bad uuid", "Observation", obsRef("urn:uuid:1234"), "Observation.subject.reference", "value"},
		{"ref bad oid", "Observation", obsRef("urn:oid:1.02"), "Observation.subject.reference", "value"},
		{"ref other urn", "Observation", obsRef("urn:isbn:0451450523"), "Observation.subject.reference", "value"},
		{"ref conditional unknown type", "Observation", obsRef("Patients?identifier=1"), "Observation.subject.reference", "value"},
		{"ref URL without host", "Observation", obsRef("http:///Patient/1"), "Observation.subject.reference", "value"},
		{"ref local bad id", "Observation", obsRef("#a b"), "Observation.subject.reference", "value"},
		{"ref local to nothing", "Observation", obsRef("#p1"), "Observation.subject.reference", "invariant"},

		// Primitive arrays and their extensions.
		{"aligned", "Patient", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"extension":[` + ext + `]}]}]}`, "", ""},
		{"extensions only", "Patient", `{"resourceType":"Patient","name":[{"_given":[{"extension":[` + ext + `]}]}]}`, "", ""},
		{"lengths differ", "Patient", `{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[{"id":"x"}]}]}`, "Patient.name[0].given", "structure"},
		{"both null", "Patient", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[{"id":"x"},null]}]}`, "Patient.name[0].given[1]", "structure"},
		{"null without extensions", "Patient", `{"resourceType":"Patient","name":[{"given":["a",null]}]}`, "Patient.name[0].given[1]", "structure"},
		{"null in extensions only", "Patient", `{"resourceType":"Patient","name":[{"_given":[null]}]}`, "Patient.name[0].given[0]", "structure"},
		{"extension item not object", "Patient", `{"resourceType":"Patient","name":[{"given":["a"],"_given":["x"]}]}`, "Patient.name[0].given[0]", "structure"},
		{"code array aligned", "AllergyIntolerance", `{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/1"},"category":[null,"food"],"_category":[{"extension":[` + ext + `]},null]}`, "", ""},
		{"extension in primitive ext", "Patient", `{"resourceType":"Patient","birthDate":"2000-01-01","_birthDate":{"extension":[{"url":"http://e.org"}]}}`, "Patient.birthDate.extension[0]", "invariant"},

		// Period: per-1.
		{"period ok", "Encounter", fmt.Sprintf(period, `{"start":"2023-06-21T06:00:00Z","end":"2023-06-21T07:00:00Z"}`), "", ""},
		{"period equal", "Encounter", fmt.Sprintf(period, `{"start":"2023-06-21","end":"2023-06-21"}`), "", ""},
		{"period reversed", "Encounter", fmt.Sprintf(period, `{"start":"2023-06-21T08:00:00Z","end":"2023-06-21T07:00:00Z"}`), "Encounter.period", "invariant"},
		{"period zones", "Encounter", fmt.Sprintf(period, `{"start":"2023-06-21T10:00:00+02:00","end":"2023-06-21T09:00:00Z"}`), "", ""},
		{"period zones reversed", "Encounter", fmt.Sprintf(period, `{"start":"2023-06-21T10:00:00Z","end":"2023-06-21T11:00:00+02:00"}`), "Encounter.period", "invariant"},
		{"period precisions ordered", "Encounter", fmt.Sprintf(period, `{"start":"2023-06-20","end":"2023-06-21T06:20:00Z"}`), "", ""},
		{"period precisions ambiguous", "Encounter", fmt.Sprintf(period, `{"start":"2023-06-21","end":"2023-06-21T06:20:00Z"}`), "Encounter.period", "invariant"},
		{"period years reversed", "Encounter", fmt.Sprintf(period, `{"start":"2024","end":"2023-12"}`), "Encounter.period", "invariant"},
		{"period start only", "Encounter", fmt.Sprintf(period, `{"start":"2024"}`), "", ""},
		{"period nested", "Patient", `{"resourceType":"Patient","name":[{"family":"a","period":{"start":"2020","end":"2019"}}]}`, "Patient.name[0].period", "invariant"},

		// Empty elements.
		{"empty object", "Patient", `{"resourceType":"Patient","maritalStatus":{}}`, "Patient.maritalStatus", "invariant"},
		{"empty object in array", "Patient", `{"resourceType":"Patient","name":[{}]}`, "Patient.name[0]", "invariant"},
		{"only an id", "Patient", `{"resourceType":"Patient","name":[{"id":"n1"}]}`, "Patient.name[0]", "invariant"},
		{"empty array", "Patient", `{"resourceType":"Patient","name":[]}`, "Patient.name", "structure"},
		{"empty primitive extension", "Patient", `{"resourceType":"Patient","birthDate":"2000-01-01","_birthDate":{}}`, "Patient.birthDate", "invariant"},
		{"null in complex array", "Patient", `{"resourceType":"Patient","name":[null]}`, "Patient.name[0]", "structure"},

		// Extensions: ext-1 and url.
		{"observation without status", "Observation", `{"resourceType":"Observation","code":{"text":"x"}}`, "Observation.status", "required"},
		{"status through its extension only", "Observation", `{"resourceType":"Observation","_status":{"extension":[{"url":"http://x","valueString":"y"}]},"code":{"text":"x"}}`, "", ""},
		{"encounter without status", "Encounter", `{"resourceType":"Encounter","class":{"code":"AMB"}}`, "Encounter.status", "required"},
		{"appointment participant without status", "Appointment", `{"resourceType":"Appointment","status":"booked","participant":[{"actor":{"reference":"Patient/1"}}]}`, "Appointment.participant[0].status", "required"},
		{"extension without url", "Patient", `{"resourceType":"Patient","extension":[{"valueString":"x"}]}`, "Patient.extension[0].url", "required"},
		{"extension value and extensions", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","valueString":"x","extension":[` + ext + `]}]}`, "Patient.extension[0]", "invariant"},
		{"extension nested", "Patient", `{"resourceType":"Patient","extension":[{"url":"http://e.org","extension":[` + ext + `]}]}`, "", ""},

		// Narrative.
		{"narrative ok", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + `<p>a &amp; b &#169; <b>c</b></p><img src=\"#x\" alt=\"y\"/></div>"}}`, "", ""},
		{"narrative html entity", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + `CPT&reg;</div>"}}`, "Patient.text.div", "value"},
		{"narrative unclosed", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + `<p>a</div>"}}`, "Patient.text.div", "value"},
		{"narrative no namespace", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"<div>a</div>"}}`, "Patient.text.div", "value"},
		{"narrative not a div", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"<p xmlns=\"http://www.w3.org/1999/xhtml\">a</p>"}}`, "Patient.text.div", "value"},
		{"narrative script", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + `<script>alert(1)</script></div>"}}`, "Patient.text.div", "value"},
		{"narrative event handler", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + `<p onclick=\"x()\">a</p></div>"}}`, "Patient.text.div", "value"},
		{"narrative javascript link", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + `<a href=\" java\tscript:x()\">a</a></div>"}}`, "Patient.text.div", "value"},
		{"narrative empty", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + ` </div>"}}`, "Patient.text.div", "value"},
		{"narrative two roots", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"` + div + `a</div>` + div + `b</div>"}}`, "Patient.text.div", "value"},
		{"narrative doctype", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"<!DOCTYPE html>` + div + `a</div>"}}`, "Patient.text.div", "value"},
		{"narrative without status", "Patient", `{"resourceType":"Patient","text":{"div":"` + div + `a</div>"}}`, "Patient.text.status", "required"},

		// Contained resources: dispatched to their own schema, paths through the container.
		{"contained ok", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p"}]}`, "", ""},
		{"contained unknown element", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p","foo":1}]}`, "Observation.contained[0].foo", "structure"},
		{"contained required", "Patient", `{"resourceType":"Patient","generalPractitioner":[{"reference":"#o"}],"contained":[{"resourceType":"Observation","id":"o","status":"final"}]}`, "Patient.contained[0].code", "required"},
		{"contained name type", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p","name":[{"given":"a"}]}]}`, "Observation.contained[0].name[0].given", "structure"},
		{"contained no resourceType", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"id":"p"}]}`, "Observation.contained[0].resourceType", "required"},
		{"contained unknown type", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Pet","id":"p"}]}`, "Observation.contained[0].resourceType", "invalid"},
		{"contained not an object", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":["Patient"]}`, "Observation.contained[0]", "structure"},
		{"contained null", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[null]}`, "Observation.contained[0]", "structure"},
		{"contained not referenced", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Patient","id":"p"}]}`, "Observation.contained[0]", "invariant"},
		{"contained without id", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Patient"}]}`, "Observation.contained[0]", "invariant"},
		{"contained refers to container", "Observation", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"contained":[{"resourceType":"Provenance","id":"v","target":[{"reference":"#"}],"recorded":"2020-01-01T00:00:00Z","agent":[{"who":{"display":"x"}}]}]}`, "", ""},
		{"contained by canonical", "Questionnaire", `{"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"choice","answerValueSet":"#vs"}],"contained":[{"resourceType":"ValueSet","id":"vs","status":"draft"}]}`, "", ""},
		{"contained in contained", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p","contained":[{"resourceType":"Patient","id":"q"}]}]}`, "Observation.contained[0].contained", "invariant"},
		{"contained versionId", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p","meta":{"versionId":"1"}}]}`, "Observation.contained[0].meta.versionId", "invariant"},
		{"contained security", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"#p"},"contained":[{"resourceType":"Patient","id":"p","meta":{"security":[{"code":"R"}]}}]}`, "Observation.contained[0].meta.security", "invariant"},

		// Other places that hold a whole resource.
		{"parameters resource", "Parameters", `{"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Patient","birthDate":"2023-02-30"}}]}`, "Parameters.parameter[0].resource.birthDate", "value"},
		{"outcome in response", "Bundle", `{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"400","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"bogus"}]}}}]}`, "Bundle.entry[0].response.outcome.issue[0].code", "value"},

		// Bundles.
		{"bundle ok", "Bundle", bundle("transaction", entry(uuid1, `{"resourceType":"Patient"}`, post("Patient")), entry(uuid2, obsRefBody(uuid1), post("Observation"))), "", ""},
		{"bundle entry schema", "Bundle", bundle("collection", entry(uuid1, `{"resourceType":"Patient","gender":"x"}`, "")), "Bundle.entry[0].resource.gender", "value"},
		{"bundle entry walk", "Bundle", bundle("collection", entry(uuid1, `{"resourceType":"Patient","birthDate":"2023-02-30"}`, "")), "Bundle.entry[0].resource.birthDate", "value"},
		{"bundle fullUrl relative", "Bundle", bundle("collection", entry("Patient/1", `{"resourceType":"Patient","id":"1"}`, "")), "Bundle.entry[0].fullUrl", "value"},
		{"bundle fullUrl mismatch", "Bundle", bundle("collection", entry("http://a.org/fhir/Patient/1", `{"resourceType":"Patient","id":"2"}`, "")), "Bundle.entry[0].fullUrl", "invariant"},
		{"bundle fullUrl type mismatch", "Bundle", bundle("collection", entry("http://a.org/fhir/Patient/1", `{"resourceType":"Group","id":"1","type":"person","actual":true}`, "")), "Bundle.entry[0].fullUrl", "invariant"},
		{"bundle fullUrl versioned", "Bundle", bundle("collection", entry("http://a.org/fhir/Patient/1/_history/1", `{"resourceType":"Patient","id":"1"}`, "")), "Bundle.entry[0].fullUrl", "invariant"},
		{"bundle duplicate fullUrl", "Bundle", bundle("collection", entry(uuid1, `{"resourceType":"Patient"}`, ""), entry(uuid1, `{"resourceType":"Patient"}`, "")), "Bundle.entry[1].fullUrl", "invariant"},
		{"bundle same fullUrl two versions", "Bundle", bundle("collection", entry("http://a.org/Patient/1", `{"resourceType":"Patient","id":"1","meta":{"versionId":"1"}}`, ""), entry("http://a.org/Patient/1", `{"resourceType":"Patient","id":"1","meta":{"versionId":"2"}}`, "")), "", ""},
		{"bundle request missing", "Bundle", bundle("transaction", entry(uuid1, `{"resourceType":"Patient"}`, "")), "Bundle.entry[0]", "invariant"},
		{"bundle request not allowed", "Bundle", bundle("collection", entry(uuid1, `{"resourceType":"Patient"}`, post("Patient"))), "Bundle.entry[0].request", "invariant"},
		{"bundle total", "Bundle", `{"resourceType":"Bundle","type":"collection","total":1}`, "Bundle.total", "invariant"},
		{"bundle empty entry", "Bundle", `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"` + uuid1 + `"}]}`, "Bundle.entry[0]", "invariant"},
		{"bundle document first", "Bundle", `{"resourceType":"Bundle","type":"document","identifier":{"system":"urn:ietf:rfc:3986","value":"` + uuid2 + `"},"timestamp":"2020-01-01T00:00:00Z","entry":[` + entry(uuid1, `{"resourceType":"Patient"}`, "") + `]}`, "Bundle.entry", "invariant"},
		{"bundle document identifier", "Bundle", `{"resourceType":"Bundle","type":"document","timestamp":"2020-01-01T00:00:00Z"}`, "Bundle.identifier", "invariant"},
		{"bundle urn unresolved", "Bundle", bundle("transaction", entry(uuid2, obsRefBody(uuid1), post("Observation"))), "Bundle.entry[0].resource.subject.reference", "invalid"},
		{"bundle version missing", "Bundle", bundle("collection", entry("http://a.org/Patient/1", `{"resourceType":"Patient","id":"1","meta":{"versionId":"1"}}`, ""), entry("http://a.org/Observation/2", obsRefBody("Patient/1/_history/2"), "")), "Bundle.entry[1].resource.subject.reference", "invalid"},
		{"bundle version found", "Bundle", bundle("collection", entry("http://a.org/Patient/1", `{"resourceType":"Patient","id":"1","meta":{"versionId":"1"}}`, ""), entry("http://a.org/Observation/2", obsRefBody("Patient/1/_history/1"), "")), "", ""},
		{"bundle ambiguous", "Bundle", bundle("collection", entry("http://a.org/Patient/1", `{"resourceType":"Patient","id":"1","meta":{"versionId":"1"}}`, ""), entry("http://a.org/Patient/1", `{"resourceType":"Patient","id":"1","meta":{"versionId":"2"}}`, ""), entry("http://a.org/Observation/2", obsRefBody("Patient/1"), "")), "Bundle.entry[2].resource.subject.reference", "invalid"},
		{"bundle in bundle", "Bundle", bundle("collection", entry(uuid1, bundle("collection", entry("x", `{"resourceType":"Patient"}`, "")), "")), "Bundle.entry[0].resource.entry[0].fullUrl", "value"},
	}
	v := validate.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issues := check(t, v, tt.typ, tt.body)
			if tt.wantExpr == "" {
				if issues != nil {
					t.Errorf("%s: got issues%s\nwant valid", tt.body, show(issues))
				}
				return
			}
			for _, is := range issues {
				if is.Expression[0] == tt.wantExpr && is.Code == tt.wantCode {
					return
				}
			}
			t.Errorf("%s: got%s\nwant %s at %s", tt.body, show(issues), tt.wantCode, tt.wantExpr)
		})
	}
}

func obsRef(ref string) string {
	return obsRefBody(ref)
}

func obsRefBody(ref string) string {
	return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":` + quote(ref) + `}}`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func bundle(typ string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

func entry(fullURL, resource, request string) string {
	e := `{"fullUrl":` + quote(fullURL) + `,"resource":` + resource
	if request != "" {
		e += `,"request":` + request
	}
	return e + "}"
}

func post(typ string) string { return `{"method":"POST","url":"` + typ + `"}` }

// TestAllIssues: Validate reports every problem, not the first.
func TestAllIssues(t *testing.T) {
	validate.CrossCheck(t)
	body := `{"resourceType":"Patient","id":"a b","gender":"x","birthDate":"2023-02-30","foo":1,
		"name":[{"given":["a"],"_given":[null,null]}],"generalPractitioner":[{"reference":"Practitioner/"}]}`
	issues := check(t, validate.New(), "Patient", body)
	want := []string{"Patient.birthDate", "Patient.foo", "Patient.gender", "Patient.generalPractitioner[0].reference",
		"Patient.id", "Patient.name[0].given"}
	got := make(map[string]bool)
	for _, is := range issues {
		got[is.Expression[0]] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no issue at %s; got%s", w, show(issues))
		}
	}
	// Sorted by expression, so a client sees a stable outcome.
	for i := 1; i < len(issues); i++ {
		if issues[i-1].Expression[0] > issues[i].Expression[0] {
			t.Errorf("issues not sorted by expression:%s", show(issues))
			break
		}
	}
}

// TestEveryType: each of the 146 R4 resource types compiles (the
// cross-check runs every body through its type's compiled schema), and a
// bare {"resourceType": T} is accepted unless T's schema requires elements,
// in which case exactly those are reported as required, or an invariant of
// T needs one of its elements (bareInvariants), reported at T.
func TestEveryType(t *testing.T) {
	// An Organization has a name or an identifier (org-1).
	bareInvariants := map[string]string{"Organization": "org-1"}
	validate.CrossCheck(t)
	var doc struct {
		Definitions map[string]struct {
			Required []string `json:"required"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(conformance.SchemaJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	types := conformance.ResourceTypes()
	if len(types) != 146 {
		t.Fatalf("got %d resource types, want 146", len(types))
	}
	v := validate.New()
	for _, typ := range types {
		issues := check(t, v, typ, `{"resourceType":"`+typ+`"}`)
		want := make(map[string]bool)
		for _, r := range doc.Definitions[typ].Required {
			if r != "resourceType" {
				want[typ+"."+r] = true
			}
		}
		for _, r := range validate.RequiredPrimitives[typ] {
			want[typ+"."+r] = true
		}
		rule := bareInvariants[typ]
		if rule != "" {
			want[typ] = true
		}
		for _, is := range issues {
			if rule != "" && is.Code == "invariant" && is.Expression[0] == typ && strings.Contains(is.Diagnostics, "("+rule+")") {
				delete(want, typ)
				continue
			}
			if is.Code != "required" || !want[is.Expression[0]] {
				t.Errorf("%s: unexpected issue %s at %s: %s", typ, is.Code, is.Expression[0], is.Diagnostics)
			}
			delete(want, is.Expression[0])
		}
		for w := range want {
			t.Errorf("%s: no required or invariant issue for %s", typ, w)
		}
	}
}

// TestConcurrent validates from several goroutines at once, first use
// included (lazy loading and compiling), for the race detector.
func TestConcurrent(t *testing.T) {
	v := validate.New()
	bodies := map[string]string{
		"Patient":      `{"resourceType":"Patient","birthDate":"2000-01-01"}`,
		"Observation":  obsRefBody("Patient/1"),
		"Encounter":    fmt.Sprintf(period, `{"start":"2023-06-21"}`),
		"Immunization": `{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/1"},"occurrenceDateTime":"2020-01-01"}`,
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		for typ, body := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := v.Validate(typ, []byte(body)); err != nil {
					t.Errorf("%s: %v", typ, err)
				}
				if err := v.Validate(typ, []byte(`{"resourceType":"`+typ+`","foo":1}`)); fhir.KindOf(err) != fhir.Invalid {
					t.Errorf("%s with an unknown element: got %v, want an Invalid error", typ, err)
				}
			}()
		}
	}
	wg.Wait()
}
