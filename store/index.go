package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// IndexEntry is one search-index key of one resource: the value key of a
// search parameter as fhir/search encodes it. The store keeps keys as
// opaque, byte-ordered values; what they mean is the search package's. An
// index key (indexKey: the key, then the id) may not begin with 0xff
// (blockEnd, idxblock.go).
type IndexEntry struct {
	Param string
	Key   []byte
}

// Index layout:
//
//	idx/<Type>/<param>   index keys, valueKey | id | u8(len(id)), in
//	                     blocks: upper bound -> the block (idxblock.go)
//	rix/<Type>           id -> the entries written for it: repeated
//	                     uvarint(len(param)) param uvarint(len(key)) key
//
// The id rides at the end of the index key with its length last, so a
// value's keys are contiguous (range scans) and the id is read back from
// the end.
// rix lets an update or delete remove exactly the stale entries, and
// stands in for a create's entries in the index journal's record, in a
// store opened without an Indexer. With one (serve's), a resource's
// entries are derived from its versions instead (indexer.go), and rix
// keeps only the records of resources written before, until they are
// next written. Changes reach idx through the index journal (journal.go);
// scans read both.
var (
	bucketIdx = []byte("idx")
	bucketRix = []byte("rix")
)

var errRebuilding = errors.New("store: no resource is written while the search indexes are rebuilt (healthhub reindex)")

var errIndexKey = errors.New("store: index key beginning with 0xff, or id empty or too long")

func indexKey(valueKey []byte, id string) []byte {
	k := make([]byte, 0, len(valueKey)+len(id)+1)
	k = append(k, valueKey...)
	k = append(k, id...)
	return append(k, byte(len(id)))
}

func splitIndexKey(k []byte) (valueKey []byte, id string, ok bool) {
	if len(k) == 0 {
		return nil, "", false
	}
	n := int(k[len(k)-1])
	if n == 0 || n+1 > len(k) {
		return nil, "", false
	}
	return k[:len(k)-1-n], string(k[len(k)-1-n : len(k)-1]), true
}

func encodeEntries(entries []IndexEntry) []byte {
	n := 0
	for _, e := range entries {
		n += 2*binary.MaxVarintLen32 + len(e.Param) + len(e.Key)
	}
	b := make([]byte, 0, n)
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e.Param)))
		b = append(b, e.Param...)
		b = binary.AppendUvarint(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
	}
	return b
}

func decodeEntries(b []byte) ([]IndexEntry, error) {
	var out []IndexEntry
	for len(b) > 0 {
		var e IndexEntry
		for i := 0; i < 2; i++ {
			n, w := binary.Uvarint(b)
			if w <= 0 || uint64(len(b)-w) < n {
				return nil, errCorrupt
			}
			field := b[w : w+int(n)]
			if i == 0 {
				e.Param = string(field)
			} else {
				e.Key = bytes.Clone(field)
			}
			b = b[w+int(n):]
		}
		out = append(out, e)
	}
	return out, nil
}

// SetIndex replaces every index entry of Type/id with entries (none: the
// resource leaves every index, as on delete). The changes go to the index
// journal (journal.go), not to the idx B+trees.
func (t *boltTx) SetIndex(typ, id string, entries []IndexEntry) error {
	if t.now == nil {
		return bolt.ErrTxNotWritable
	}
	if len(id) == 0 || len(id) > 255 {
		return errIndexKey
	}
	for _, e := range entries {
		// The index key (indexKey) begins with the value key, or with the
		// id when the value key is empty.
		first := id[0]
		if len(e.Key) > 0 {
			first = e.Key[0]
		}
		if first == 0xff {
			return errIndexKey
		}
	}
	st := t.stage()
	if !sortedUnique(entries) { // callers mostly pass them so, outside the serial commit path
		entries = sortEntries(slices.Clone(entries))
	}
	derived := t.ix != nil && t.ix.indexer != nil
	k := pendingKey(typ, id)
	before, wrote := t.pending[k]
	delete(t.pending, k) // its entries are in the index from here on
	if derived && wrote && t.ix.rebuilding.Load() {
		// A rebuild gives each resource its entries once, removing none:
		// a new version would leave its previous one's behind.
		return errRebuilding
	}
	if derived && t.ix.verify {
		if err := t.verifyDerived(typ, id, entries); err != nil {
			return err
		}
	}
	// rix: every resource's entries without an Indexer; with one, only
	// those of resources not written since a file without one had them.
	rix, err := t.sub(bucketRix, typ, !derived)
	if err != nil {
		return err
	}
	var old []byte
	var previous []IndexEntry
	if !wrote || before != nil { // a first version has no entries anywhere
		if rix != nil {
			old = rix.Get([]byte(id))
		}
		switch {
		case old != nil:
			if previous, err = decodeEntries(old); err != nil {
				return err
			}
			previous = sortEntries(previous)
		case derived:
			if previous, err = t.previousEntries(typ, id, before, wrote); err != nil {
				return err
			}
		}
	}
	if previous == nil && len(entries) > 0 {
		// A create: its record names the resource, and replay takes the
		// entries from rix or derives them (journalRecord), so they are
		// written once or not at all.
		for _, e := range entries {
			st.change(typ, e.Param, e.Key, id, true)
		}
		st.record.addIndexed(typ, id)
		if derived {
			return dropRix(rix, id, old)
		}
		rix.FillPercent = appendFill
		return rix.Put([]byte(id), encodeEntries(entries))
	}
	// An update mostly keeps its values: only the entries that changed are
	// removed and added (both lists sorted, so one pass compares them).
	i, j := 0, 0
	for i < len(previous) || j < len(entries) {
		c := 1 // previous[i] only
		switch {
		case i == len(previous):
			c = -1 // entries[j] only
		case j < len(entries):
			c = compareEntries(entries[j], previous[i])
		}
		switch {
		case c == 0:
			i++
			j++
		case c < 0:
			st.set(typ, entries[j].Param, entries[j].Key, id, true)
			j++
		default:
			st.set(typ, previous[i].Param, previous[i].Key, id, false)
			i++
		}
	}
	if derived {
		return dropRix(rix, id, old)
	}
	if len(entries) == 0 {
		return rix.Delete([]byte(id))
	}
	rix.FillPercent = appendFill
	return rix.Put([]byte(id), encodeEntries(entries))
}

