package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"healthhub/fhir"
)

// Indexer derives the search-index entries of a stored version from the
// version itself: exactly the entries a caller passes to SetIndex when it
// writes that version. A store opened with one keeps no copy of a
// resource's entries (rix): a create writes the resource and a journal
// record that only names it, whose entries replay derives again; an update
// or delete derives the entries it replaces from the version it replaces.
// rix cost an indexed create ~a tenth of its throughput at a million
// Observations (BENCHMARKS.md, "Derived index entries").
//
// The store trusts the caller to keep to that rule (Options.VerifyIndexer
// checks it, for tests): an entry SetIndex was given that the Indexer does
// not derive would stay in the index once its resource changed. An Indexer
// is used from many goroutines at once.
type Indexer interface {
	// IndexEntries returns the entries of stored version r (never a
	// deletion), or none for a type the indexes do not cover.
	IndexEntries(r *fhir.Resource) ([]IndexEntry, error)
	// IndexFingerprint names the derivation: it changes whenever the
	// entries of some resource would. The file records the fingerprint
	// its indexes were built with, and Open refuses another one
	// (ErrIndexerChanged): entries derived by new rules would not remove
	// the old rules' entries.
	IndexFingerprint() string
}

// ErrIndexerChanged is returned by Open when the search indexes were built
// with another Indexer fingerprint (other search parameter definitions, or
// another extraction of them) than the one given.
var ErrIndexerChanged = errors.New("store: the search indexes were built from other search parameter definitions or another extraction of them than this healthhub's (run healthhub reindex to rebuild them)")

// ErrIndexerMissing is returned by Open, without an Indexer, for a file
// whose index entries are derived from its resources (Options.Indexer).
var ErrIndexerMissing = errors.New("store: this file's search indexes are derived from its resources: open it with an Indexer")

// keyIndexer in meta is the fingerprint of the Indexer the file's derived
// index entries come from; absent: every entry is in rix.
var keyIndexer = []byte("indexer")

// keyDerivedSince in meta is, in a file written without an Indexer before
// it was first opened with one, the first lastUpdated (unix ms) of the
// versions written since. A version before it without a rix record had no
// entries (deleted, or of a type or parameter the index did not cover
// then), whatever the Indexer derives from it now: until its resource is
// written again, it keeps none.
var keyDerivedSince = []byte("derived-since")

// indexing is what a write transaction needs of the store's Indexer.
type indexing struct {
	indexer Indexer // nil: every resource's entries are kept in rix
	verify  bool    // Options.VerifyIndexer
	// rebuilding: the indexes were dropped at Open (Options.RebuildIndexes)
	// and hold nothing of a resource until SetIndex gives it its entries.
	rebuilding atomic.Bool
	// derivedSince: versions before it that rix has no record of have no
	// entries (keyDerivedSince); zero: none such.
	derivedSince time.Time

	// prepared are entries PrepareReplace derived ahead of the writes that
	// replace their versions, which take them instead of deriving them in
	// the serial commit path.
	preparedMu sync.Mutex
	prepared   map[string]preparedEntries // Type 0x00 id ->
}

type preparedEntries struct {
	version uint64
	entries []IndexEntry
}

// maxPrepared bounds the entries PrepareReplace keeps: writes take theirs
// within milliseconds, and one that fails leaves its own behind.
const maxPrepared = 4096

// PrepareReplace derives the index entries of the current version of
// Type/id, in the caller's goroutine, for a write about to replace that
// version (an update or a delete): the write then need not derive them
// while every other write waits for it. Without an Indexer, or when the
// entries are in rix, it does nothing; should the version change before
// the write, the write derives the entries itself.
func (s *Bolt) PrepareReplace(ctx context.Context, typ, id string) {
	ix := s.ix
	if ix.indexer == nil || ctx.Err() != nil {
		return
	}
	var r *fhir.Resource
	_ = s.db.View(func(btx *bolt.Tx) error { // res and rix only: no journal version
		t := &boltTx{btx: btx}
		if rix, _ := t.sub(bucketRix, typ, false); rix != nil && rix.Get([]byte(id)) != nil {
			return nil
		}
		r, _ = t.Current(typ, id)
		return nil
	})
	if r == nil || r.Deleted || r.LastUpdated.Before(ix.derivedSince) {
		return
	}
	entries, err := ix.derive(r)
	if err != nil {
		return // the write derives them, and fails there
	}
	ix.preparedMu.Lock()
	defer ix.preparedMu.Unlock()
	if ix.prepared == nil {
		ix.prepared = map[string]preparedEntries{}
	}
	for k := range ix.prepared {
		if len(ix.prepared) < maxPrepared {
			break
		}
		delete(ix.prepared, k)
	}
	ix.prepared[pendingKey(typ, id)] = preparedEntries{version: r.VersionID, entries: entries}
}

// takePrepared returns, and forgets, the entries PrepareReplace derived for
// version v of Type/id.
func (ix *indexing) takePrepared(typ, id string, v uint64) ([]IndexEntry, bool) {
	ix.preparedMu.Lock()
	defer ix.preparedMu.Unlock()
	k := pendingKey(typ, id)
	p, ok := ix.prepared[k]
	if !ok {
		return nil, false
	}
	delete(ix.prepared, k)
	return p.entries, p.version == v
}

