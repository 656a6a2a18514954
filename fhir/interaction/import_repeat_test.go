package interaction_test

import (
	"fmt"
	"strings"
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
)

// TestImportConsecutiveRepeatsKeepChunkSize: an NDJSON file that holds two
// versions of each resource one after the other (an export with history)
// must still be written in chunks of about ChunkSize lines: ImportOptions
// documents ChunkSize as "the resources per transaction". The split of a
// repeat to the next flush cuts every chunk down to the first repeat, so
// each flush commits one resource and re-validates the other ChunkSize-2
// lines: one transaction (and fsync) per resource and ChunkSize times the
// validation work.
func TestImportConsecutiveRepeatsKeepChunkSize(t *testing.T) {
	const ids, chunk = 200, 100
	var b strings.Builder
	for i := range ids {
		fmt.Fprintf(&b, `{"resourceType":"Patient","id":"p%d","gender":"male"}`+"\n", i)
		fmt.Fprintf(&b, `{"resourceType":"Patient","id":"p%d","gender":"female"}`+"\n", i)
	}
	svc := newService(t)
	commits := 0
	stats, _ := runImport(t, svc, "h.ndjson", b.String(), interaction.ImportOptions{ChunkSize: chunk,
		Progress: func(interaction.ImportStats) { commits++ }})
	if stats.Read != 2*ids || stats.Created != ids || stats.Failed != ids {
		t.Errorf("stats %+v, want Read %d Created %d Failed %d", stats, 2*ids, ids, ids)
	}
	if limit := 2*2*ids/chunk + 2; commits > limit {
		t.Errorf("%d lines in chunks of %d took %d transactions (want at most %d)", 2*ids, chunk, commits, limit)
	}
}

// TestImportStrictRepeatCommitsNothingOfItsChunk: ImportOptions.Strict
// "stops at the first invalid line; the chunk in progress is not
// committed". Two lines, the second a repeat of the first's Type/id (an
// invalid line: "an import takes each resource once"), in one chunk of
// 1000: the run stops at line 2 and its chunk, line 1 included, is not
// written.
func TestImportStrictRepeatCommitsNothingOfItsChunk(t *testing.T) {
	in := `{"resourceType":"Patient","id":"PID","gender":"male"}` + "\n" +
		`{"resourceType":"Patient","id":"PID","gender":"female"}` + "\n"
	svc := newService(t)
	im := svc.NewImporter(auth.Local(), interaction.ImportOptions{Strict: true, ChunkSize: 1000})
	err := im.Read(ctx, "s.ndjson", strings.NewReader(in))
	if err == nil {
		_, err = im.Finish(ctx)
	}
	if err == nil {
		t.Fatal("Strict import of a repeated Type/id did not stop")
	}
	t.Logf("stopped: %v", err)
	if r, rerr := svc.Read(ctx, auth.Local(), "Patient", "PID"); rerr == nil {
		t.Errorf("Strict stopped at line 2, but line 1 of the same chunk was committed: %s", r.JSON)
	}
}
