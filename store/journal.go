package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// The index journal.
//
// Search-index keys scatter over the idx B+trees: an Observation writes
// ~28 keys, most on leaf pages no other write in its group commit touches,
// and bbolt rewrites every dirty page at each commit. Written in place,
// index maintenance cost an indexed write ~14 pages against ~2 for the
// resource itself (BENCHMARKS.md). So index changes go first to a journal,
// and are folded into the B+trees later, many commits' worth at once in
// key order, so that a leaf page is rewritten once for all the keys it
// gains in that time rather than once per commit:
//
//   - ixj (bbolt): u64(seq) -> the index changes of one write transaction
//     (a create's by reference to the resource: journalRecord), appended in that
//     transaction, so they commit with the resource or not
//     at all (DESIGN.md rule 3). Appending touches only the last leaf.
//     "fold" -> how far folding has come (foldState).
//   - in memory: the net state of every journaled key (present or removed),
//     in sorted runs, one immutable version per commit (jstate).
//     Searches read the B+tree merged with the version that matches their
//     bbolt snapshot (scanIndex), so the journal is invisible to callers.
//   - fold: when the journal holds Options.IndexJournalMax keys, write
//     transactions apply them to the B+trees in key order, a chunk at a
//     time ("Folding" below). A writer that leaves the journal at twice its
//     bound waits for the folds (Bolt.Update), so memory stays bounded
//     when writes outrun them.
//
// Open replays ixj into memory, so a crash loses nothing the journal held.
var bucketIxj = []byte("ixj")

// DefaultIndexJournalMax is the journal size, in keys, that starts folding
// it, a chunk at a time: about 7,000 Observation writes, ~20 MB of memory
// (~100 bytes a key: Type, parameter, value, id; merges hold a second copy
// while they run). A larger journal rewrites each index page more seldom;
// a chunk is what writes wait for.
const DefaultIndexJournalMax = 200_000

// journalViews is how many recent versions readers can still pick from; a
// read transaction whose version has gone starts again (View).
const journalViews = 8

// jentry is the journaled state of one index key: present, or removed
// whatever the B+tree holds.
type jentry struct {
	key     []byte // Type 0x00 param 0x00 index key (indexKey)
	present bool
}

// jrun is a sorted run of entries, each key once, kept without pointers:
// the keys end to end in one byte slice, and per entry its end offset with
// the present flag in the top bit. Merging runs is then copying bytes, with
// no write barriers, and the collector never scans the journal, which
// holds hundreds of thousands of keys. A run cut from another (without)
// shares its bytes: its offsets still count from the start of the run it
// was cut from, base bytes before its own first key.
type jrun struct {
	keys []byte
	ends []uint32
	base uint32
}

const presentBit = 1 << 31

func (r *jrun) len() int { return len(r.ends) }

func (r *jrun) end(i int) int { return int(r.ends[i]&^presentBit - r.base) }

func (r *jrun) start(i int) int {
	if i == 0 {
		return 0
	}
	return r.end(i - 1)
}

func (r *jrun) key(i int) []byte {
	end := r.end(i)
	return r.keys[r.start(i):end:end]
}

func (r *jrun) entry(i int) jentry {
	return jentry{key: r.key(i), present: r.ends[i]&presentBit != 0}
}

// search returns the index of the first entry whose key is not less than
// key.
func (r *jrun) search(key []byte) int {
	return sort.Search(r.len(), func(i int) bool { return bytes.Compare(r.key(i), key) >= 0 })
}

// add appends an entry to a run being built; keys must come in order.
func (r *jrun) add(e jentry) {
	r.keys = append(r.keys, e.key...)
	end := uint32(len(r.keys)) + r.base
	if e.present {
		end |= presentBit
	}
	r.ends = append(r.ends, end)
}

// addRange appends the entries [i, j) of src to a run being built.
func (r *jrun) addRange(src *jrun, i, j int) {
	if i >= j {
		return
	}
	from := src.start(i)
	// src's offsets count from src.base, r's from r.base: shift them by
	// the difference (modulo 2³², which leaves the flag bit untouched,
	// since the offsets stay below it).
	shift := uint32(len(r.keys)) + r.base - uint32(from) - src.base
	r.keys = append(r.keys, src.keys[from:src.end(j-1)]...)
	for _, end := range src.ends[i:j] {
		r.ends = append(r.ends, end+shift)
	}
}

// prefix is the run's first i entries, sharing its bytes.
func (r *jrun) prefix(i int) jrun {
	return jrun{keys: r.keys[:r.start(i):r.start(i)], ends: r.ends[:i:i], base: r.base}
}

// suffix is the run from entry i on, sharing its bytes.
func (r *jrun) suffix(i int) jrun {
	from := r.start(i)
	return jrun{keys: r.keys[from:], ends: r.ends[i:], base: r.base + uint32(from)}
}

// runCapacity makes an empty run with room for n entries of keys bytes.
func runCapacity(n, keys int) jrun {
	return jrun{keys: make([]byte, 0, keys), ends: make([]uint32, 0, n)}
}

// jstate is one immutable version of the journal: sorted runs, oldest
// first, a newer run winning over older ones for a key they share. A
// commit adds its changes as a run of their own; when there are too many,
// two neighbours merge, and the second run into the first when it has
// grown (a log-structured merge in memory). Versions share their runs,
// and nothing a reader holds is ever written.
type jstate struct {
	runs []jrun
}

var emptyJState = &jstate{}

