package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"healthhub/fhir"
)

// ErrNotFound: no such resource or version. A deleted resource is not
// ErrNotFound: its tombstone is returned with Deleted set.
var ErrNotFound = errors.New("store: not found")

// ErrLocked: another process holds the database file.
var ErrLocked = errors.New("store: the database is in use by another process")

// Store is what the service layer needs from a backend.
type Store interface {
	// View runs fn in a read-only transaction that sees one snapshot.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction; all its writes commit
	// together or not at all. fn may run more than once (group commit).
	Update(ctx context.Context, fn func(Tx) error) error
	Stats() Stats
	// PrepareReplace readies, outside the serial commit path, what a
	// write about to replace the current version of Type/id needs of it
	// (a hint: the write is right without it).
	PrepareReplace(ctx context.Context, typ, id string)
	// Ping answers whether the database is open and readable.
	Ping(ctx context.Context) error
	Close() error
}

// Tx is one transaction. Methods that write fail in a View.
type Tx interface {
	// Current returns the current version of Type/id: a tombstone (Deleted)
	// when it was deleted; ErrNotFound when it never existed.
	Current(typ, id string) (*fhir.Resource, error)
	// Version returns one version (a tombstone for a deletion); ErrNotFound
	// when there is no such version.
	Version(typ, id string, version uint64) (*fhir.Resource, error)
	// Put writes the next version of Type/id, as an update: the store
	// assigns the version (current + 1) and lastUpdated, and stamps them
	// with id into body. A version that creates the resource (the first,
	// or the one after a deletion) is marked Resource.CreatedByUpdate.
	Put(typ, id string, body *fhir.Object) (*fhir.Resource, error)
	// Create writes version 1 of Type/id, as a create (POST: the server
	// chose id); it fails with a fhir.Conflict error when Type/id exists.
	Create(typ, id string, body *fhir.Object) (*fhir.Resource, error)
	// Delete records a deletion as the next version and returns the
	// tombstone. Deleting what is absent or already deleted writes nothing
	// and returns ErrNotFound or the existing tombstone.
	Delete(typ, id string) (*fhir.Resource, error)
	// History returns one page of versions, newest first.
	History(ctx context.Context, q HistoryQuery) (*HistoryPage, error)
	// SetIndex replaces the search-index entries of Type/id; none removes
	// it from every index.
	SetIndex(typ, id string, entries []IndexEntry) error
	// ScanIndex visits Type's index of param over value keys in [from, to).
	ScanIndex(ctx context.Context, typ, param string, from, to []byte, fn func(valueKey []byte, id string) bool) error
	// ScanIndexAfter is ScanIndex from just after the entry (valueKey, id):
	// entries come in value key, then id, order, so paging can resume there.
	ScanIndexAfter(ctx context.Context, typ, param string, valueKey []byte, id string, to []byte, fn func(valueKey []byte, id string) bool) error
	// ScanIDs visits the id of every resource of Type, deleted ones too.
	ScanIDs(ctx context.Context, typ string, fn func(id string) bool) error
}

// Stats are counters for metrics.
type Stats struct {
	SizeBytes    int64 // of the database file
	ReadTxs      uint64
	WriteTxs     uint64 // Update calls
	FailedWrites uint64
	Commits      uint64 // bbolt write transactions committed (a group commit is one)
	PageWrites   uint64 // writes bbolt made at commits: a page, or a run of overflow pages, each
	JournalKeys  int    // index keys waiting in the journal (journal.go); an upper bound while its newest version is built
	JournalFolds uint64 // folds of the journal into the index B+trees
	// JournalFoldsPlanned counts the folds whose writes were computed
	// before their write transaction, from a snapshot (journal.go,
	// "Prepared folds").
	JournalFoldsPlanned uint64
	// JournalFoldTime is the time the folds' write transactions took,
	// commit included: writes that arrive during one wait for it. The
	// preparation of a planned fold, outside it, is not counted.
	JournalFoldTime time.Duration
	// JournalFoldPlanTime is the time the folds' plans took to prepare,
	// from a read snapshot while writes carried on: the fold work that no
	// write waits for.
	JournalFoldPlanTime time.Duration
}

