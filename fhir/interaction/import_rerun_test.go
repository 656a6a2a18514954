package interaction_test

import (
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
)

// TestImportRerunAddsNothingWithDeferredFirstLine: the first of two lines
// with one Type/id waits for the second pass (its conditional reference
// names an Organization further on); the second line commits meanwhile.
// On a rerun the reference resolves at once, so the first line commits
// and the second is the duplicate: the rerun writes a new version, while
// "running the same import twice adds nothing".
func TestImportRerunAddsNothingWithDeferredFirstLine(t *testing.T) {
	svc := newService(t)
	in := `{"resourceType":"Patient","id":"PID","gender":"male","managingOrganization":{"reference":"Organization?identifier=urn:o|late"}}` + "\n" +
		`{"resourceType":"Patient","id":"PID","gender":"female"}` + "\n" +
		`{"resourceType":"Organization","id":"late","identifier":[{"system":"urn:o","value":"late"}]}` + "\n"
	versions := func() int {
		t.Helper()
		page, err := svc.History(ctx, auth.Local(), interaction.HistoryRequest{Type: "Patient", ID: "PID"})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Entries)
	}
	run := func() interaction.ImportStats {
		t.Helper()
		stats, _ := runImport(t, svc, "p.ndjson", in, interaction.ImportOptions{ChunkSize: 2})
		return stats
	}
	for i := range 2 {
		stats := run()
		r, err := svc.Read(ctx, auth.Local(), "Patient", "PID")
		if err != nil {
			t.Fatal(err)
		}
		if got := versions(); got != 1 {
			t.Errorf("run %d (%+v): Patient/PID has %d versions, want 1; current %s", i+1, stats, got, r.JSON)
		}
	}
}

// TestImportDuplicateLineIsNoReferenceTarget: a line refused as a
// duplicate of an earlier Type/id is not imported, so a conditional
// reference by an identifier only it carries must not resolve to that id
// (whose stored version does not carry the identifier).
func TestImportDuplicateLineIsNoReferenceTarget(t *testing.T) {
	svc := newService(t)
	in := `{"resourceType":"Patient","id":"PID","identifier":[{"system":"urn:p","value":"a"}]}` + "\n" +
		`{"resourceType":"Patient","id":"PID","identifier":[{"system":"urn:p","value":"b"}]}` + "\n" +
		`{"resourceType":"Observation","id":"obs","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:p|b"}}` + "\n"
	stats, reports := runImport(t, svc, "p.ndjson", in, interaction.ImportOptions{})
	if r, err := svc.Read(ctx, auth.Local(), "Observation", "obs"); err == nil {
		p, _ := svc.Read(ctx, auth.Local(), "Patient", "PID")
		t.Errorf("Observation/obs imported with a reference resolved through the refused duplicate line (%+v, reports %q):\n%s\nPatient/PID: %s", stats, reports, r.JSON, p.JSON)
	}
}
