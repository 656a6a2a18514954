package validate_test

import (
	"os"
	"testing"

	"healthhub/fhir/validate"
)

// BenchmarkValidatePatient validates a typical Synthea Patient (US Core
// profile, race/ethnicity extensions, narrative, identifiers, address with
// geolocation): the door every Patient write goes through.
func BenchmarkValidatePatient(b *testing.B) {
	body, err := os.ReadFile("testdata/synthea-patient.json")
	if err != nil {
		b.Fatal(err)
	}
	v := validate.New()
	if err := v.Validate("Patient", body); err != nil {
		b.Fatalf("the benchmark Patient is not valid: %v", err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Validate("Patient", body); err != nil {
			b.Fatal(err)
		}
	}
}
