package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"sort"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Index blocks (layout 4).
//
// idx/<Type>/<param> keeps its index keys (indexKey: value key | id |
// u8(len(id))) in blocks of at most blockSize bytes. The value is a format
// byte, then every key of the block in order, front-coded:
//
//	1 repeated: uvarint(bytes shared with the previous key) uvarint(len(rest)) rest
//
// The bbolt key is the block's upper bound: no key of the block is above
// it, and every key of the block is above the previous block's bound. The
// last block's bound is blockEnd, above every index key, so the block that
// holds or would hold a key k is the first whose bound is not below k:
// one forward Seek. (bbolt's Prev and Last can stop on, or loop over, a
// leaf emptied earlier in the same write transaction; Seek and Next skip
// such leaves, so the blocks are only ever walked forward.) Every block
// but the last holds a key; the last may be empty.
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

// blockFormat is a block's first byte. Layouts 1-3 stored an empty value
// per index key, so a block is never mistaken for one (unconvertedIndex).
const blockFormat = 1

// blockEnd is the bound of a parameter's last block. SetIndex refuses
// keys from 0xff on, so it is above every index key.
var blockEnd = []byte{0xff}

// blockIter decodes a block's keys in order.
type blockIter struct {
	b   []byte // what is left to decode
	key []byte // the current key: valid until the next call to next
	bad bool   // the block does not decode
}

func (it *blockIter) reset(block []byte) {
	it.key, it.bad = it.key[:0], false
	if len(block) == 0 || block[0] != blockFormat {
		it.b, it.bad = nil, true
		return
	}
	it.b = block[1:]
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
	if shared == len(key) && shared > 0 { // keys are distinct: keep rest > 0
		shared--
	}
	block = binary.AppendUvarint(block, uint64(shared))
	block = binary.AppendUvarint(block, uint64(len(key)-shared))
	return append(block, key[shared:]...)
}

// encodedSize is len(appendBlockKey(nil, prev, key)), without building it.
func encodedSize(prev, key []byte) int {
	shared := 0
	for shared < len(prev) && shared < len(key) && prev[shared] == key[shared] {
		shared++
	}
	if shared == len(key) && shared > 0 {
		shared--
	}
	rest := len(key) - shared
	return uvarintLen(uint64(shared)) + uvarintLen(uint64(rest)) + rest
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
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
	_, v := bc.c.Seek(k)
	if v == nil {
		return nil
	}
	bc.it.reset(v)
	for key := bc.next(); ; key = bc.next() {
		if key == nil || bytes.Compare(key, k) >= 0 {
			return key
		}
	}
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
	seek := func(k []byte) ([]byte, []byte) {
		// A fresh cursor each time: the writes of applyBlocksTo invalidate
		// one.
		return b.Cursor().Seek(k)
	}
	return applyBlocksTo(seek, b, changes, scratch)
}

// blockWriter takes the writes of applyBlocksTo: a parameter's bucket, or
// a blockOps recording them for later (foldPlan).
type blockWriter interface {
	Put(bound, block []byte) error
	Delete(bound []byte) error
}

// applyBlocksTo is applyBlocks reading the blocks through seek (the first
// block whose bound is not less than k: bbolt's Cursor.Seek) and writing
// through w. It never reads a block it wrote: the blocks it writes for the
// changes up to a bound lie at or before that bound, and the next seek is
// for a key past it. So the blocks can be read from a snapshot while the
// writes are recorded, and the recording replayed on the same blocks
// gives the same bucket.
func applyBlocksTo(seek func(k []byte) (bound, block []byte), w blockWriter, changes []jentry, scratch *jrun) error {
	for len(changes) > 0 {
		bound, block := seek(changes[0].key)
		n := len(changes)
		if bound == nil { // an empty bucket: its first block is its last
			bound = blockEnd
		} else {
			n = sort.Search(len(changes), func(i int) bool { return bytes.Compare(changes[i].key, bound) > 0 })
			bound = bytes.Clone(bound) // bbolt's bytes do not outlive the writes below
		}
		*scratch = jrun{keys: scratch.keys[:0], ends: scratch.ends[:0]}
		if err := mergeBlock(scratch, block, changes[:n]); err != nil {
			return err
		}
		changes = changes[n:]
		last := bytes.Equal(bound, blockEnd)
		blocks := splitBlocks(scratch)
		switch {
		case len(blocks) > 0:
			blocks[len(blocks)-1].bound = bound // the last piece keeps the block's place
		case last && block != nil:
			blocks = []encodedBlock{{bound: bound, b: []byte{blockFormat}}} // the last block stays, empty
		case block != nil:
			if err := w.Delete(bound); err != nil {
				return err
			}
		}
		for _, blk := range blocks {
			if err := w.Put(blk.bound, blk.b); err != nil {
				return err
			}
		}
	}
	return nil
}

