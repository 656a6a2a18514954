package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// FoldIndexJournalChunk folds the next chunk of the index journal, as a
// write does when the journal is full, for tests and benchmarks.
func (s *Bolt) FoldIndexJournalChunk(ctx context.Context) error {
	return s.Update(ctx, func(t Tx) error { _, err := t.(*boltTx).foldJournal(s.foldChunk); return err })
}

// PrepareIndexJournalFold computes the next chunk's fold from a snapshot,
// as the background folds do, and returns the write that applies it.
func (s *Bolt) PrepareIndexJournalFold(ctx context.Context) (apply func() error, err error) {
	plan, err := s.prepareFold(s.foldChunk)
	if err != nil {
		return nil, err
	}
	return func() error {
		return s.Update(ctx, func(t Tx) error { _, err := t.(*boltTx).fold(s.foldChunk, plan); return err })
	}, nil
}

// SnapshotTo copies the store's file as of its newest commit into
// dir/FileName: what a crash at that moment would leave behind (bbolt
// makes a commit durable, or not at all, with its meta page). It returns
// the transaction id of the copy's snapshot.
func (s *Bolt) SnapshotTo(dir string) (txid int, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		txid = tx.ID()
		return tx.CopyFile(filepath.Join(dir, FileName), 0o600)
	})
	return txid, err
}

// IndexedParams lists, per type, every parameter of which the search
// indexes hold something: an idx bucket, or a key in the index journal
// as searches see it now.
func (s *Bolt) IndexedParams() (map[string][]string, error) {
	seen := map[string]map[string]bool{}
	add := func(typ, param string) {
		if seen[typ] == nil {
			seen[typ] = map[string]bool{}
		}
		seen[typ][param] = true
	}
	err := s.view(func(t *boltTx) error {
		idx := t.btx.Bucket(bucketIdx)
		if err := idx.ForEachBucket(func(typ []byte) error {
			return idx.Bucket(typ).ForEachBucket(func(param []byte) error {
				add(string(typ), string(param))
				return nil
			})
		}); err != nil {
			return err
		}
		var bad error
		t.view.all(func(e jentry) bool {
			typ, param, _, ok := splitJournalKey(e.key)
			if !ok {
				bad = errCorrupt
				return false
			}
			add(typ, param)
			return true
		})
		return bad
	})
	out := map[string][]string{}
	for typ, params := range seen {
		for p := range params {
			out[typ] = append(out[typ], p)
		}
		slices.Sort(out[typ])
	}
	return out, err
}

// JournalFile describes the index journal as the file holds it: its
// records, whether a pass of folds is under way (crashes between its
// chunks), and the fold markers replay skips by.
func (s *Bolt) JournalFile() (records int, inPass bool, markers int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIxj)
		fs, err := decodeFoldState(b.Get(keyFoldState))
		if err != nil {
			return err
		}
		inPass, markers = fs.inPass, len(fs.markers)
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(k) == 8; k, _ = c.Next() {
			records++
		}
		return nil
	})
	return records, inPass, markers, err
}
