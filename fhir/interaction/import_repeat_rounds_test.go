package interaction_test

import (
	"fmt"
	"strings"
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
)

// Three lines of Patient/PID in one chunk: the first two fail after claiming
// (their conditional references match two Organizations), the third is valid.
// The third must be imported whatever the chunk size.
func TestImportThirdRepeatAfterTwoFailedClaimants(t *testing.T) {
	in := `{"resourceType":"Organization","id":"o1","identifier":[{"system":"urn:o","value":"dup"}]}` + "\n" +
		`{"resourceType":"Organization","id":"o2","identifier":[{"system":"urn:o","value":"dup"}]}` + "\n" +
		`{"resourceType":"Patient","id":"PID","gender":"male","managingOrganization":{"reference":"Organization?identifier=urn:o|dup"}}` + "\n" +
		`{"resourceType":"Patient","id":"PID","gender":"other","managingOrganization":{"reference":"Organization?identifier=urn:o|dup"}}` + "\n" +
		`{"resourceType":"Patient","id":"PID","gender":"female"}` + "\n"
	for _, chunk := range []int{1, 1000} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			svc := newService(t)
			stats, reports := runImport(t, svc, "p.ndjson", in, interaction.ImportOptions{ChunkSize: chunk})
			if want := (interaction.ImportStats{Read: 5, Created: 3, Failed: 2}); stats != want {
				t.Errorf("stats %+v, want %+v; reports %q", stats, want, reports)
			}
			if r, err := svc.Read(ctx, auth.Local(), "Patient", "PID"); err != nil {
				t.Errorf("the valid line 5 was not imported after lines 3 and 4 failed: %v (%+v, reports %q)", err, stats, reports)
			} else if !strings.Contains(string(r.JSON), `"female"`) {
				t.Errorf("Patient/PID = %s, want line 5", r.JSON)
			}
		})
	}
}

// A repeat that takes over a failed claimant's Type/id is accepted by the run
// before the lines after it: a later line's conditional reference by an
// identifier it carries must see it (here: and so match two Patients, which
// fails the reference), whatever the chunk size.
func TestImportRepeatIdentifiersVisibleToLaterLines(t *testing.T) {
	in := `{"resourceType":"Organization","id":"o1","identifier":[{"system":"urn:o","value":"dup"}]}` + "\n" +
		`{"resourceType":"Organization","id":"o2","identifier":[{"system":"urn:o","value":"dup"}]}` + "\n" +
		`{"resourceType":"Patient","id":"PID","managingOrganization":{"reference":"Organization?identifier=urn:o|dup"}}` + "\n" +
		`{"resourceType":"Patient","id":"PID","identifier":[{"system":"urn:p","value":"x"}]}` + "\n" +
		`{"resourceType":"Patient","id":"q","identifier":[{"system":"urn:p","value":"x"}]}` + "\n" +
		`{"resourceType":"Observation","id":"obs","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:p|x"}}` + "\n"
	for _, chunk := range []int{1, 1000} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			svc := newService(t)
			stats, reports := runImport(t, svc, "p.ndjson", in, interaction.ImportOptions{ChunkSize: chunk})
			if want := (interaction.ImportStats{Read: 6, Created: 4, Failed: 2}); stats != want {
				t.Errorf("stats %+v, want %+v; reports %q", stats, want, reports)
			}
			if r, err := svc.Read(ctx, auth.Local(), "Observation", "obs"); err == nil {
				t.Errorf("Observation/obs imported although Patient?identifier=urn:p|x matches Patient/PID (line 4) and Patient/q (line 5): %s", r.JSON)
			}
		})
	}
}