// maxRuns bounds the runs a scan merges.
const maxRuns = 8

// size counts the keys (a key in several runs more than once: it only
// paces folds).
func (s *jstate) size() int {
	n := 0
	for _, r := range s.runs {
		n += r.len()
	}
	return n
}

// withChanges is s with changes (in the order made; the last for a key
// wins) applied.
func (s *jstate) withChanges(changes []jentry) *jstate {
	if len(changes) == 0 {
		return s
	}
	runs := append(slices.Clip(s.runs), sortChanges(changes))
	// Keep each run more than twice the size of the next newer one, as
	// Timsort keeps its stack: merging the two newest while they are
	// close in size makes the sizes a geometric series, so there are few
	// runs, and an entry is copied about once per doubling of its run
	// rather than once per few commits: 8 copies an entry instead of 70
	// (TestJournalMergesCopyLittle).
	for {
		n := len(runs)
		switch {
		case n >= 3 && runs[n-3].len() < runs[n-1].len():
			runs = mergeAt(runs, n-3)
		case n >= 2 && runs[n-2].len() <= 2*runs[n-1].len():
			runs = mergeAt(runs, n-2)
		case n > maxRuns: // many tiny commits: the sizes span more doublings
			best := 0
			for i := 1; i+1 < n; i++ {
				if runs[i].len()+runs[i+1].len() < runs[best].len()+runs[best+1].len() {
					best = i
				}
			}
			runs = mergeAt(runs, best)
		default:
			return &jstate{runs: runs}
		}
	}
}

// mergeAt merges runs i and i+1 into one.
func mergeAt(runs []jrun, i int) []jrun {
	return slices.Concat(runs[:i], []jrun{mergeRuns(runs[i], runs[i+1])}, runs[i+2:])
}

// sortChanges sorts changes by key into a run, keeping the last of equal
// keys. Each SetIndex adds its changes in key order, so a commit's changes
// are a few ascending stretches, one per write: they are merged, two by
// two, a later stretch winning on an equal key, which compares each key
// about log2(writes) times. A stable sort compared and moved them several
// times more (the sort was most of the cost of publishing a commit's
// version).
func sortChanges(changes []jentry) jrun {
	var stretches [][]jentry
	start := 0
	for i := 1; i <= len(changes); i++ {
		if i == len(changes) || bytes.Compare(changes[i-1].key, changes[i].key) >= 0 {
			stretches = append(stretches, changes[start:i])
			start = i
		}
	}
	buf, spare := make([]jentry, 0, len(changes)), make([]jentry, 0, len(changes))
	for len(stretches) > 1 {
		merged := stretches[:0]
		buf = buf[:0]
		for i := 0; i < len(stretches); i += 2 {
			from := len(buf)
			if i+1 == len(stretches) {
				buf = append(buf, stretches[i]...) // copied too: see below
			} else {
				buf = mergeStretches(buf, stretches[i], stretches[i+1])
			}
			merged = append(merged, buf[from:len(buf):len(buf)])
		}
		// Every stretch now lives in buf, and the next pass writes the
		// other buffer, which none refers to.
		stretches, buf, spare = merged, spare, buf
	}
	var sorted []jentry
	if len(stretches) == 1 {
		sorted = stretches[0]
	}
	n := 0
	for _, e := range sorted {
		n += len(e.key)
	}
	r := runCapacity(len(sorted), n)
	for _, e := range sorted {
		r.add(e)
	}
	return r
}