// dropRix deletes the rix record of a resource whose entries are derived
// from here on, if it had one.
func dropRix(rix *bolt.Bucket, id string, old []byte) error {
	if old == nil {
		return nil
	}
	return rix.Delete([]byte(id))
}

func compareEntries(a, b IndexEntry) int {
	if c := strings.Compare(a.Param, b.Param); c != 0 {
		return c
	}
	return bytes.Compare(a.Key, b.Key)
}

func sortedUnique(entries []IndexEntry) bool {
	for i := 1; i < len(entries); i++ {
		if compareEntries(entries[i-1], entries[i]) >= 0 {
			return false
		}
	}
	return true
}

// sortEntries sorts entries by parameter and key and drops duplicates.
func sortEntries(entries []IndexEntry) []IndexEntry {
	slices.SortFunc(entries, compareEntries)
	return slices.CompactFunc(entries, func(a, b IndexEntry) bool { return compareEntries(a, b) == 0 })
}

// ScanIndex calls fn for each entry of Type's index of param whose value
// key lies in [from, to) (to nil: no upper bound), in key order, until fn
// returns false. The key passed to fn is only valid during the call.
func (t *boltTx) ScanIndex(ctx context.Context, typ, param string, from, to []byte, fn func(valueKey []byte, id string) bool) error {
	return t.scanIndex(ctx, typ, param, from, nil, to, fn)
}

// ScanIndexAfter is ScanIndex from just after the entry (valueKey, id), in
// the order ScanIndex visits: keyset paging resumes there.
func (t *boltTx) ScanIndexAfter(ctx context.Context, typ, param string, valueKey []byte, id string, to []byte, fn func(valueKey []byte, id string) bool) error {
	if len(id) > 255 {
		return errIndexKey
	}
	k := indexKey(valueKey, id)
	return t.scanIndex(ctx, typ, param, k, k, to, fn)
}

// scanIndex visits the entries from the key from on, skipping the key
// after itself, up to the value key to: the idx blocks merged with the
// journal, whose entries win over the blocks' (journal.go).
func (t *boltTx) scanIndex(ctx context.Context, typ, param string, from, after, to []byte, fn func(valueKey []byte, id string) bool) error {
	idx, err := t.sub(bucketIdx, typ, false)
	if err != nil {
		return err
	}
	var c *blockCursor
	if idx != nil {
		if b := idx.Bucket([]byte(param)); b != nil {
			c = &blockCursor{c: b.Cursor()}
		}
	}
	var (
		n    int
		stop bool
	)
	// emit passes k to fn unless it is after's or past to; false: stop.
	emit := func(k []byte) bool {
		if after != nil && bytes.Equal(k, after) {
			return true
		}
		if n++; n%ctxCheckEvery == 0 {
			if err = ctx.Err(); err != nil {
				return false
			}
		}
		// Value keys are self-delimiting (fhir/search terminates them), so
		// comparing the whole key with to is comparing the value key.
		if to != nil && bytes.Compare(k, to) >= 0 {
			return false
		}
		vk, id, ok := splitIndexKey(k)
		if !ok {
			err = errCorrupt
			return false
		}
		return fn(vk, id)
	}
	var tk []byte // the tree's next key; nil: none left
	if c != nil {
		tk = c.seek(from)
	}
	// treeUpTo emits the tree's keys before limit (nil: all of them).
	treeUpTo := func(limit []byte) bool {
		for tk != nil && (limit == nil || bytes.Compare(tk, limit) < 0) {
			if !emit(tk) {
				return false
			}
			tk = c.next()
		}
		return true
	}
	if js := t.journalState(); js != nil && js.size() > 0 {
		prefix := journalKey(typ, param, nil)
		lo := append(prefix[:len(prefix):len(prefix)], from...)
		hi := append(prefix[:len(prefix)-1:len(prefix)-1], 1) // past every key of (typ, param)
		if to != nil {
			hi = append(prefix[:len(prefix):len(prefix)], to...)
		}
		it := js.iter(lo, hi)
		for e, ok := it.next(); ok; e, ok = it.next() {
			k := e.key[len(prefix):]
			if !treeUpTo(k) {
				stop = true
				break
			}
			if tk != nil && bytes.Equal(tk, k) {
				tk = c.next() // the journal's state of this key wins
			}
			if e.present && !emit(k) {
				stop = true
				break
			}
		}
	}
	if !stop {
		treeUpTo(nil)
	}
	if err == nil && c != nil {
		err = c.err
	}
	return err
}

// ScanIDs calls fn with the id of every resource of Type that has a current
// record (deleted ones included: callers read the record), in id order.
func (t *boltTx) ScanIDs(ctx context.Context, typ string, fn func(id string) bool) error {
	b, err := t.sub(bucketRes, typ, false)
	if err != nil || b == nil {
		return err
	}
	c := b.Cursor()
	n := 0
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if !fn(string(k)) {
			return nil
		}
	}
	return nil
}
