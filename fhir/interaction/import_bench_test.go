package interaction_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"healthhub/auth"
	"healthhub/fhir/interaction"
	"healthhub/fhir/search"
	"healthhub/fhir/validate"
	"healthhub/store"
)

// syntheaDir is the Synthea 10-patient bulk export (shared/data), when the
// checkout has it beside the repository.
const syntheaDir = "../../../shared/data/synthea-10"

// syntheaFiles reads the resource files of the Synthea export in import
// order (targets of conditional references first), or skips.
func syntheaFiles(tb testing.TB) (names []string, data [][]byte, lines int) {
	tb.Helper()
	order := []string{"Organization", "Location", "Practitioner", "PractitionerRole", "Patient",
		"AllergyIntolerance", "Condition", "Device", "DocumentReference", "Encounter", "Immunization", "MedicationRequest", "Procedure"}
	for _, typ := range order {
		name := filepath.Join(syntheaDir, typ+".000.ndjson")
		b, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			tb.Skipf("the Synthea export is not at %s (shared/data is not checked out): skipped", syntheaDir)
		}
		if err != nil {
			tb.Fatal(err)
		}
		names = append(names, name)
		data = append(data, b)
		lines += bytes.Count(b, []byte("\n"))
	}
	return names, data, lines
}

// BenchmarkImportSynthea imports the Synthea export (7,160 resources, 10
// MB; validated, conditional references resolved, indexed) into an empty
// store per iteration and reports resources/s.
//
//	go test ./fhir/interaction -run '^$' -bench ImportSynthea -benchtime 5x
//
// HEALTHHUB_BENCH_IMPORT_CHUNK sets the resources per transaction (default
// interaction.DefaultImportChunk, as the command's --chunk).
func BenchmarkImportSynthea(b *testing.B) {
	names, data, lines := syntheaFiles(b)
	chunk := 0
	if s := os.Getenv("HEALTHHUB_BENCH_IMPORT_CHUNK"); s != "" {
		var err error
		if chunk, err = strconv.Atoi(s); err != nil {
			b.Fatalf("HEALTHHUB_BENCH_IMPORT_CHUNK=%q: %v", s, err)
		}
	}
	reg, err := search.Load()
	if err != nil {
		b.Fatal(err)
	}
	v := validate.New()
	ctx := context.Background()
	defer debug.SetGCPercent(debug.SetGCPercent(interaction.ImportGCPercent)) // as the command runs
	importOnce := func() {
		st, err := store.Open(b.TempDir(), store.Options{InitialMmapSize: interaction.ImportMmapSize, Indexer: interaction.NewIndexer(reg)})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		im := interaction.New(st, v, reg).NewImporter(auth.Local(), interaction.ImportOptions{ChunkSize: chunk})
		for i, name := range names {
			if err := im.Read(ctx, name, bytes.NewReader(data[i])); err != nil {
				b.Fatal(err)
			}
		}
		stats, err := im.Finish(ctx)
		if err != nil || stats.Failed > 0 || stats.Created != lines {
			b.Fatalf("import: %+v, %v; want %d created", stats, err, lines)
		}
	}
	// Warm up: the schemas compile on first use, once per process (the
	// command pays that once per run).
	importOnce()
	cpu0 := processCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		importOnce() // an empty store each time; its open and close are ~1 ms
	}
	b.ReportMetric(float64(lines*b.N)/b.Elapsed().Seconds(), "resources/s")
	// CPU per resource is the steadier figure on a shared machine: with
	// two cores, 10,000 resources/s needs well under 200 µs of it.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(lines*b.N), "cpu-µs/resource")
}

// processCPU is the user and system CPU time of this process so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
