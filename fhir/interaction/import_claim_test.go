package interaction_test

import (
	"fmt"
	"strings"
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
			var reports []string
			im := svc.NewImporter(auth.Local(), interaction.ImportOptions{ChunkSize: chunk, Report: func(e *interaction.LineError) { reports = append(reports, e.Error()) }})
			if err := im.Read(ctx, "p.ndjson", strings.NewReader(in)); err != nil {
				t.Fatal(err)
			}
			stats, err := im.Finish(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Read(ctx, auth.Local(), "Patient", "PID"); err != nil {
				t.Errorf("the valid line 4 was not imported after line 3 failed (multiple matches): %v (%+v, reports %q)", err, stats, reports)
			}
		})
	}
}
