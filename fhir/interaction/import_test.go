package interaction_test

import (
	"context"
	"strings"
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
)

// The reader's edge cases: a UTF-8 BOM, CRLF line ends, blank lines, a
// last line without a newline, and a line over the limit (reported by its
// number, skipped whole, the next line read normally).
func TestImportLines(t *testing.T) {
	var reported []string
	svc := newService(t)
	im := svc.NewImporter(auth.Local(), interaction.ImportOptions{
		MaxLine: 200,
		Report:  func(e *interaction.LineError) { reported = append(reported, e.Error()) },
	})
	long := `{"resourceType":"Patient","id":"long","name":[{"family":"` + strings.Repeat("x", 300) + `"}]}`
	in := "\xef\xbb\xbf" + `{"resourceType":"Patient","id":"bom"}` + "\r\n" +
		"\r\n" +
		"   \n" +
		long + "\n" +
		`{"resourceType":"Patient","id":"after-long"}` + "\r\n" +
		`{"resourceType":"Patient","id":"no-newline"}`
	ctx := context.Background()
	if err := im.Read(ctx, "lines.ndjson", strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	stats, err := im.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (interaction.ImportStats{Read: 4, Created: 3, Failed: 1}); stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
	if len(reported) != 1 || !strings.HasPrefix(reported[0], "lines.ndjson:4: line longer than 200 bytes") {
		t.Errorf("reported %q, want lines.ndjson:4 too long", reported)
	}
	for _, id := range []string{"bom", "after-long", "no-newline"} {
		if _, err := svc.Read(ctx, auth.Local(), "Patient", id); err != nil {
			t.Errorf("Patient/%s: %v", id, err)
		}
	}
}
