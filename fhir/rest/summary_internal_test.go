package rest

// White-box: subset and the summary table are internal to the REST layer;
// conformance/search_test.go checks the same through HTTP.

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"healthhub/conformance"
	"healthhub/fhir"
	"healthhub/fhir/search"
)

func TestSummaryTrue(t *testing.T) {
	tests := []struct {
		typ, json     string
		kept, dropped []string
	}{
		{"Patient", `{"gender":"female","deceasedBoolean":false,"_birthDate":{"extension":[]},"birthDate":"1970","maritalStatus":{"text":"S"},"multipleBirthInteger":2,"text":{"status":"empty"},"extension":[],"modifierExtension":[],"language":"en"}`,
			[]string{"gender", "deceasedBoolean", "_birthDate", "birthDate", "modifierExtension"}, []string{"maritalStatus", "multipleBirthInteger", "text", "extension", "language"}},
		{"Practitioner", `{"name":[{"family":"X"}],"birthDate":"1970","qualification":[{"code":{"text":"MD"}}],"photo":[]}`,
			[]string{"name", "birthDate"}, []string{"qualification", "photo"}},
		{"Organization", `{"active":true,"name":"Org","partOf":{"reference":"Organization/1"},"alias":["O"],"telecom":[]}`,
			[]string{"active", "name", "partOf"}, []string{"alias", "telecom"}},
		{"Encounter", `{"status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/1"},"period":{"start":"2020"},"hospitalization":{},"contained":[]}`,
			[]string{"status", "class", "subject"}, []string{"period", "hospitalization", "contained"}},
		{"Observation", `{"status":"final","code":{"text":"x"},"effectiveDateTime":"2020","valueQuantity":{"value":1},"category":[{"text":"vital-signs"}],"interpretation":[],"note":[]}`,
			[]string{"status", "code", "effectiveDateTime", "valueQuantity"}, []string{"category", "interpretation", "note"}},
		{"Appointment", `{"status":"booked","start":"2020-01-01T10:00:00Z","participant":[{"status":"accepted"}],"description":"x","comment":"y"}`,
			[]string{"status", "start", "participant"}, []string{"description", "comment"}},
		{"Consent", `{"status":"active","scope":{"text":"x"},"category":[{"text":"y"}],"sourceReference":{"reference":"DocumentReference/1"},"policy":[{"uri":"urn:x"}]}`,
			[]string{"status", "scope", "category", "sourceReference"}, []string{"policy"}},
		{"AuditEvent", `{"type":{"code":"rest"},"recorded":"2020-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{}},"period":{},"entity":[]}`,
			[]string{"type", "recorded", "agent", "source"}, []string{"period", "entity"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			raw := `{"resourceType":"` + tt.typ + `","id":"a","meta":{"versionId":"1","tag":[{"code":"mine"}]},` + tt.json[1:]
			out, err := subset(&fhir.Resource{Type: tt.typ, JSON: []byte(raw)}, &search.Query{Summary: search.SummaryTrue})
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			for _, k := range append([]string{"resourceType", "id", "meta"}, tt.kept...) {
				if _, ok := got[k]; !ok {
					t.Errorf("%s lost %s: %s", tt.typ, k, out)
				}
			}
			for _, k := range tt.dropped {
				if _, ok := got[k]; ok {
					t.Errorf("%s kept %s: %s", tt.typ, k, out)
				}
			}
			if m := string(got["meta"]); !strings.Contains(m, `"code":"mine"`) || !strings.Contains(m, `"code":"SUBSETTED"`) {
				t.Errorf("%s meta: %s, want the resource's tag and SUBSETTED", tt.typ, m)
			}
		})
	}
}

// A summary that leaves nothing out is the resource itself, untagged.
func TestSummaryTrueNothingToDrop(t *testing.T) {
	raw := []byte(`{"resourceType":"Patient","id":"a","gender":"male"}`)
	out, err := subset(&fhir.Resource{Type: "Patient", JSON: raw}, &search.Query{Summary: search.SummaryTrue})
	if err != nil || string(out) != string(raw) {
		t.Errorf("got %s, %v; want the resource unchanged", out, err)
	}
}

// A type without a table is refused, never answered whole.
func TestSummaryTrueUnknownType(t *testing.T) {
	_, err := subset(&fhir.Resource{Type: "Basic", JSON: []byte(`{"resourceType":"Basic","id":"a","code":{"text":"x"}}`)}, &search.Query{Summary: search.SummaryTrue})
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.Invalid || !strings.Contains(fe.Error(), "Basic") {
		t.Errorf("Basic: %v, want a 400 naming the type", err)
	}
}