// mergeStretches appends to out the merge of a and b, each in strictly
// ascending key order, b winning on a key both have.
func mergeStretches(out, a, b []jentry) []jentry {
	for len(a) > 0 && len(b) > 0 {
		switch c := bytes.Compare(a[0].key, b[0].key); {
		case c < 0:
			out, a = append(out, a[0]), a[1:]
		case c > 0:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, b[0]), a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// mergeRuns merges two runs into a new one, newer winning on equal keys.
func mergeRuns(older, newer jrun) jrun {
	out := runCapacity(older.len()+newer.len(), len(older.keys)+len(newer.keys))
	i := 0
	for j := range newer.len() {
		key := newer.key(j)
		// Copy the older entries before key in one go; they are found by
		// galloping, as a commit's few keys spread thinly over many.
		k := gallop(&older, i, key)
		out.addRange(&older, i, k)
		i = k
		if i < older.len() && bytes.Equal(older.key(i), key) {
			i++
		}
		out.addRange(&newer, j, j+1)
	}
	out.addRange(&older, i, older.len())
	return out
}

// gallop returns the index of the first entry of r from i on whose key is
// not less than key, in O(log distance) comparisons.
func gallop(r *jrun, i int, key []byte) int {
	n := r.len() - i
	hi := 1
	for hi <= n && bytes.Compare(r.key(i+hi-1), key) < 0 {
		hi *= 2
	}
	lo := hi / 2
	hi = min(hi, n)
	return i + lo + sort.Search(hi-lo, func(m int) bool { return bytes.Compare(r.key(i+lo+m), key) >= 0 })
}

// jiter walks a state's entries in [lo, hi) in key order, newer runs
// winning.
type jiter struct {
	runs []jrun // oldest first
	pos  []int  // the next entry of each run
	hi   []byte
}

func (s *jstate) iter(lo, hi []byte) *jiter {
	it := &jiter{runs: s.runs, pos: make([]int, len(s.runs)), hi: hi}
	for i := range it.runs {
		it.pos[i] = it.runs[i].search(lo)
	}
	return it
}

func (it *jiter) next() (jentry, bool) {
	best := -1
	var bestKey []byte
	for i := range it.runs {
		if it.pos[i] == it.runs[i].len() {
			continue
		}
		k := it.runs[i].key(it.pos[i])
		if best < 0 {
			best, bestKey = i, k
			continue
		}
		if c := bytes.Compare(k, bestKey); c < 0 {
			best, bestKey = i, k
		} else if c == 0 { // the newer run wins; the older entry is spent
			it.pos[best]++
			best, bestKey = i, k
		}
	}
	if best < 0 {
		return jentry{}, false
	}
	e := it.runs[best].entry(it.pos[best])
	it.pos[best]++
	if it.hi != nil && bytes.Compare(e.key, it.hi) >= 0 {
		for i := range it.pos {
			it.pos[i] = it.runs[i].len()
		}
		return jentry{}, false
	}
	return e, true
}

// get returns the state of key, if the journal has one.
func (s *jstate) get(key []byte) (jentry, bool) {
	for i := len(s.runs) - 1; i >= 0; i-- {
		r := &s.runs[i]
		if j := r.search(key); j < r.len() && bytes.Equal(r.key(j), key) {
			return r.entry(j), true
		}
	}
	return jentry{}, false
}

// all calls fn with every entry in key order until fn returns false.
func (s *jstate) all(fn func(jentry) bool) {
	it := s.iter(nil, nil)
	for e, ok := it.next(); ok; e, ok = it.next() {
		if !fn(e) {
			return
		}
	}
}

// journalKey is Type 0x00 param 0x00 ik; with ik nil, the prefix of every
// key of (Type, param): types and parameter codes have no NUL.
func journalKey(typ, param string, ik []byte) []byte {
	k := make([]byte, 0, len(typ)+len(param)+2+len(ik))
	k = append(k, typ...)
	k = append(k, 0)
	k = append(k, param...)
	k = append(k, 0)
	return append(k, ik...)
}

func splitJournalKey(k []byte) (typ, param string, ik []byte, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", "", nil, false
	}
	j := bytes.IndexByte(k[i+1:], 0)
	if j < 0 {
		return "", "", nil, false
	}
	return string(k[:i]), string(k[i+1 : i+1+j]), k[i+2+j:], true
}

// journal is the in-memory side, shared by all transactions of a Bolt.
//
// Versions and bbolt snapshots are matched by transaction id: a write
// transaction that uses the journal registers its id (committing) before
// it can commit, and publishes its version after; a reader whose snapshot
// is at or past a registered id waits for that version (it is published
// right after the commit returns).
type journal struct {
	max int

	mu    sync.Mutex
	cond  *sync.Cond
	views []*jview // recent versions, oldest first

	latest     atomic.Pointer[jview]
	committing atomic.Uint64 // id of a registered write transaction; 0: none
	folding    atomic.Bool
	folds      atomic.Uint64 // committed
	planned    atomic.Uint64 // of folds, those that applied a plan (prepareFold)
	foldTime   atomic.Int64  // nanoseconds the background folds took
	planTime   atomic.Int64  // nanoseconds preparing their plans took
}

type jview struct {
	txid  uint64
	state *lazyState
}

// lazyState is a version that may not be built yet. A commit publishes its
// version unbuilt: sorting its changes and merging them into the runs
// (~0.5 ms for a group commit's) would otherwise hold up the next commit,
// and index maintenance is what bounds indexed write throughput. A
// goroutine started at publication builds it right away, on the other
// core; a reader or writer that needs it first builds it itself (once, the
// other waits).
type lazyState struct {
	once     sync.Once
	build    func() *jstate // nil once built
	st       *jstate
	panicked error        // set instead of st if build panicked
	size     atomic.Int64 // keys: exact once built, an upper bound before
}

func newLazyState(size int, build func() *jstate) *lazyState {
	l := &lazyState{build: build}
	l.size.Store(int64(size))
	return l
}

func builtState(s *jstate) *lazyState {
	l := newLazyState(s.size(), nil)
	l.st = s
	l.once.Do(func() {})
	return l
}

func (l *lazyState) get() *jstate {
	l.once.Do(func() {
		defer func() {
			// A bug in building: every caller panics with it (a request
			// fails), none gets a nil version.
			if p := recover(); p != nil {
				l.panicked = fmt.Errorf("store: building an index journal version: %v", p)
			}
		}()
		l.st = l.build()
		l.build = nil // let the parent version go
		l.size.Store(int64(l.st.size()))
	})
	if l.panicked != nil {
		panic(l.panicked)
	}
	return l.st
}

// keys is the number of keys the version holds (an upper bound until it is
// built): what paces folds.
func (l *lazyState) keys() int { return int(l.size.Load()) }

// withChanges is l with changes applied, unbuilt.
func (l *lazyState) withChanges(changes []jentry) *lazyState {
	if len(changes) == 0 {
		return l
	}
	return newLazyState(l.keys()+len(changes), func() *jstate { return l.get().withChanges(changes) })
}

// jstage is one write transaction's journal: the version it started from
// and the changes it made, for ixj.
type jstage struct {
	txid    uint64
	start   *lazyState
	changes []jentry
	keys    []byte        // where the changes' keys are built
	record  journalRecord // changes, as ixj keeps them
	folded  bool          // it folded a chunk
	planned bool          // from a plan (prepareFold)

	merged     *jstate // start with changes[:mergedUpTo], once asked for
	mergedUpTo int
}

// state is the transaction's own version: what it started from, with its
// changes. A transaction that reads between writes (conditional references
// in a Bundle) adds only what is new since it last read.
func (st *jstage) state() *jstate {
	if st.merged == nil {
		st.merged, st.mergedUpTo = st.start.get(), 0
	}
	if st.mergedUpTo < len(st.changes) {
		st.merged = st.merged.withChanges(st.changes[st.mergedUpTo:])
		st.mergedUpTo = len(st.changes)
	}
	return st.merged
}

// version is what the transaction publishes: state(), but not built
// unless it was for the transaction's own reads.
func (st *jstage) version() *lazyState {
	if st.merged == nil {
		return st.start.withChanges(st.changes)
	}
	return builtState(st.merged).withChanges(st.changes[st.mergedUpTo:])
}

func newJournal(max int, txid uint64, state *jstate) *journal {
	j := &journal{max: max}
	j.cond = sync.NewCond(&j.mu)
	v := &jview{txid: txid, state: builtState(state)}
	j.views = []*jview{v}
	j.latest.Store(v)
	return j
}

// loadJournal replays ixj in order, less what its fold markers say the
// B+trees hold.
func loadJournal(btx *bolt.Tx, ix *indexing) (*jstate, error) {
	b := btx.Bucket(bucketIxj)
	if b == nil {
		return emptyJState, nil
	}
	fs, err := decodeFoldState(b.Get(keyFoldState))
	if err != nil {
		return nil, err
	}
	var changes []jentry
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(k) == 8; k, v = c.Next() {
		seq := beUint64(k)
		err := decodeJournalRecord(v, entriesLookup(btx, ix), func(e jentry) {
			if !fs.covers(seq, e.key) {
				changes = append(changes, e)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return emptyJState.withChanges(changes), nil
}

// journalRecord is one transaction's ixj record: a resource (Type, id),
// then its changes, then the next resource...
//
//	resource: 2 uvarint(len(Type)) Type uvarint(len(id)) id
//	change:   0 (removed) or 1 (present) uvarint(len(param)) param uvarint(len(value key)) value key
//	indexed:  3 uvarint(len(Type)) Type uvarint(len(id)) id
//
// A change's key is Type 0x00 param 0x00 indexKey(value key, id); the
// record says Type and id once per resource, not once per key.
//
// "indexed" stands for the resource's entries, all present: what a
// resource that had none gains (a create), without writing its entries:
// replay takes them from rix or, where rix has no record of the resource,
// derives them from its current version (Indexer; entriesLookup). Either
// is the resource's entries as the file stands then, which may be a later
// state; that is sound because every later change to the resource's
// entries has a record of its own after this one, and the last record
// naming a key decides it: a key the resource has then is present when the
// replay ends either way, and a key it no longer has was removed by a
// later record. Fold markers cover a record's keys by sequence, so a later
// record is never covered where an earlier one is not.
type journalRecord struct {
	b       []byte
	typ, id string // of the last resource written
}

const (
	recordResource = 2
	recordIndexed  = 3
)

// addIndexed records that Type/id gained its entries (all of them).
func (r *journalRecord) addIndexed(typ, id string) {
	r.b = append(r.b, recordIndexed)
	r.b = appendString(r.b, typ)
	r.b = appendString(r.b, id)
	r.typ, r.id = "", "" // a change after it names its resource again
}

func (r *journalRecord) add(typ, id, param string, valueKey []byte, present bool) {
	if len(r.b) == 0 || typ != r.typ || id != r.id {
		r.b = append(r.b, recordResource)
		r.b = appendString(r.b, typ)
		r.b = appendString(r.b, id)
		r.typ, r.id = typ, id
	}
	flag := byte(0)
	if present {
		flag = 1
	}
	r.b = append(r.b, flag)
	r.b = appendString(r.b, param)
	r.b = binary.AppendUvarint(r.b, uint64(len(valueKey)))
	r.b = append(r.b, valueKey...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeJournalRecord calls fn with each change of record b, in order;
// entriesOf returns what the index holds for Type/id as the file stands
// (entriesLookup).
func decodeJournalRecord(b []byte, entriesOf func(typ, id []byte) ([]IndexEntry, error), fn func(jentry)) error {
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, false
		}
		f := b[w : w+int(n)]
		b = b[w+int(n):]
		return f, true
	}
	var typ, id []byte
	for len(b) > 0 {
		tag := b[0]
		b = b[1:]
		var ok1, ok2 bool
		switch tag {
		case recordResource:
			typ, ok1 = field()
			id, ok2 = field()
			if len(id) == 0 || len(id) > 255 || bytes.IndexByte(typ, 0) >= 0 {
				return errCorrupt
			}
		case 0, 1:
			var param, vk []byte
			param, ok1 = field()
			vk, ok2 = field()
			if id == nil || bytes.IndexByte(param, 0) >= 0 {
				return errCorrupt // a change before any resource, or a bad name
			}
			if ok1 && ok2 {
				fn(jentry{key: entryKey(string(typ), string(param), vk, string(id)), present: tag == 1})
			}
		case recordIndexed:
			var rtyp, rid []byte
			rtyp, ok1 = field()
			rid, ok2 = field()
			if len(rid) == 0 || len(rid) > 255 || bytes.IndexByte(rtyp, 0) >= 0 {
				return errCorrupt
			}
			entries, err := entriesOf(rtyp, rid)
			if err != nil {
				return err
			}
			for _, e := range entries {
				fn(jentry{key: entryKey(string(rtyp), e.Param, e.Key, string(rid)), present: true})
			}
			typ, id = nil, nil // a change must name its resource again
		default:
			return errCorrupt
		}
		if !ok1 || !ok2 {
			return errCorrupt
		}
	}
	return nil
}

// begin registers write transaction txid and returns its stage, which
// starts from the newest committed version. The previous writer's version
// may not be published yet (bbolt lets the next writer in before our code
// after its commit runs): wait for it, it is on its way.
func (j *journal) begin(txid uint64) *jstage {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.committing.Load() != 0 {
		j.cond.Wait()
	}
	j.committing.Store(txid)
	return &jstage{txid: txid, start: j.latest.Load().state}
}

// finish ends a registered write transaction: its version becomes the
// newest if it committed a change. It reports whether the journal has
// grown past its bound.
func (j *journal) finish(st *jstage, committed bool) (full bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if committed && st.folded {
		j.folds.Add(1)
		if st.planned {
			j.planned.Add(1)
		}
	}
	if committed && (st.folded || len(st.changes) > 0) {
		v := &jview{txid: st.txid, state: st.version()}
		j.views = append(j.views, v)
		if len(j.views) > journalViews {
			j.views = append(j.views[:0], j.views[len(j.views)-journalViews:]...)
		}
		j.latest.Store(v)
		go j.build(v.state)
	}
	j.committing.Store(0)
	j.cond.Broadcast()
	return j.size() >= j.max
}

// build builds a published version in the background, then wakes the
// writers that wait for the journal to shrink (waitBelow): a version's size
// is only an upper bound until it is built. A panic here would take the
// process down; get leaves it to whoever needs the version.
func (j *journal) build(l *lazyState) {
	defer func() { _ = recover() }()
	l.get()
	j.mu.Lock()
	j.cond.Broadcast()
	j.mu.Unlock()
}

// size is the number of keys the newest version holds, or an upper bound
// while it is being built.
func (j *journal) size() int { return j.latest.Load().state.keys() }

// waitBelow blocks while the journal holds limit keys or more and a fold
// runs.
func (j *journal) waitBelow(limit int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.size() >= limit && j.folding.Load() {
		j.cond.Wait()
	}
}

// stopFolding marks the end of a fold and wakes the writers that wait for
// it.
func (j *journal) stopFolding() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.folding.Store(false)
	j.cond.Broadcast()
}

// viewAt returns the version that matches the snapshot of read transaction
// txid, or false when it is no longer kept (the caller starts again).
func (j *journal) viewAt(txid uint64) (*jstate, bool) {
	// The common case without the lock: no writer at or before this
	// snapshot is between its commit and its publication. A writer
	// registers before its commit, so a snapshot that includes its commit
	// sees it registered or already published.
	if c := j.committing.Load(); c == 0 || c > txid {
		if v := j.latest.Load(); v.txid <= txid {
			return v.state.get(), true
		}
	}
	if v := j.viewFor(txid); v != nil {
		return v.state.get(), true // built outside the lock
	}
	return nil, false
}

func (j *journal) viewFor(txid uint64) *jview {
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		if c := j.committing.Load(); c == 0 || c > txid {
			break
		}
		j.cond.Wait()
	}
	for i := len(j.views) - 1; i >= 0; i-- {
		if j.views[i].txid <= txid {
			return j.views[i]
		}
	}
	return nil
}

// stage returns the write transaction's journal stage, registering the
// transaction on first use.
func (t *boltTx) stage() *jstage {
	if t.jstage == nil {
		t.jstage = t.journal.begin(uint64(t.btx.ID()))
	}
	return t.jstage
}

// journalState is the journal version this transaction reads: its own
// when writing, the version of its snapshot when reading.
func (t *boltTx) journalState() *jstate {
	if t.now != nil {
		return t.stage().state()
	}
	return t.view
}

// set records that the index of (Type, param) has, or has not, the key of
// valueKey and id (indexKey).
func (st *jstage) set(typ, param string, valueKey []byte, id string, present bool) {
	st.record.add(typ, id, param, valueKey, present)
	st.change(typ, param, valueKey, id, present)
}

// change is set without the record: for changes a record says otherwise
// (journalRecord.addIndexed).
func (st *jstage) change(typ, param string, valueKey []byte, id string, present bool) {
	n := entryKeyLen(typ, param, valueKey, id)
	if cap(st.keys)-len(st.keys) < n { // keys share allocations of 4 kB
		st.keys = make([]byte, 0, max(n, 4096))
	}
	start := len(st.keys)
	st.keys = appendEntryKey(st.keys, typ, param, valueKey, id)
	// Capped: a key is never appended to, and the next key's bytes follow.
	st.changes = append(st.changes, jentry{key: st.keys[start:len(st.keys):len(st.keys)], present: present})
}

// entryKey is journalKey(typ, param, indexKey(valueKey, id)), built in one
// allocation.
func entryKey(typ, param string, valueKey []byte, id string) []byte {
	return appendEntryKey(make([]byte, 0, entryKeyLen(typ, param, valueKey, id)), typ, param, valueKey, id)
}

func entryKeyLen(typ, param string, valueKey []byte, id string) int {
	return len(typ) + len(param) + 2 + len(valueKey) + len(id) + 1
}

func appendEntryKey(k []byte, typ, param string, valueKey []byte, id string) []byte {
	k = append(k, typ...)
	k = append(k, 0)
	k = append(k, param...)
	k = append(k, 0)
	k = append(k, valueKey...)
	k = append(k, id...)
	return append(k, byte(len(id)))
}

// flushJournal appends the transaction's index changes to ixj; it runs
// last in every write transaction.
func (t *boltTx) flushJournal() error {
	st := t.jstage
	if st == nil || len(st.record.b) == 0 {
		return nil
	}
	b := t.btx.Bucket(bucketIxj)
	b.FillPercent = appendFill
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	err = b.Put(u64(seq), st.record.b)
	st.record = journalRecord{}
	return err
}

// Folding.
//
// A fold applies one chunk of the journal, the keys of a range in key
// order, to the B+trees, and drops them from the journal in memory; the
// next fold takes the next range, and a pass over the whole key space ends
// when a chunk reaches its end. ixj cannot drop part of a record, so it
// keeps a marker per chunk instead, (seq, lo, hi): the changes of records
// up to seq to keys in [lo, hi) are in the B+trees, and replaying skips
// them. When a pass ends, every key has been folded since the pass's first
// chunk, so the records up to that chunk's seq are deleted, with the
// markers they needed. A chunk is an eighth of IndexJournalMax: writes
// wait for one chunk, not for the whole journal, while each leaf page is
// rewritten about as seldom as if the whole journal were folded at once.
var keyFoldState = []byte("fold") // in ixj; records have 8-byte keys

// foldChunks is how many chunks make IndexJournalMax.
const foldChunks = 8

type foldState struct {
	inPass    bool
	passFirst uint64 // seq of the pass's first chunk
	next      []byte // where the pass's next chunk starts
	markers   []foldMarker
}

// foldMarker: changes of records up to seq to keys in [lo, hi) (hi nil:
// to the end) are in the B+trees.
type foldMarker struct {
	seq    uint64
	lo, hi []byte
}

// covers reports whether the change of record seq to key is in the
// B+trees.
func (fs *foldState) covers(seq uint64, key []byte) bool {
	for _, m := range fs.markers {
		if seq <= m.seq && bytes.Compare(key, m.lo) >= 0 && (m.hi == nil || bytes.Compare(key, m.hi) < 0) {
			return true
		}
	}
	return false
}

func (fs *foldState) encode() []byte {
	var b []byte
	if fs.inPass {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = append(b, u64(fs.passFirst)...)
	b = appendBytes(b, fs.next)
	for _, m := range fs.markers {
		b = append(b, u64(m.seq)...)
		b = appendBytes(b, m.lo)
		if m.hi == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = appendBytes(b, m.hi)
		}
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func decodeFoldState(b []byte) (*foldState, error) {
	fs := &foldState{}
	if b == nil {
		return fs, nil
	}
	bytesField := func() ([]byte, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, false
		}
		f := bytes.Clone(b[w : w+int(n)])
		b = b[w+int(n):]
		return f, true
	}
	if len(b) < 9 || b[0] > 1 {
		return nil, errCorrupt
	}
	fs.inPass, fs.passFirst, b = b[0] == 1, beUint64(b[1:9]), b[9:]
	var ok bool
	if fs.next, ok = bytesField(); !ok {
		return nil, errCorrupt
	}
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, errCorrupt
		}
		m := foldMarker{seq: beUint64(b[:8])}
		b = b[8:]
		if m.lo, ok = bytesField(); !ok || len(b) == 0 || b[0] > 1 {
			return nil, errCorrupt
		}
		hasHi := b[0] == 1
		b = b[1:]
		if hasHi {
			if m.hi, ok = bytesField(); !ok {
				return nil, errCorrupt
			}
		}
		fs.markers = append(fs.markers, m)
	}
	return fs, nil
}

// without is s less its entries in [lo, hi) (hi nil: to the end). A run
// that holds a quarter of the journal or more keeps what lies before lo
// and from hi on as two runs that share its bytes, so a fold, which takes
// a chunk of keys out of every run, copies little: it copied the whole
// journal at each chunk, an eighth of it at a time. The pieces hold
// disjoint keys, so their order among the runs does not matter. Smaller
// runs are copied whole less the range: cutting those too would leave the
// merges many small runs to copy back together. The pieces keep the whole
// run's bytes in memory until a merge copies them (or they are folded
// too): at most about the journal's size again, during one pass.
func (s *jstate) without(lo, hi []byte) *jstate {
	out := &jstate{}
	big := s.size() / 4
	for _, r := range s.runs {
		i, j := r.search(lo), r.len()
		if hi != nil {
			j = r.search(hi)
		}
		switch {
		case r.len() < big && i > 0 && j < r.len():
			kept := runCapacity(r.len()-(j-i), len(r.keys)-(r.start(j)-r.start(i)))
			kept.addRange(&r, 0, i)
			kept.addRange(&r, j, r.len())
			out.runs = append(out.runs, kept)
		default:
			if i > 0 {
				out.runs = append(out.runs, r.prefix(i))
			}
			if j < r.len() {
				out.runs = append(out.runs, r.suffix(j))
			}
		}
	}
	return out
}

// foldJournal applies the next chunk of at most chunk journaled keys to the
// idx blocks, in key order so that each block and leaf page is rewritten
// once (see "Folding"; applyBlocks). It reports whether the chunk ended a
// pass.
func (t *boltTx) foldJournal(chunk int) (passEnded bool, err error) {
	return t.fold(chunk, nil)
}

// fold is foldJournal applying plan, the next chunk's writes computed
// outside the transaction (prepareFold), when it still holds; without a
// plan, or with one that does not hold, it folds the next chunk here.
func (t *boltTx) fold(chunk int, plan *foldPlan) (passEnded bool, err error) {
	if t.now == nil {
		return false, bolt.ErrTxNotWritable
	}
	st := t.stage()
	b := t.btx.Bucket(bucketIxj)
	// The changes this transaction made so far are in the state folded
	// now: their record must come before the marker.
	if err := t.flushJournal(); err != nil {
		return false, err
	}
	seq := b.Sequence()
	fs, err := decodeFoldState(b.Get(keyFoldState))
	if err != nil {
		return false, err
	}
	if !fs.inPass {
		fs.inPass, fs.passFirst, fs.next = true, seq, nil
	}
	state := st.state()
	lo := fs.next
	var (
		hi      []byte
		n       int
		applied bool
	)
	if plan != nil && !st.folded && plan.folds == t.journal.folds.Load() && bytes.Equal(plan.lo, lo) {
		if delta, ok := state.changedSince(plan.state, lo, plan.hi, maxPlanDelta); ok {
			if err := t.applyPlan(plan, delta); err != nil {
				return false, err
			}
			hi, n, applied = plan.hi, plan.n, true
			st.planned = true
		}
	}
	if !applied {
		next := chunkOf(state, lo, chunk, &n, &hi)
		var scratch jrun
		err := byParam(next, func(typ, param string, changes []jentry) error {
			bucket, err := t.idxParam(typ, param)
			if err != nil {
				return err
			}
			return applyBlocks(bucket, changes, &scratch)
		})
		if err != nil {
			return false, err
		}
	}
	// The cut takes out at least n keys (with a plan, n is what [lo, hi)
	// held when it was made; the journal only gained keys since), so the
	// size stays an upper bound.
	st.start = newLazyState(state.size()-n, func() *jstate { return state.without(lo, hi) })
	st.changes, st.merged = st.changes[:0], nil
	st.folded = true
	fs.markers = append(fs.markers, foldMarker{seq: seq, lo: fs.next, hi: hi})
	if hi != nil {
		fs.next = hi
		return false, b.Put(keyFoldState, fs.encode())
	}
	// The pass is over: records up to its first chunk are folded entirely.
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(k) == 8 && beUint64(k) <= fs.passFirst; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return false, err
		}
	}
	fs.markers = slices.DeleteFunc(fs.markers, func(m foldMarker) bool { return m.seq <= fs.passFirst })
	fs.inPass, fs.next = false, nil
	return true, b.Put(keyFoldState, fs.encode())
}