// Options for Open.
type Options struct {
	// LockTimeout bounds the wait for a file another process holds.
	LockTimeout time.Duration
	// MaxBatchSize caps the writes in one group commit (batch.go;
	// DefaultMaxBatchSize when zero).
	MaxBatchSize int
	// IndexJournalMax is the number of journaled index keys that starts
	// folding them into the index B+trees, an eighth at a time (journal.go;
	// DefaultIndexJournalMax when zero).
	IndexJournalMax int
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
	// InitialMmapSize reserves this much address space for the file up
	// front (bbolt's option). Without it bbolt remaps as the file grows,
	// and each remap copies every node the open write transaction has
	// touched: a bulk import's large transactions paid ~8% of their CPU
	// for that. Zero: bbolt's default.
	InitialMmapSize int
	// RebuildIndexes makes Open drop every search index (idx, rix, ixj), for
	// a reindex from scratch when they are damaged: nothing of them is read
	// back. The file stays marked incomplete, and other Opens refuse it, until
	// IndexesRebuilt is called, so that no server answers searches from a
	// half-built index.
	RebuildIndexes bool
	// Indexer derives a stored version's index entries (indexer.go); the
	// store then keeps no copy of them. Nil: every resource's entries are
	// kept in rix, and a file whose entries are derived is refused.
	Indexer Indexer
	// VerifyIndexer makes SetIndex check its entries against the
	// Indexer's (tests: a write whose entries the Indexer would not
	// derive again leaves stale index entries behind).
	VerifyIndexer bool
}

// ErrIndexesIncomplete is returned by Open for a file whose search indexes
// a rebuild left incomplete (Options.RebuildIndexes).
var ErrIndexesIncomplete = errors.New("store: the search indexes are incomplete: a reindex from scratch did not finish (run healthhub reindex)")

// DefaultMaxBatchSize caps a group commit (bbolt's own default).
const DefaultMaxBatchSize = 1000

// FileName is the database file inside the data directory.
const FileName = "healthhub.db"

// Bolt is the embedded bbolt-backed Store.
type Bolt struct {
	db        *bolt.DB
	path      string // of the file (bolt.DB.Path races with Close)
	now       func() time.Time
	group     *groupCommit
	journal   *journal
	foldChunk int // keys a fold applies (journal.go)
	ix        *indexing

	foldMu sync.Mutex
	folds  sync.WaitGroup // a running fold of the journal
	closed bool           // no more folds start

	readTxs, writeTxs, failedWrites, commits atomic.Uint64
	jtiCalls                                 atomic.Uint64 // paces the replay-cache purge (auth.go)
}

var _ Store = (*Bolt)(nil)

// openInPlace opens path with bolt.Open, and again if the file was
// replaced while bolt.Open waited for its lock: Compact renames its copy
// over the file it holds, then lets go of it, and the lock, and every
// write after, would be on a file no longer in the directory.
func openInPlace(path string, o *bolt.Options) (*bolt.DB, error) {
	for {
		before, statErr := os.Stat(path)
		db, err := bolt.Open(path, 0o600, o)
		if err != nil || statErr != nil { // statErr: a new file, which no one replaces
			return db, err
		}
		after, err := os.Stat(path)
		if err == nil && os.SameFile(before, after) {
			return db, nil
		}
		db.Close()
		if err != nil {
			return nil, err
		}
	}
}

