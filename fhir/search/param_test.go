package search_test

import (
	"encoding/json"
	"strings"
	"testing"

	"healthhub/conformance"
	"healthhub/fhir/search"
)

func TestRegistryLoadsTheExchangeTypes(t *testing.T) {
	r, err := search.Load()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ, code string
		kind      search.Type
		expr      string
	}{
		{"Patient", "birthdate", search.Date, "Patient.birthDate"},
		{"Patient", "_id", search.Token, "Resource.id"},
		{"Patient", "email", search.Token, "Patient.telecom.where(system='email')"},
		{"Observation", "value-quantity", search.Quantity, "(Observation.value as Quantity) | (Observation.value as SampledData)"},
		{"Observation", "patient", search.Reference, "Observation.subject.where(resolve() is Patient)"},
		{"Encounter", "date", search.Date, "Encounter.period"},
		{"Appointment", "actor", search.Reference, "Appointment.participant.actor"},
		{"Practitioner", "family", search.String, "Practitioner.name.family"},
		{"Organization", "name", search.String, "Organization.name | Organization.alias"},
	}
	for _, tt := range tests {
		p, ok := r.Lookup(tt.typ, tt.code)
		if !ok {
			t.Errorf("%s?%s: not in the registry", tt.typ, tt.code)
			continue
		}
		if p.Type != tt.kind || p.Expression != tt.expr {
			t.Errorf("%s?%s: got %s %q, want %s %q", tt.typ, tt.code, p.Type, p.Expression, tt.kind, tt.expr)
		}
	}
	cvq, _ := r.Lookup("Observation", "code-value-quantity")
	if cvq == nil || len(cvq.Components) != 2 || cvq.Components[1].Param.Type != search.Quantity {
		t.Errorf("code-value-quantity components: %+v", cvq)
	}
	for _, code := range []string{"_text", "_content", "_query", "phonetic"} {
		if _, ok := r.Lookup("Patient", code); ok {
			t.Errorf("Patient?%s is in the registry, but the server cannot evaluate it", code)
		}
	}
}

// TestUnionParameters: exactly Observation's combo-* parameters are found to
// be unions of two others, and the patient-like ones, the parts of a name or
// an address and the phone and email of telecom to be narrowings of a wider
// parameter (so none of them has an index of its own); _id is not stored
// either; everything else is.
func TestUnionParameters(t *testing.T) {
	r, err := search.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Observation combo-code":                "code component-code",
		"Observation combo-code-value-concept":  "code-value-concept component-code-value-concept",
		"Observation combo-code-value-quantity": "code-value-quantity component-code-value-quantity",
		"Observation combo-data-absent-reason":  "data-absent-reason component-data-absent-reason",
		"Observation combo-value-concept":       "value-concept component-value-concept",
		"Observation combo-value-quantity":      "value-quantity component-value-quantity",
	}
	wantWithin := map[string]string{
		"Observation patient":      "subject Patient",
		"Encounter patient":        "subject Patient",
		"Encounter practitioner":   "participant Practitioner",
		"Appointment patient":      "actor Patient",
		"Appointment practitioner": "actor Practitioner",
		"Appointment location":     "actor Location",
	}
	for _, typ := range []string{"Patient", "Practitioner", "Organization"} {
		for _, part := range []string{"city", "country", "postalcode", "state"} {
			wantWithin[typ+" address-"+part] = "address "
		}
	}
	for _, typ := range []string{"Patient", "Practitioner"} {
		wantWithin[typ+" family"], wantWithin[typ+" given"] = "name ", "name "
		wantWithin[typ+" phone"], wantWithin[typ+" email"] = "telecom ", "telecom "
	}
	for _, typ := range search.SearchTypes {
		for _, p := range r.Params(typ) {
			var members []string
			for _, m := range p.UnionOf {
				members = append(members, m.Code)
			}
			got := strings.Join(members, " ")
			if got != want[typ+" "+p.Code] {
				t.Errorf("%s?%s: union of %q, want %q", typ, p.Code, got, want[typ+" "+p.Code])
			}
			within := ""
			if p.Within != nil {
				within = p.Within.Code + " " + p.WithinType
			}
			if within != wantWithin[typ+" "+p.Code] {
				t.Errorf("%s?%s: within %q, want %q", typ, p.Code, within, wantWithin[typ+" "+p.Code])
			}
			if stored := got == "" && within == "" && p.Code != "_id"; p.Stored() != stored {
				t.Errorf("%s?%s: Stored() = %v, want %v", typ, p.Code, p.Stored(), stored)
			}
		}
	}
}

// TestBoundCodeSystems: the token parameters that carry a code system of
// their own are exactly those whose expression, for a type of SearchTypes,
// names an element the official schema gives as an enumeration of codes
// (a FHIR code with a required binding), so the table cannot miss one or
// name a parameter that the definitions change.
func TestBoundCodeSystems(t *testing.T) {
	r, err := search.Load()
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Definitions map[string]schemaDef `json:"definitions"`
	}
	if err := json.Unmarshal(conformance.SchemaJSON(), &schema); err != nil {
		t.Fatal(err)
	}
	var bound int
	for _, typ := range search.SearchTypes {
		for _, p := range r.Params(typ) {
			enum := p.Type == search.Token && schemaEnum(schema.Definitions, p.Expression)
			switch {
			case enum && !strings.HasPrefix(p.CodeSystem, "http://hl7.org/fhir/"):
				t.Errorf("%s?%s (%s) is over a code element, but has no code system", typ, p.Code, p.Expression)
			case !enum && p.CodeSystem != "":
				t.Errorf("%s?%s (%s) has code system %s, but is not over a code element", typ, p.Code, p.Expression, p.CodeSystem)
			case enum:
				bound++
			}
		}
	}
	if bound != 9 { // gender ×2, address-use ×3, four statuses, part-status
		t.Errorf("%d parameters with a code system, want 9", bound)
	}
}

type schemaDef struct {
	Properties map[string]struct {
		Ref   string   `json:"$ref"`
		Enum  []string `json:"enum"`
		Items *struct {
			Ref string `json:"$ref"`
		} `json:"items"`
	} `json:"properties"`
}

// schemaEnum reports whether expr is a plain path (Type.a.b) to an element
// the schema gives as an enum.
func schemaEnum(defs map[string]schemaDef, expr string) bool {
	parts := strings.Split(expr, ".")
	def, ok := defs[parts[0]]
	for i, name := range parts[1:] {
		if !ok {
			return false
		}
		prop, found := def.Properties[name]
		if !found {
			return false
		}
		if i == len(parts)-2 {
			return len(prop.Enum) > 0
		}
		ref := prop.Ref
		if prop.Items != nil {
			ref = prop.Items.Ref
		}
		def, ok = defs[strings.TrimPrefix(ref, "#/definitions/")]
	}
	return false
}