// mergeBlock writes into out (present flags unused) the keys of block
// (nil: none) with changes applied.
func mergeBlock(out *jrun, block []byte, changes []jentry) error {
	var it blockIter
	have := false
	if block != nil {
		it.reset(block)
		have = it.next()
	}
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
	bound []byte // the bbolt key
	b     []byte
}

// splitBlocks encodes keys into blocks, each bound by its last key, each
// filled up to blockSize before the next starts; if that leaves the last
// under half full, the last two share their keys evenly. Keys mostly
// arrive at the end of their value's range (ids are time-ordered), so the
// full blocks a split leaves behind stay full, like the leaves of buckets
// written in order (appendFill); keys that arrive anywhere still leave
// every block at least about half full, as a B+tree's leaves are, rather
// than a full block and a sliver.
func splitBlocks(keys *jrun) []encodedBlock {
	out := fillBlocks(keys, 0, keys.len(), blockSize)
	if n := len(out); n >= 2 && len(out[n-1].b) < blockSize/2 {
		from := keys.len() - countKeys(out[n-2].b) - countKeys(out[n-1].b)
		at := evenSplit(keys, from, keys.len())
		out = append(out[:n-2], fillBlocks(keys, from, at, math.MaxInt)[0], fillBlocks(keys, at, keys.len(), math.MaxInt)[0])
	}
	return out
}

// evenSplit returns where to cut keys [from, to) (at least two) in two
// blocks so that the larger is as small as can be. A block's size is its
// first key whole, then each key front-coded against the one before it.
func evenSplit(keys *jrun, from, to int) int {
	coded := make([]int, to-from+1) // coded[i]: keys from+1 .. from+i-1 front-coded
	for i := from + 1; i < to; i++ {
		coded[i-from+1] = coded[i-from] + encodedSize(keys.key(i-1), keys.key(i))
	}
	whole := func(i int) int { return encodedSize(nil, keys.key(i)) }
	best, bestSize := from+1, math.MaxInt
	for at := from + 1; at < to; at++ {
		left := whole(from) + coded[at-from] - coded[1]
		right := whole(at) + coded[to-from] - coded[at-from+1]
		if size := max(left, right); size < bestSize {
			best, bestSize = at, size
		}
	}
	return best
}

// fillBlocks encodes keys [from, to) into blocks of at most size bytes
// each (a key longer than that alone in its own), bound by their last key.
func fillBlocks(keys *jrun, from, to, size int) []encodedBlock {
	var (
		out  []encodedBlock
		cur  []byte
		prev []byte
	)
	for i := from; i < to; i++ {
		k := keys.key(i)
		if cur != nil {
			n := len(cur)
			if cur = appendBlockKey(cur, prev, k); len(cur) <= size {
				prev = k
				continue
			}
			out = append(out, encodedBlock{bound: prev, b: cur[:n:n]}) // k starts the next block
		}
		cur = appendBlockKey(append(make([]byte, 0, blockSize), blockFormat), nil, k)
		prev = k
	}
	if cur != nil {
		out = append(out, encodedBlock{bound: prev, b: cur})
	}
	return out
}

// countKeys is the number of keys a well-formed block holds.
func countKeys(block []byte) int {
	var it blockIter
	it.reset(block)
	n := 0
	for it.next() {
		n++
	}
	return n
}

// keyIndexBlocksPending in meta marks a file whose idx buckets may still
// hold one bbolt key per index key, with an empty value (layouts 1-3).
var keyIndexBlocksPending = []byte("idx-blocks-pending")