// Open opens (creating if needed) the store in directory dir.
func Open(dir string, opt Options) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	if opt.LockTimeout == 0 {
		opt.LockTimeout = 2 * time.Second
	}
	path := filepath.Join(dir, FileName)
	db, err := openInPlace(path, &bolt.Options{Timeout: opt.LockTimeout, InitialMmapSize: opt.InitialMmapSize})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (is another healthhub serving it?)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// A copy that a killed compaction left behind (Compact), as large as
	// the store: a compaction holds this file's lock until its copy has
	// taken the file's name, so with the lock ours, none is running. Not
	// removing it is no reason to refuse the store.
	_ = os.Remove(path + ".compact")
	if opt.MaxBatchSize <= 0 {
		opt.MaxBatchSize = DefaultMaxBatchSize
	}
	if opt.IndexJournalMax <= 0 {
		opt.IndexJournalMax = DefaultIndexJournalMax
	}
	s := &Bolt{db: db, path: path, now: opt.Now, foldChunk: max(1, opt.IndexJournalMax/foldChunks), ix: &indexing{indexer: opt.Indexer, verify: opt.VerifyIndexer}}
	s.ix.rebuilding.Store(opt.RebuildIndexes)
	s.group = &groupCommit{run: s.writeTx, max: opt.MaxBatchSize}
	if s.now == nil {
		s.now = time.Now
	}
	// Most opens find the layout in place: checked in a read transaction,
	// so that opening a file writes nothing to it (a write transaction
	// commits, and syncs, even when it changed nothing).
	err = db.View(s.initSchema)
	if errors.Is(err, errSchemaNeedsWrite) {
		err = db.Update(s.initSchema)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	if opt.RebuildIndexes {
		// Before any upgrade of the indexes: they are about to go, and
		// a rebuild must not depend on reading them.
		err = db.Update(dropIndexes)
	} else if err = upgradeIndexBlocks(db); err != nil {
		err = fmt.Errorf("store: rewrite the search indexes as blocks: %w (healthhub reindex rebuilds them from the stored resources)", err)
	} else {
		err = db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketMeta).Get(keyIndexesIncomplete) != nil {
				return ErrIndexesIncomplete
			}
			return nil
		})
	}
	if err == nil {
		err = s.checkIndexer(db, opt.RebuildIndexes)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	err = db.View(func(btx *bolt.Tx) error {
		state, err := loadJournal(btx, s.ix)
		if err != nil {
			return err // a journal that does not load is reported, not half-built
		}
		s.journal = newJournal(opt.IndexJournalMax, uint64(btx.ID()), state)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: read the index journal: %w (healthhub reindex rebuilds the search indexes from the stored resources)", err)
	}
	return s, nil
}

// errSchemaNeedsWrite: in a read transaction, initSchema found a bucket
// missing or an older layout version, for a write transaction to create or
// upgrade.
var errSchemaNeedsWrite = errors.New("store: the layout needs a write")

// initSchema creates the top-level buckets and checks, records or upgrades
// the layout version; in a read transaction it only checks, and reports
// errSchemaNeedsWrite for anything it would write.
func (s *Bolt) initSchema(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketRes, bucketVer, bucketLog, bucketTLog, bucketIdx, bucketRix, bucketIxj} {
		if tx.Bucket(name) != nil {
			continue
		}
		if !tx.Writable() {
			return errSchemaNeedsWrite
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("store: create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := meta.Get(keySchema)
	if v == nil {
		if !tx.Writable() {
			return errSchemaNeedsWrite
		}
		return meta.Put(keySchema, u64(schemaVersion))
	}
	if len(v) == 8 && beUint64(v) >= 1 && beUint64(v) <= 3 {
		if !tx.Writable() {
			return errSchemaNeedsWrite
		}
		// Version 2 added the index journal (ixj, created above), version 3
		// its "indexed" records (journalRecord), version 4 index blocks
		// (idxblock.go); older binaries would not read them. What the
		// older versions wrote, this one reads, once their idx keys are
		// blocks (upgradeIndexBlocks): mark the file as the current
		// version, so that no older binary opens it meanwhile.
		if err := meta.Put(keyIndexBlocksPending, []byte{1}); err != nil {
			return err
		}
		return meta.Put(keySchema, u64(schemaVersion))
	}
	if len(v) == 8 && beUint64(v) == 4 {
		// Version 5 reads version 4 as it is (checkIndexer: entries in
		// rix until a resource is written again); a version 4 binary
		// would not read what version 5 writes.
		if !tx.Writable() {
			return errSchemaNeedsWrite
		}
		return meta.Put(keySchema, u64(schemaVersion))
	}
	if len(v) != 8 || beUint64(v) != schemaVersion {
		return fmt.Errorf("store: database layout version %x, this healthhub reads %d", v, schemaVersion)
	}
	return nil
}

// View implements Store.
func (s *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.readTxs.Add(1)
	return s.view(func(t *boltTx) error { return fn(t) })
}

// view is View for the store's own reads, which Stats does not count.
func (s *Bolt) view(fn func(*boltTx) error) error {
	for {
		btx, err := s.db.Begin(false)
		if err != nil {
			return err
		}
		view, ok := s.journal.viewAt(uint64(btx.ID()))
		if !ok { // writers moved on since Begin: take a newer snapshot
			_ = btx.Rollback()
			continue
		}
		return runView(btx, &boltTx{btx: btx, view: view}, fn)
	}
}

func runView(btx *bolt.Tx, t *boltTx, fn func(*boltTx) error) error {
	defer func() { _ = btx.Rollback() }()
	return fn(t)
}

// Update implements Store.
func (s *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err // do not start work for a client that left
	}
	s.writeTxs.Add(1)
	err := s.group.update(func(t *boltTx) error { return fn(t) })
	if err != nil {
		s.failedWrites.Add(1)
	}
	// Backpressure: when writes add index keys faster than folds take
	// them out, the journal, and its memory, would grow without bound.
	// Past twice its bound, a writer waits (its write committed) until
	// folds have brought it back.
	if s.journal.size() >= 2*s.journal.max {
		s.startFold()
		s.journal.waitBelow(2 * s.journal.max)
	}
	return err
}

// writeTx runs fn in one bbolt write transaction, with the index journal
// kept in step: the transaction's index changes are appended to ixj last,
// and its journal version is published once the commit has returned.
func (s *Bolt) writeTx(fn func(*boltTx) error) (err error) {
	var t *boltTx
	committed := false
	defer func() {
		// Also when fn or the commit panics: a registered transaction that
		// never finished would stall every writer and reader after it.
		if t != nil && t.jstage != nil {
			if full := s.journal.finish(t.jstage, committed); full {
				s.startFold()
			}
		}
	}()
	err = s.db.Update(func(btx *bolt.Tx) error {
		t = &boltTx{btx: btx, now: s.now, journal: s.journal, ix: s.ix}
		if err := fn(t); err != nil {
			return err
		}
		return t.flushJournal()
	})
	if err == nil {
		committed = true
		s.commits.Add(1)
	}
	return err
}

// startFold folds the index journal into the B+trees in the background,
// a chunk per write transaction through the group commit like any writer,
// until it is below its bound again; unless a fold is running.
func (s *Bolt) startFold() {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	if s.closed || !s.journal.folding.CompareAndSwap(false, true) {
		return
	}
	s.folds.Add(1)
	go func() {
		defer s.folds.Done()
		defer s.journal.stopFolding()
		for !s.isClosed() {
			// An error leaves the journal as it was; the next commit
			// starts folding again.
			// The plan is computed while writes carry on; should that
			// fail, the write transaction folds the chunk itself.
			start := time.Now()
			plan, _ := s.prepareFold(s.foldChunk)
			s.journal.planTime.Add(int64(time.Since(start)))
			start = time.Now()
			err := s.group.update(func(t *boltTx) error { _, err := t.fold(s.foldChunk, plan); return err })
			s.journal.foldTime.Add(int64(time.Since(start)))
			if err != nil || s.journal.size() < s.journal.max {
				return
			}
		}
	}()
}

func (s *Bolt) isClosed() bool {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	return s.closed
}

// FoldIndexJournal folds the whole index journal into the B+trees now
// (tests, benchmarks); writes fold it a chunk at a time when it is full.
func (s *Bolt) FoldIndexJournal(ctx context.Context) error {
	// The rest of a pass under way, then a whole pass in one chunk, after
	// which no record is needed.
	for range 2 {
		err := s.Update(ctx, func(t Tx) error { _, err := t.(*boltTx).foldJournal(math.MaxInt); return err })
		if err != nil {
			return err
		}
	}
	s.journal.latest.Load().state.get() // so that Stats reports its exact size
	return nil
}

// Stats implements Store.
func (s *Bolt) Stats() Stats {
	st := Stats{ReadTxs: s.readTxs.Load(), WriteTxs: s.writeTxs.Load(), FailedWrites: s.failedWrites.Load(),
		Commits: s.commits.Load(), JournalKeys: s.journal.size(), JournalFolds: s.journal.folds.Load(), JournalFoldsPlanned: s.journal.planned.Load(),
		JournalFoldTime: time.Duration(s.journal.foldTime.Load()), JournalFoldPlanTime: time.Duration(s.journal.planTime.Load())}
	dbStats := s.db.Stats()
	st.PageWrites = uint64(dbStats.TxStats.GetWrite())
	// The file's size, not a read transaction's view of it: a read may
	// wait in bbolt (a remap of the growing file waits for the reads under
	// way), and the metrics must answer while it does.
	if fi, err := os.Stat(s.path); err == nil {
		st.SizeBytes = fi.Size()
	}
	return st
}

// Ping implements Store.
func (s *Bolt) Ping(ctx context.Context) error {
	return s.View(ctx, func(t Tx) error {
		if t.(*boltTx).btx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	})
}

// Close implements Store. It waits for open transactions and a running
// fold.
func (s *Bolt) Close() error {
	s.foldMu.Lock()
	s.closed = true
	s.foldMu.Unlock()
	s.folds.Wait()
	return s.db.Close()
}

// keyIndexesIncomplete in meta marks a file whose indexes are being
// rebuilt from scratch (Options.RebuildIndexes).
var keyIndexesIncomplete = []byte("indexes-incomplete")

// dropIndexes drops the search indexes and marks the file, in the same
// transaction, until IndexesRebuilt.
func dropIndexes(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketIdx, bucketRix, bucketIxj, bucketIdxUpgrade} {
		if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return fmt.Errorf("store: drop bucket %s: %w", name, err)
		}
		if bytes.Equal(name, bucketIdxUpgrade) {
			continue // only while an upgrade runs
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("store: create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if err := meta.Delete(keyIndexBlocksPending); err != nil { // nothing left to upgrade
		return err
	}
	return meta.Put(keyIndexesIncomplete, []byte{1})
}

// IndexesRebuilt clears the mark Options.RebuildIndexes left, once every
// resource is indexed again.
func (s *Bolt) IndexesRebuilt(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyIndexesIncomplete) })
	if err == nil {
		s.ix.rebuilding.Store(false)
	}
	return err
}
