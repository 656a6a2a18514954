package validate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"healthhub/fhir/validate"
)

const (
	syntheaDir        = "../../../shared/data/synthea-10"
	syntheaBundlesDir = "../../../shared/data/synthea-bundles-10"
)

// TestSynthea validates every resource of the Synthea bulk export (7,160
// resources of 13 types): all are valid R4. The first resources of each file
// also go through the schema library, cross-checking the walk.
func TestSynthea(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(syntheaDir, "*.ndjson"))
	if len(files) == 0 {
		t.Skipf("Synthea data not found at %s (the shared data directory is not checked out)", syntheaDir)
	}
	v := validate.New()
	total := 0
	for _, f := range files {
		if filepath.Base(f) == "log.ndjson" {
			continue // the export's log, not resources
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
		run := func(t *testing.T, lines [][]byte, first int) {
			for i, body := range lines {
				var head struct{ ResourceType string }
				if err := json.Unmarshal(body, &head); err != nil {
					t.Fatalf("%s line %d: %v", filepath.Base(f), first+i+1, err)
				}
				if err := v.Validate(head.ResourceType, body); err != nil {
					t.Errorf("%s line %d (%s): %v", filepath.Base(f), first+i+1, head.ResourceType, err)
				}
				total++
			}
		}
		sample := min(len(lines), 20)
		t.Run(filepath.Base(f)+"/cross-checked", func(t *testing.T) {
			validate.CrossCheck(t)
			run(t, lines[:sample], 0)
		})
		run(t, lines[sample:], sample)
	}
	if total < 7000 {
		t.Errorf("validated %d resources, want the 7,160 of the export", total)
	}
}

// TestSyntheaBundles validates the ten Synthea transaction Bundles (about
// 1,500 entries, urn:uuid: references between them): all valid.
func TestSyntheaBundles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(syntheaBundlesDir, "*-*-*-*-*.json"))
	if len(files) == 0 {
		t.Skipf("Synthea Bundles not found at %s (the shared data directory is not checked out)", syntheaBundlesDir)
	}
	v := validate.New()
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate("Bundle", body); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}