// chunkOf yields state's entries from lo on, at most chunk of them,
// counting them in *n; the key it stops before, if any, goes to *hi (the
// chunk is [lo, *hi); nil: to the end).
func chunkOf(state *jstate, lo []byte, chunk int, n *int, hi *[]byte) func() (jentry, bool) {
	it := state.iter(lo, nil)
	return func() (jentry, bool) {
		e, ok := it.next()
		if ok && *n == chunk {
			*hi, ok = e.key, false
		}
		if ok {
			*n++
		}
		return e, ok
	}
}

// idxParam is the bucket of (Type, param)'s index blocks, made if missing.
func (t *boltTx) idxParam(typ, param string) (*bolt.Bucket, error) {
	typBucket, err := t.sub(bucketIdx, typ, true)
	if err != nil {
		return nil, err
	}
	bucket, err := typBucket.CreateBucketIfNotExists([]byte(param))
	if err != nil {
		return nil, err
	}
	// A fold rewrites every leaf it touches, whatever its fill: fuller
	// pages are fewer pages to write (values mostly gain ids at the end
	// of their range, as ids are time-ordered).
	bucket.FillPercent = appendFill
	return bucket, nil
}

// byParam calls apply with the changes next yields, journal keys in key
// order, a (Type, param) at a time, as index keys.
func byParam(next func() (jentry, bool), apply func(typ, param string, changes []jentry) error) error {
	var (
		curTyp, curParam string
		pending          []jentry
	)
	for e, ok := next(); ok; e, ok = next() {
		typ, param, ik, ok := splitJournalKey(e.key)
		if !ok {
			return errCorrupt
		}
		if len(pending) > 0 && (typ != curTyp || param != curParam) {
			if err := apply(curTyp, curParam, pending); err != nil {
				return err
			}
			pending = pending[:0]
		}
		curTyp, curParam = typ, param
		pending = append(pending, jentry{key: ik, present: e.present})
	}
	if len(pending) == 0 {
		return nil
	}
	return apply(curTyp, curParam, pending)
}

