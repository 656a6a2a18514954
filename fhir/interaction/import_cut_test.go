package interaction_test

import (
	"fmt"
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
)

// Line 4 (before the cut at line 5, a repeat whose claimant line 3 failed)
// refers forward to RelatedPerson/l (line 7, after the cut). In the first
// flush line 7 resolves (Patient?identifier=urn:p|J matches Patient/m only)
// and is accepted, so line 4 resolves to RelatedPerson/l and commits. In the
// next flush line 5 (Patient/c, urn:p|J) is accepted too, line 7's reference
// matches two Patients and line 7 fails: line 4 is stored pointing at a
// resource the import never wrote.
func TestImportCutForwardRefToLineThatFailsAfterCut(t *testing.T) {
	in := `{"resourceType":"Organization","id":"o1","identifier":[{"system":"urn:o","value":"dup"}]}` + "\n" +
		`{"resourceType":"Organization","id":"o2","identifier":[{"system":"urn:o","value":"dup"}]}` + "\n" +
		`{"resourceType":"Patient","id":"c","managingOrganization":{"reference":"Organization?identifier=urn:o|dup"}}` + "\n" +
		`{"resourceType":"Observation","id":"a","status":"final","code":{"text":"x"},"performer":[{"reference":"RelatedPerson?identifier=urn:r|L"}]}` + "\n" +
		`{"resourceType":"Patient","id":"c","identifier":[{"system":"urn:p","value":"J"}]}` + "\n" +
		`{"resourceType":"Patient","id":"m","identifier":[{"system":"urn:p","value":"J"}]}` + "\n" +
		`{"resourceType":"RelatedPerson","id":"l","identifier":[{"system":"urn:r","value":"L"}],"patient":{"reference":"Patient?identifier=urn:p|J"}}` + "\n"
	for _, chunk := range []int{1, 1000} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			svc := newService(t)
			stats, reports := runImport(t, svc, "p.ndjson", in, interaction.ImportOptions{ChunkSize: chunk})
			t.Logf("stats %+v reports %q", stats, reports)
			_, errL := svc.Read(ctx, auth.Local(), "RelatedPerson", "l")
			if r, err := svc.Read(ctx, auth.Local(), "Observation", "a"); err == nil && errL != nil {
				t.Errorf("Observation/a stored referring to RelatedPerson/l, which was not imported (%v): %s", errL, r.JSON)
			}
		})
	}
}