// Every searchable type has a table, so a search never meets the refusal
// above; and every name in a table is an element of its type in the R4
// schema, so a typo cannot silently drop an element.
func TestSummaryTablesCoverSearchTypes(t *testing.T) {
	for _, typ := range search.SearchTypes {
		if summaryElements[typ] == nil {
			t.Errorf("searchable type %s has no summary table", typ)
		}
	}
	var schema struct {
		Definitions map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(conformance.SchemaJSON(), &schema); err != nil {
		t.Fatal(err)
	}
	for typ, set := range summaryElements {
		props := schema.Definitions[typ].Properties
		for name := range set {
			_, found := props[name]
			if base, choice := strings.CutSuffix(name, "[x]"); choice {
				for p := range props {
					if len(p) > len(base) && strings.HasPrefix(p, base) && p[len(base)] >= 'A' && p[len(base)] <= 'Z' {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("%s.%s is not an element of %s in the R4 schema", typ, name, typ)
			}
		}
		for name := range resourceSummary {
			if _, ok := props[name]; !ok {
				t.Errorf("%s has no %s in the R4 schema", typ, name)
			}
		}
	}
}

// TestSummaryTextKeepsMandatory: _summary=text keeps the top-level
// mandatory elements too (R4 search.html#summary).
func TestSummaryTextKeepsMandatory(t *testing.T) {
	for _, tt := range []struct {
		typ, body string
		mandatory []string
	}{
		{"Observation", `"status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`, []string{"status", "code"}},
		{"Encounter", `"status":"finished","class":{"code":"AMB"},"period":{"start":"2020"}`, []string{"status", "class"}},
		{"Appointment", `"status":"booked","participant":[{"status":"accepted"}],"comment":"y"`, []string{"status", "participant"}},
	} {
		raw := `{"resourceType":"` + tt.typ + `","id":"a","meta":{"versionId":"1"},` + tt.body + `}`
		out, err := subset(&fhir.Resource{Type: tt.typ, JSON: []byte(raw)}, &search.Query{Summary: search.SummaryText})
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		for _, k := range tt.mandatory {
			if _, ok := got[k]; !ok {
				t.Errorf("%s with _summary=text lost the mandatory %s: %s", tt.typ, k, out)
			}
		}
	}
}

// TestElementsChoiceAndPrimitiveExtension: _elements names base elements:
// value is valueQuantity, and birthDate brings its _birthDate along.
func TestElementsChoiceAndPrimitiveExtension(t *testing.T) {
	for _, tt := range []struct {
		typ, body string
		elements  []string
		want      []string
	}{
		{"Observation", `"status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"effectiveDateTime":"2020"`, []string{"value", "effective"}, []string{"valueQuantity", "effectiveDateTime"}},
		{"Patient", `"birthDate":"1970","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-01-01T10:00:00Z"}]},"gender":"male"`, []string{"birthDate"}, []string{"birthDate", "_birthDate"}},
	} {
		raw := `{"resourceType":"` + tt.typ + `","id":"a","meta":{"versionId":"1"},` + tt.body + `}`
		out, err := subset(&fhir.Resource{Type: tt.typ, JSON: []byte(raw)}, &search.Query{Elements: tt.elements})
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		for _, k := range tt.want {
			if _, ok := got[k]; !ok {
				t.Errorf("%s with _elements=%v lost %s: %s", tt.typ, tt.elements, k, out)
			}
		}
	}
}

// TestMandatoryElements: the table of mandatory elements holds at least
// what the R4 JSON schema requires of each type in it, and the schema's
// lists load for the other types.
func TestMandatoryElements(t *testing.T) {
	required := schemaRequired()
	if len(required) < 140 || !required["Basic"]["code"] {
		t.Fatalf("the schema's required lists did not load: %d types, Basic %v", len(required), required["Basic"])
	}
	for typ, own := range mandatoryElements {
		for e := range required[typ] {
			if !own[e] {
				t.Errorf("%s: the schema requires %s, the table lacks it", typ, e)
			}
		}
	}
	keep := inSummaryText("Basic")
	if !keep("code") || keep("subject") || !keep("text") {
		t.Errorf("Basic _summary=text: code %v subject %v text %v", keep("code"), keep("subject"), keep("text"))
	}
}