// checkIndexer compares the fingerprint the file records with the
// Indexer's, and records it where the file has none: in a file with
// versions, from a new lastUpdated on (keyDerivedSince). A rebuild from
// scratch records the new one, and every entry is derived after it.
func (s *Bolt) checkIndexer(db *bolt.DB, rebuild bool) error {
	var stored, since []byte
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		stored, since = bytes.Clone(meta.Get(keyIndexer)), bytes.Clone(meta.Get(keyDerivedSince))
		return nil
	})
	if err != nil {
		return err
	}
	if len(since) == 8 && !rebuild {
		s.ix.derivedSince = time.UnixMilli(int64(beUint64(since))).UTC()
	}
	if s.ix.indexer == nil {
		switch {
		case stored != nil && !rebuild:
			return ErrIndexerMissing
		case stored != nil || since != nil: // dropped: every entry goes to rix again
			return db.Update(func(tx *bolt.Tx) error { return forgetIndexer(tx.Bucket(bucketMeta)) })
		}
		return nil
	}
	fp := []byte(s.ix.indexer.IndexFingerprint())
	switch {
	case bytes.Equal(stored, fp) && !rebuild:
		return nil
	case stored != nil && !rebuild:
		return fmt.Errorf("%w: built with %q, this one is %q", ErrIndexerChanged, stored, fp)
	}
	return db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := forgetIndexer(meta); err != nil {
			return err
		}
		if !rebuild {
			if c := tx.Bucket(bucketLog).Cursor(); func() bool { k, _ := c.First(); return k != nil }() {
				// Versions written from here on stamp at or after the clock.
				when, err := (&boltTx{btx: tx, now: s.now}).stampTime()
				if err != nil {
					return err
				}
				when = when.Add(time.Millisecond)
				if err := meta.Put(keyClock, u64(uint64(when.UnixMilli()))); err != nil {
					return err
				}
				if err := meta.Put(keyDerivedSince, u64(uint64(when.UnixMilli()))); err != nil {
					return err
				}
				s.ix.derivedSince = when
			}
		}
		return meta.Put(keyIndexer, fp)
	})
}

func forgetIndexer(meta *bolt.Bucket) error {
	if err := meta.Delete(keyIndexer); err != nil {
		return err
	}
	return meta.Delete(keyDerivedSince)
}

// previousEntries returns what the index holds for Type/id before a
// SetIndex that finds no rix record of it: nothing during a rebuild; else
// the entries of before, the version this transaction's first write of
// Type/id replaced, when it wrote it (wrote); else those of the current
// version.
func (t *boltTx) previousEntries(typ, id string, before *fhir.Resource, wrote bool) ([]IndexEntry, error) {
	if t.ix.rebuilding.Load() {
		return nil, nil
	}
	if !wrote {
		cur, err := t.Current(typ, id)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		before = cur
	}
	if before != nil && !before.Deleted && !before.LastUpdated.Before(t.ix.derivedSince) {
		if entries, ok := t.ix.takePrepared(typ, id, before.VersionID); ok {
			return entries, nil
		}
	}
	return t.ix.deriveUnlisted(before)
}

// deriveUnlisted returns the entries of r, a version rix has no record of:
// none if it was written before the file's entries were derived
// (keyDerivedSince).
func (ix *indexing) deriveUnlisted(r *fhir.Resource) ([]IndexEntry, error) {
	if r == nil || r.LastUpdated.Before(ix.derivedSince) {
		return nil, nil
	}
	return ix.derive(r)
}

// derive returns r's entries, sorted and each once; none for a deletion.
func (ix *indexing) derive(r *fhir.Resource) ([]IndexEntry, error) {
	if r == nil || r.Deleted {
		return nil, nil
	}
	entries, err := ix.indexer.IndexEntries(r)
	if err != nil {
		return nil, fmt.Errorf("store: derive the index entries of %s/%s: %w", r.Type, r.ID, err)
	}
	if !sortedUnique(entries) {
		entries = sortEntries(slices.Clone(entries))
	}
	return entries, nil
}

// verifyDerived checks that entries, given to SetIndex for Type/id, are
// what the Indexer derives from its current version (Options.VerifyIndexer).
func (t *boltTx) verifyDerived(typ, id string, entries []IndexEntry) error {
	var want []IndexEntry
	cur, err := t.Current(typ, id)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		if want, err = t.ix.derive(cur); err != nil {
			return err
		}
	}
	if !slices.EqualFunc(entries, want, func(a, b IndexEntry) bool { return compareEntries(a, b) == 0 }) {
		return fmt.Errorf("store: SetIndex(%s/%s) was given %d entries, the Indexer derives %d from the stored version: %v against %v", typ, id, len(entries), len(want), entries, want)
	}
	return nil
}

// entriesLookup returns, for a journal replay or a check in btx, what the
// index should hold for a resource: its rix record, or the entries derived
// from its current version.
func entriesLookup(btx *bolt.Tx, ix *indexing) func(typ, id []byte) ([]IndexEntry, error) {
	rix := btx.Bucket(bucketRix)
	res := btx.Bucket(bucketRes)
	return func(typ, id []byte) ([]IndexEntry, error) {
		if rix != nil {
			if b := rix.Bucket(typ); b != nil {
				if v := b.Get(id); v != nil {
					return decodeEntries(v)
				}
			}
		}
		if ix == nil || ix.indexer == nil || res == nil {
			return nil, nil
		}
		b := res.Bucket(typ)
		if b == nil {
			return nil, nil
		}
		v := b.Get(id)
		if v == nil {
			return nil, nil
		}
		r, err := decodeRecord(string(typ), string(id), v)
		if err != nil {
			return nil, err
		}
		return ix.deriveUnlisted(r)
	}
}
