package interaction

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"healthhub/fhir"
	"healthhub/fhir/search"
)

// TestIndexFingerprintFollowsKeys: the index keys the Indexer derives from
// a fixed set of resources (this repository's fixtures) change only with
// its fingerprint. A store keeps no copy of a resource's keys: an update
// removes the keys derived from the version it replaces, so code that
// derives other keys than the code that indexed the file would leave the
// old ones behind. The fingerprint makes such a file refuse to open until
// it is reindexed; this test makes a change of the keys change it.
func TestIndexFingerprintFollowsKeys(t *testing.T) {
	const (
		wantFingerprint = "v2-8ee32e5bd276c9d8"
		wantKeys        = "792b41175e6d279657b729b4450280be"
	)
	reg, err := search.Load()
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndexer(reg)
	var files []string
	for _, pattern := range []string{"../../testdata/resources/*.json", "../../testdata/synthea-patient.json", "../search/testdata/extract/*.json"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	if len(files) < 15 {
		t.Fatalf("%d fixtures, want the repository's", len(files))
	}
	h := sha256.New()
	when := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	keys := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var head struct{ ResourceType string }
		if err := json.Unmarshal(body, &head); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		es, err := x.IndexEntries(&fhir.Resource{Type: head.ResourceType, ID: "golden", VersionID: 1, LastUpdated: when, JSON: body})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range es {
			fmt.Fprintf(h, "%s\t%s\t%x\n", filepath.Base(f), e.Param, e.Key)
			keys++
		}
	}
	got, fp := hex.EncodeToString(h.Sum(nil))[:32], x.IndexFingerprint()
	t.Logf("%d files, %d keys: %s; fingerprint %s", len(files), keys, got, fp)
	switch {
	case got == wantKeys && fp == wantFingerprint:
	case fp == wantFingerprint:
		t.Errorf("the fixtures' index keys changed (now %s, were %s) under the same fingerprint %s: bump search.ExtractionVersion, so that a store indexed before refuses to open until reindexed, then set wantFingerprint and wantKeys here", got, wantKeys, fp)
	default:
		t.Errorf("the fingerprint is now %s (was %s), the keys %s (were %s): set wantFingerprint and wantKeys here", fp, wantFingerprint, got, wantKeys)
	}
}
