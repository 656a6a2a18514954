package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// Index blocks (layout 4).
//
// idx/<Type>/<param> keeps its index keys (indexKey: value key | id |
// u8(len(id))) in blocks of about a kilobyte: the bbolt key is the block's
// first index key, the value every key of the block in order, front-coded:
//
//	repeated: uvarint(bytes shared with the previous key) uvarint(len(rest)) rest
//
// A block holds the keys from its first up to the next block's first; the
// first block also takes any key before its own.
//
// One B+tree entry per index key cost a fold a bbolt Put per key (a seek
// from the root and an insert, ~0.9 µs of the serial commit path), and
// repeated the value key for every id of a value. A fold now rewrites a
// block once for all the keys it brings to it, and a page holds about
// twice the keys (keys of one value share all but the id, and time-ordered
// ids share their first bytes).
// blockSize bounds a block's bytes: four blocks and their keys fill a
// 4 kB page to bbolt's split point (appendFill) without passing it, so
// leaves hold four blocks, not three and a gap.
const blockSize = 820

// blockIter decodes a block's keys in order.
type blockIter struct {
	b   []byte // what is left to decode
	key []byte // the current key: valid until the next call to next
	bad bool   // the block does not decode
}

func (it *blockIter) reset(block []byte) {
	it.b, it.key, it.bad = block, it.key[:0], false
}

// next decodes the next key; false at the end or on a malformed block
// (bad).
func (it *blockIter) next() bool {
	if len(it.b) == 0 {
		return false
	}
	shared, n := binary.Uvarint(it.b)
	rest, m := uint64(0), 0
	if n > 0 {
		rest, m = binary.Uvarint(it.b[n:])
	}
	if n <= 0 || m <= 0 || shared > uint64(len(it.key)) || rest == 0 || rest > uint64(len(it.b)-n-m) {
		it.b, it.bad = nil, true
		return false
	}
	it.key = append(it.key[:shared], it.b[n+m:n+m+int(rest)]...)
	it.b = it.b[n+m+int(rest):]
	return true
}

// appendBlockKey appends key, front-coded against prev, to block.
func appendBlockKey(block, prev, key []byte) []byte {
	shared := 0
	for shared < len(prev) && shared < len(key) && prev[shared] == key[shared] {
		shared++
	}
	if shared == len(key) { // keys are distinct, so only a prefix of prev; keep rest > 0
		shared--
	}
	block = binary.AppendUvarint(block, uint64(shared))
	block = binary.AppendUvarint(block, uint64(len(key)-shared))
	return append(block, key[shared:]...)
}

// blockCursor walks a parameter's index keys in order across its blocks.
type blockCursor struct {
	c   *bolt.Cursor
	it  blockIter
	err error // errCorrupt once a block did not decode
}

// seek returns the first key not less than k (nil: none), valid until the
// next call.
func (bc *blockCursor) seek(k []byte) []byte {
	if !bc.seekBlock(k) {
		return nil
	}
	for key := bc.next(); ; key = bc.next() {
		if key == nil || bytes.Compare(key, k) >= 0 {
			return key
		}
	}
}

// seekBlock positions the cursor on the block whose range holds k.
func (bc *blockCursor) seekBlock(k []byte) bool {
	_, v := coveringBlock(bc.c, k)
	if v == nil {
		return false
	}
	bc.it.reset(v)
	return true
}

// next returns the key after the current one (nil: none).
func (bc *blockCursor) next() []byte {
	for !bc.it.next() {
		if bc.it.bad {
			bc.err = errCorrupt
			return nil
		}
		k, v := bc.c.Next()
		if k == nil {
			return nil
		}
		bc.it.reset(v)
	}
	return bc.it.key
}

// coveringBlock moves c to the block whose range holds k and returns it
// (nil: the bucket is empty).
func coveringBlock(c *bolt.Cursor, k []byte) (bk, bv []byte) {
	bk, bv = c.Seek(k)
	if bk != nil && bytes.Equal(bk, k) {
		return bk, bv
	}
	if bk == nil {
		bk, bv = c.Last()
	} else {
		bk, bv = c.Prev()
	}
	if bk == nil { // k is before every block, or there are none
		bk, bv = c.First()
	}
	return bk, bv
}

// blockHas reports whether the parameter's bucket b holds index key k.
func blockHas(b *bolt.Bucket, k []byte) bool {
	bc := blockCursor{c: b.Cursor()}
	key := bc.seek(k)
	return key != nil && bytes.Equal(key, k)
}