// Prepared folds.
//
// A fold's transaction read, merged and encoded every block its chunk
// reached while every write waited for it: 17-41 ms of CPU for 25,000
// random keys into a million (BenchmarkIndexJournalFold), most of a 20 ms
// fold in the create benchmark. Folds are the only writers of idx once
// Open has returned (rebuilds and upgrades run inside it), so a fold can
// compute its block writes beforehand from a read snapshot, outside the
// group commit (prepareFold), while writes carry on; the write
// transaction then replays them (applyPlan) and folds besides only what
// the journal gained in the chunk's range since the snapshot. The index
// then holds the keys folding the chunk in the transaction would have
// given it (a block that both steps reach may be split differently).
// What stays in the transaction is the replay, 2-4 ms in the benchmark
// above, and the commit, whose page writes are most of a fold of random
// keys.
//
// The plan holds only while no fold has committed since its snapshot
// (journal.folds): the background folds run one at a time, but
// FoldIndexJournal may run beside them. Then the blocks it read are the
// blocks, and the journal of the write transaction grew from the plan's by
// withChanges alone, which keeps every run it does not merge
// (changedSince). Otherwise the transaction folds the chunk itself, as
// without a plan.

// maxPlanDelta bounds the keys changedSince looks at before a write
// transaction folds the chunk itself: a merge since the snapshot that
// copied large runs makes many keys look new. It bounds the work a plan
// leaves to the transaction; with the default journal, a chunk is 25,000
// keys.
const maxPlanDelta = 4096

