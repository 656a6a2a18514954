package search_test

import (
	"testing"

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