// applyBlocks applies changes, index keys in order, each once, present or
// removed, to the blocks of one parameter's bucket b: each block they
// reach is rewritten once, split when it outgrows blockSize, deleted when
// emptied.
func applyBlocks(b *bolt.Bucket, changes []jentry, scratch *jrun) error {
	c := b.Cursor()
	for len(changes) > 0 {
		bk, bv := coveringBlock(c, changes[0].key)
		n := len(changes)
		if bk != nil {
			if next, _ := c.Next(); next != nil {
				n = sort.Search(len(changes), func(i int) bool { return bytes.Compare(changes[i].key, next) >= 0 })
			}
		}
		*scratch = jrun{keys: scratch.keys[:0], ends: scratch.ends[:0]}
		if err := mergeBlock(scratch, bv, changes[:n]); err != nil {
			return err
		}
		changes = changes[n:]
		old := bytes.Clone(bk) // bbolt's bytes do not outlive the writes below
		blocks := splitBlocks(scratch)
		if old != nil && (len(blocks) == 0 || !bytes.Equal(blocks[0].first, old)) {
			if err := b.Delete(old); err != nil {
				return err
			}
		}
		for _, blk := range blocks {
			if err := b.Put(blk.first, blk.b); err != nil {
				return err
			}
		}
		c = b.Cursor() // the writes invalidate the cursor's position
	}
	return nil
}

// mergeBlock writes into out (present flags unused) the keys of block with
// changes applied.
func mergeBlock(out *jrun, block []byte, changes []jentry) error {
	var it blockIter
	it.reset(block)
	have := it.next()
	for _, ch := range changes {
		for have && bytes.Compare(it.key, ch.key) < 0 {
			out.add(jentry{key: it.key})
			have = it.next()
		}
		if have && bytes.Equal(it.key, ch.key) {
			have = it.next() // the change decides this key
		}
		if ch.present {
			out.add(jentry{key: ch.key})
		}
	}
	for ; have; have = it.next() {
		out.add(jentry{key: it.key})
	}
	if it.bad {
		return errCorrupt
	}
	return nil
}

type encodedBlock struct {
	first []byte
	b     []byte
}

// splitBlocks encodes keys into blocks, each filled up to blockSize
// before the next starts. Keys mostly arrive at the end of their value's
// range (ids are time-ordered), so the blocks a split leaves behind stay
// full, like the leaves of buckets written in order (appendFill), not half
// full as an even split would leave them.
func splitBlocks(keys *jrun) []encodedBlock {
	var (
		out  []encodedBlock
		cur  []byte
		prev []byte
	)
	for i := range keys.len() {
		k := keys.key(i)
		if cur != nil {
			n := len(cur)
			if cur = appendBlockKey(cur, prev, k); len(cur) <= blockSize {
				prev = k
				continue
			}
			out[len(out)-1].b, cur = cur[:n:n], nil // k starts the next block
		}
		cur = appendBlockKey(make([]byte, 0, blockSize), nil, k)
		out = append(out, encodedBlock{first: k})
		prev = k
	}
	if cur != nil {
		out[len(out)-1].b = cur
	}
	return out
}

// keyIndexBlocksPending in meta marks a file whose idx buckets may still
// hold one bbolt key per index key, with an empty value (layouts 1-3).
var keyIndexBlocksPending = []byte("idx-blocks-pending")

// upgradeIndexBlocks rewrites, for a file so marked, each parameter's
// bucket as blocks, one parameter per transaction (a region's largest
// holds millions of keys: memory for one, not for all), and clears the
// mark when none is left. A crash part way leaves the mark, and the next
// Open goes on: a bucket is converted or not, never half.
func upgradeIndexBlocks(db *bolt.DB) error {
	for {
		done := false
		err := db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta.Get(keyIndexBlocksPending) == nil {
				done = true
				return nil
			}
			typ, param := unconvertedIndex(tx.Bucket(bucketIdx))
			if param == nil {
				done = true
				return meta.Delete(keyIndexBlocksPending)
			}
			return convertToBlocks(tx.Bucket(bucketIdx).Bucket(typ), param)
		})
		if err != nil || done {
			return err
		}
	}
}

// unconvertedIndex finds a parameter bucket of idx whose first key has an
// empty value: a key per index key. A block is never empty.
func unconvertedIndex(idx *bolt.Bucket) (typ, param []byte) {
	if idx == nil {
		return nil, nil
	}
	_ = idx.ForEachBucket(func(t []byte) error {
		tb := idx.Bucket(t)
		return tb.ForEachBucket(func(p []byte) error {
			if k, v := tb.Bucket(p).Cursor().First(); k != nil && len(v) == 0 {
				typ, param = bytes.Clone(t), bytes.Clone(p)
				return errStopIteration
			}
			return nil
		})
	})
	return typ, param
}

var errStopIteration = errors.New("store: stop")

// convertToBlocks rewrites the bucket param of tb, a key per index key, as
// blocks.
func convertToBlocks(tb *bolt.Bucket, param []byte) error {
	var keys jrun
	err := tb.Bucket(param).ForEach(func(k, _ []byte) error {
		keys.add(jentry{key: k})
		return nil
	})
	if err != nil {
		return err
	}
	if err := tb.DeleteBucket(param); err != nil {
		return err
	}
	b, err := tb.CreateBucket(param)
	if err != nil {
		return err
	}
	b.FillPercent = appendFill
	for _, blk := range splitBlocks(&keys) {
		if err := b.Put(blk.first, blk.b); err != nil {
			return err
		}
	}
	return nil
}