// bucketIdxUpgrade holds, while Open upgrades a file to index blocks, the
// blocks of the parameter being converted: idxup/<Type>/<param>.
var bucketIdxUpgrade = []byte("idxup")

// upgradeChunk is how many index keys one upgrade transaction moves: a
// region's largest parameter holds tens of millions, and a transaction
// holds what it writes in memory until it commits.
var upgradeChunk = 500_000

// upgradeIndexBlocks rewrites, for a file so marked, each parameter's
// bucket as blocks, upgradeChunk keys per transaction: the keys move from
// idx/<Type>/<param> to the blocks of idxup/<Type>/<param>, and once the
// first is empty a transaction of its own puts the second in its place
// (bbolt's MoveBucket moves what a bucket held when the transaction began,
// not what it wrote since). Each step commits whole, so a crash part way
// leaves the mark, and the next Open goes on from where it stopped. The
// mark goes when no bucket is left.
func upgradeIndexBlocks(db *bolt.DB) error {
	pending := false
	if err := db.View(func(tx *bolt.Tx) error {
		pending = tx.Bucket(bucketMeta).Get(keyIndexBlocksPending) != nil
		return nil
	}); err != nil || !pending {
		return err // nothing to upgrade: no write transaction (TestReopenWritesNothing)
	}
	for {
		done := false
		err := db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta.Get(keyIndexBlocksPending) == nil {
				done = true
				return nil
			}
			idx := tx.Bucket(bucketIdx)
			if moved, err := moveConverted(tx, idx); moved || err != nil {
				return err
			}
			typ, param := unconvertedIndex(idx)
			if param == nil {
				done = true
				if err := tx.DeleteBucket(bucketIdxUpgrade); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
					return err
				}
				return meta.Delete(keyIndexBlocksPending)
			}
			return convertChunk(tx, idx.Bucket(typ), typ, param)
		})
		if err != nil || done {
			return err
		}
	}
}

// moveConverted puts one parameter whose keys have all moved to
// idxup/<Type>/<param> in the place of its emptied idx bucket, if there is
// one.
func moveConverted(tx *bolt.Tx, idx *bolt.Bucket) (moved bool, err error) {
	up := tx.Bucket(bucketIdxUpgrade)
	if up == nil {
		return false, nil
	}
	var typ, param []byte
	_ = up.ForEachBucket(func(t []byte) error {
		return up.Bucket(t).ForEachBucket(func(p []byte) error {
			var ob *bolt.Bucket
			if tb := idx.Bucket(t); tb != nil {
				ob = tb.Bucket(p)
			}
			if ob == nil || func() bool { k, _ := ob.Cursor().First(); return k == nil }() {
				typ, param = bytes.Clone(t), bytes.Clone(p)
				return errStopIteration
			}
			return nil
		})
	})
	if param == nil {
		return false, nil
	}
	tb, err := idx.CreateBucketIfNotExists(typ)
	if err != nil {
		return false, err
	}
	if err := tb.DeleteBucket(param); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return false, err
	}
	return true, up.Bucket(typ).MoveBucket(param, tb)
}

// unconvertedIndex finds a parameter bucket of idx whose first value is
// empty: a key per index key. A block never is (blockFormat).
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

// convertChunk moves the first upgradeChunk keys of tb's bucket param, a
// key per index key, to the blocks of idxup/<Type>/<param>.
func convertChunk(tx *bolt.Tx, tb *bolt.Bucket, typ, param []byte) error {
	up, err := tx.CreateBucketIfNotExists(bucketIdxUpgrade)
	if err != nil {
		return err
	}
	upTyp, err := up.CreateBucketIfNotExists(typ)
	if err != nil {
		return err
	}
	blocks, err := upTyp.CreateBucketIfNotExists(param)
	if err != nil {
		return err
	}
	blocks.FillPercent = appendFill
	old := tb.Bucket(param)
	var moved []jentry
	c := old.Cursor()
	for k, _ := c.First(); k != nil && len(moved) < upgradeChunk; k, _ = c.Next() {
		moved = append(moved, jentry{key: bytes.Clone(k), present: true})
	}
	for _, e := range moved {
		if err := old.Delete(e.key); err != nil {
			return err
		}
	}
	var scratch jrun
	return applyBlocks(blocks, moved, &scratch)
}