// foldPlan is a chunk's fold computed from a snapshot.
type foldPlan struct {
	folds  uint64  // journal.folds before the snapshot
	lo, hi []byte  // the chunk: journal keys in [lo, hi); hi nil: to the end
	n      int     // keys of state in [lo, hi)
	state  *jstate // the journal at the snapshot
	params []paramOps
}

// paramOps are the block writes of one parameter, in order.
type paramOps struct {
	typ, param string
	ops        blockOps
}

// blockOps records a parameter's block writes (blockWriter); a nil block
// is a delete.
type blockOps []blockOp

type blockOp struct{ bound, block []byte }

func (o *blockOps) Put(bound, block []byte) error {
	*o = append(*o, blockOp{bound: bytes.Clone(bound), block: block}) // block is the caller's to give; bound is not
	return nil
}

func (o *blockOps) Delete(bound []byte) error {
	*o = append(*o, blockOp{bound: bytes.Clone(bound)})
	return nil
}

// prepareFold computes the next fold of at most chunk keys from a read
// snapshot (see "Prepared folds").
func (s *Bolt) prepareFold(chunk int) (*foldPlan, error) {
	plan := &foldPlan{folds: s.journal.folds.Load()} // before the snapshot: a fold after it shows
	err := s.view(func(t *boltTx) error {
		ixj := t.btx.Bucket(bucketIxj)
		if ixj == nil {
			return errCorrupt
		}
		fs, err := decodeFoldState(ixj.Get(keyFoldState))
		if err != nil {
			return err
		}
		if fs.inPass {
			plan.lo = fs.next
		}
		plan.state = t.view
		next := chunkOf(plan.state, plan.lo, chunk, &plan.n, &plan.hi)
		var scratch jrun
		return byParam(next, func(typ, param string, changes []jentry) error {
			var bucket *bolt.Bucket
			if idx, err := t.sub(bucketIdx, typ, false); err != nil {
				return err
			} else if idx != nil {
				bucket = idx.Bucket([]byte(param))
			}
			seek := func(k []byte) ([]byte, []byte) {
				if bucket == nil {
					return nil, nil
				}
				return bucket.Cursor().Seek(k)
			}
			po := paramOps{typ: typ, param: param}
			if err := applyBlocksTo(seek, &po.ops, changes, &scratch); err != nil {
				return err
			}
			plan.params = append(plan.params, po)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return plan, nil
}

// applyPlan replays plan's block writes, then folds delta, the journal's
// changes in the chunk since the plan's snapshot.
func (t *boltTx) applyPlan(plan *foldPlan, delta []jentry) error {
	for _, po := range plan.params {
		bucket, err := t.idxParam(po.typ, po.param)
		if err != nil {
			return err
		}
		for _, op := range po.ops {
			if op.block == nil {
				err = bucket.Delete(op.bound)
			} else {
				err = bucket.Put(op.bound, op.block)
			}
			if err != nil {
				return err
			}
		}
	}
	i := 0
	next := func() (jentry, bool) {
		if i == len(delta) {
			return jentry{}, false
		}
		i++
		return delta[i-1], true
	}
	var scratch jrun
	return byParam(next, func(typ, param string, changes []jentry) error {
		bucket, err := t.idxParam(typ, param)
		if err != nil {
			return err
		}
		return applyBlocks(bucket, changes, &scratch)
	})
}

// changedSince returns, in key order, s's entries in [lo, hi) (hi nil: no
// bound) whose state old does not have: the changes since old, from which
// s grew by withChanges alone (see "Prepared folds"). Such an s keeps
// every run of old it has not merged, so only the keys of its other runs
// can have changed. false when those are more than limit keys.
func (s *jstate) changedSince(old *jstate, lo, hi []byte, limit int) ([]jentry, bool) {
	type runID struct {
		first *uint32
		n     int
	}
	had := make(map[runID]bool, len(old.runs))
	for _, r := range old.runs {
		if r.len() > 0 {
			had[runID{&r.ends[0], r.len()}] = true
		}
	}
	fresh := &jstate{}
	for _, r := range s.runs {
		if r.len() > 0 && !had[runID{&r.ends[0], r.len()}] {
			fresh.runs = append(fresh.runs, r)
		}
	}
	var delta []jentry
	it := fresh.iter(lo, hi)
	for e, ok := it.next(); ok; e, ok = it.next() {
		if limit--; limit < 0 {
			return nil, false
		}
		cur, _ := s.get(e.key) // a newer run of old's may hold the key too
		if was, ok := old.get(e.key); !ok || was.present != cur.present {
			delta = append(delta, cur)
		}
	}
	return delta, true
}
