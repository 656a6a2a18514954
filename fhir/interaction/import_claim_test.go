package interaction_test

import (
	"fmt"
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
)

// TestImportLineFailingAfterClaimReleasesIDInSameChunk: a line that claims
// its Type/id and then fails while its references resolve (here: its
// conditional reference matches two Organizations) gives its Type/id back
// "to the lines read after that". Whether a later valid line of the same
// Type/id is imported must not depend on the chunk size.
func TestImportLineFailingAfterClaimReleasesIDInSameChunk(t *testing.T) {
	in := `{"resourceType":"Organization","id":"o1","identifier":[{"system":"urn:o","value":"dup"}]}` + "\n" +
		`{"resourceType":"Organization","id":"o2","identifier":[{"system":"urn:o","value":"dup"}]}` + "\n" +
		`{"resourceType":"Patient","id":"PID","managingOrganization":{"reference":"Organization?identifier=urn:o|dup"}}` + "\n" +
		`{"resourceType":"Patient","id":"PID","gender":"female"}` + "\n"
	for _, chunk := range []int{1, 1000} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			svc := newService(t)
			stats, reports := runImport(t, svc, "p.ndjson", in, interaction.ImportOptions{ChunkSize: chunk})
			if _, err := svc.Read(ctx, auth.Local(), "Patient", "PID"); err != nil {
				t.Errorf("the valid line 4 was not imported after line 3 failed (multiple matches): %v (%+v, reports %q)", err, stats, reports)
			}
		})
	}
}
