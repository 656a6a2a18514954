package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// IndexEntry is one search-index key of one resource: the value key of a
// search parameter as fhir/search encodes it. The store keeps keys as
// opaque, byte-ordered values; what they mean is the search package's.
type IndexEntry struct {
	Param string
	Key   []byte
}

// Index layout:
//
//	idx/<Type>/<param>   valueKey | id | u8(len(id)) -> empty
//	rix/<Type>           id -> the entries written for it: repeated
//	                     uvarint(len(param)) param uvarint(len(key)) key
//
// The id rides at the end of the key with its length last, so a value's
// keys are contiguous (range scans) and the id is read back from the end.
// rix lets an update or delete remove exactly the stale entries.
var (
	bucketIdx = []byte("idx")
	bucketRix = []byte("rix")
)

var errIndexKey = errors.New("store: index key too long or id too long")

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
	var b []byte
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
// resource leaves every index, as on delete).
func (t *boltTx) SetIndex(typ, id string, entries []IndexEntry) error {
	if t.now == nil {
		return bolt.ErrTxNotWritable
	}
	if len(id) > 255 {
		return errIndexKey
	}
	rix, err := t.sub(bucketRix, typ, true)
	if err != nil {
		return err
	}
	idx, err := t.sub(bucketIdx, typ, true)
	if err != nil {
		return err
	}
	// An update mostly keeps its values: only the entries that changed are
	// deleted and put, which leaves the index pages of the others clean.
	kept := map[string]bool{}
	if old := rix.Get([]byte(id)); old != nil {
		previous, err := decodeEntries(old)
		if err != nil {
			return err
		}
		wanted := make(map[string]bool, len(entries))
		for _, e := range entries {
			wanted[entryID(e)] = true
		}
		for _, e := range previous {
			if wanted[entryID(e)] {
				kept[entryID(e)] = true
				continue
			}
			if b := idx.Bucket([]byte(e.Param)); b != nil {
				if err := b.Delete(indexKey(e.Key, id)); err != nil {
					return err
				}
			}
		}
	}
	if len(entries) == 0 {
		return rix.Delete([]byte(id))
	}
	for _, e := range entries {
		if kept[entryID(e)] {
			continue
		}
		b, err := idx.CreateBucketIfNotExists([]byte(e.Param))
		if err != nil {
			return err
		}
		if err := b.Put(indexKey(e.Key, id), nil); err != nil {
			return err
		}
	}
	return rix.Put([]byte(id), encodeEntries(entries))
}

// entryID names an entry in a map: the parameter, a NUL (no parameter
// code has one) and the key.
func entryID(e IndexEntry) string { return e.Param + "\x00" + string(e.Key) }

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
// after itself, up to the value key to.
func (t *boltTx) scanIndex(ctx context.Context, typ, param string, from, after, to []byte, fn func(valueKey []byte, id string) bool) error {
	idx, err := t.sub(bucketIdx, typ, false)
	if err != nil || idx == nil {
		return err
	}
	b := idx.Bucket([]byte(param))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	n := 0
	for k, _ := c.Seek(from); k != nil; k, _ = c.Next() {
		if after != nil && bytes.Equal(k, after) {
			continue
		}
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		// Value keys are self-delimiting (fhir/search terminates them), so
		// comparing the whole key with to is comparing the value key.
		if to != nil && bytes.Compare(k, to) >= 0 {
			return nil
		}
		vk, id, ok := splitIndexKey(k)
		if !ok {
			return errCorrupt
		}
		if !fn(vk, id) {
			return nil
		}
	}
	return nil
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
