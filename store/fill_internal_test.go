package store

import (
	"context"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"

	"healthhub/fhir"
)

// TestAppendFill: buckets written mostly in key order (rix by time-ordered
// id; ixj by sequence, TestAppendFillJournal) and the idx leaves a fold
// rewrites are filled to appendFill, not bbolt's default half: half-empty
// pages are twice the pages to write at every commit, and twice the file.
// The idx blocks in those leaves are full too (idxblock.go).
func TestAppendFill(t *testing.T) {
	s, err := Open(t.TempDir(), Options{IndexJournalMax: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	o, err := fhir.ParseObject([]byte(`{"resourceType":"Observation","status":"final"}`))
	if err != nil {
		t.Fatal(err)
	}
	for batch := range 40 {
		err := s.Update(ctx, func(tx Tx) error {
			for i := range 50 {
				id := fmt.Sprintf("id%06d", batch*50+i) // in order, as server-assigned ids are
				if _, err := tx.Put("Observation", id, o); err != nil {
					return err
				}
				err := tx.SetIndex("Observation", id, []IndexEntry{
					{Param: "code", Key: []byte("http://loinc.org|8867-4")},
					{Param: "status", Key: []byte("final")},
					{Param: "subject", Key: fmt.Appendf(nil, "Patient/%040d", i%7)},
					{Param: "text", Key: fmt.Appendf(nil, "%0900d", batch*50+i)}, // rix records ~1 kB, as an Observation's are
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FoldIndexJournal(ctx); err != nil {
		t.Fatal(err)
	}
	checkFill(t, s, [][]string{{"rix", "Observation"}, {"idx", "Observation", "code"}})
	checkBlockFill(t, s, [][]string{{"idx", "Observation", "code"}, {"idx", "Observation", "subject"}})
}

// TestAppendFillJournal: small writes make small journal records, many to
// a leaf page, which fill it as rix's do.
func TestAppendFillJournal(t *testing.T) {
	s, err := Open(t.TempDir(), Options{IndexJournalMax: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 600 {
		err := s.Update(context.Background(), func(tx Tx) error {
			return tx.SetIndex("Observation", fmt.Sprintf("id%06d", i), []IndexEntry{{Param: "status", Key: []byte("final")}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	checkFill(t, s, [][]string{{"ixj"}})
}

// checkFill fails unless the leaf pages of the buckets at paths are at
// least 70% full.
func checkFill(t *testing.T, s *Bolt, paths [][]string) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, path := range paths {
			b := bucketAt(tx, path)
			st := b.Stats()
			fill := float64(st.LeafInuse) / float64((st.LeafPageN+st.LeafOverflowN)*tx.DB().Info().PageSize)
			if fill < 0.7 {
				t.Errorf("%v: leaf pages %.0f%% full (%d pages), want at least 70%%", path, 100*fill, st.LeafPageN)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkBlockFill fails unless every index block but the last two of each
// bucket at paths is at least 90% of blockSize, and those two at least
// half (idxblock.go: splitBlocks).
func checkBlockFill(t *testing.T, s *Bolt, paths [][]string) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, path := range paths {
			b := bucketAt(tx, path)
			var sizes []int
			_ = b.ForEach(func(_, v []byte) error { sizes = append(sizes, len(v)); return nil })
			if len(sizes) < 2 {
				t.Errorf("%v: %d blocks, want several", path, len(sizes))
			}
			for i, n := range sizes[:max(0, len(sizes)-1)] {
				want := blockSize * 9 / 10
				if i >= len(sizes)-2 {
					want = blockSize / 2
				}
				if n < want {
					t.Errorf("%v: block %d of %d holds %d bytes, want at least %d", path, i, len(sizes), n, want)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// bucketAt is the bucket at path: a top-level bucket, then nested ones.
func bucketAt(tx *bolt.Tx, path []string) *bolt.Bucket {
	b := tx.Bucket([]byte(path[0]))
	for _, name := range path[1:] {
		b = b.Bucket([]byte(name))
	}
	return b
}
