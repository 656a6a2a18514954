package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxCheckProblems bounds the report of Check: past this many, the store is
// broken enough and the rest would only be noise.
const maxCheckProblems = 20

// Check verifies the store's invariants in one read transaction and reports
// every violation it finds (up to a bound), joined:
//
//   - every current record (res) equals, byte for byte, the newest version
//     record (ver) of that resource, and every versioned resource has one;
//   - versions of a resource count 1, 2, 3 ... without gaps, each record's
//     version field matches its key, and each non-deleted record is JSON;
//   - every system log entry and every type log entry points at an existing
//     version, the type log holds the same entries as the system log under
//     the same sequence numbers, and no version is logged twice;
//   - the log has as many entries as there are version records;
//   - lastUpdated never decreases along the log and the stored clock is not
//     behind the newest write;
//   - search indexes: every idx entry is one of its resource's entries
//     (its rix record, or what the Indexer derives from its current
//     version) and each of those is in idx, and only current, not deleted
//     resources have entries, idx being the B+trees as the index journal
//     amends them; the journal in memory is the one in the file.
//
// It reads the whole database: a test and repair tool, not a request path.
func (s *Bolt) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(btx *bolt.Tx) error {
		c := &checker{ctx: ctx, btx: btx, ix: s.ix}
		c.checkJournal(s.journal)
		c.run()
		if c.err != nil {
			return c.err
		}
		return errors.Join(c.problems...)
	})
}

type checker struct {
	ctx      context.Context
	btx      *bolt.Tx
	ix       *indexing
	journal  *jstate // the index journal as ixj holds it
	problems []error
	err      error // ctx error: stop, report it alone
	n        int
}

func (c *checker) fail(format string, args ...any) {
	if len(c.problems) < maxCheckProblems {
		c.problems = append(c.problems, fmt.Errorf("store check: "+format, args...))
	}
}

// tick checks the context every few hundred keys; false means stop.
func (c *checker) tick() bool {
	if c.err != nil {
		return false
	}
	if c.n++; c.n%ctxCheckEvery == 0 {
		c.err = c.ctx.Err()
	}
	return c.err == nil
}

func (c *checker) run() {
	for _, name := range [][]byte{bucketMeta, bucketRes, bucketVer, bucketLog, bucketTLog} {
		if c.btx.Bucket(name) == nil {
			c.fail("bucket %q is missing", name)
		}
	}
	if len(c.problems) > 0 {
		return
	}
	versions := c.checkVersions()
	if c.err != nil {
		return
	}
	c.checkCurrent()
	if c.err != nil {
		return
	}
	c.checkLog(versions)
	if c.err != nil {
		return
	}
	c.checkIndexes()
}

// checkVersions walks ver/<Type> and returns the number of version records.
func (c *checker) checkVersions() (count int) {
	ver := c.btx.Bucket(bucketVer)
	res := c.btx.Bucket(bucketRes)
	_ = ver.ForEachBucket(func(typ []byte) error {
		b := ver.Bucket(typ)
		cur := res.Bucket(typ)
		var id []byte // resource being walked
		var last uint64
		var lastRec []byte
		finish := func() {
			if id == nil {
				return
			}
			var v []byte
			if cur != nil {
				v = cur.Get(id)
			}
			switch {
			case v == nil:
				c.fail("%s/%s has versions 1..%d but no current record", typ, id, last)
			case !bytes.Equal(v, lastRec):
				c.fail("%s/%s: the current record differs from its newest version %d", typ, id, last)
			}
		}
		cr := b.Cursor()
		for k, v := cr.First(); k != nil; k, v = cr.Next() {
			if !c.tick() {
				return c.err
			}
			count++
			if v == nil || len(k) < 10 || k[len(k)-9] != 0 {
				c.fail("ver/%s: malformed key %q", typ, k)
				continue
			}
			kid, n := k[:len(k)-9], beUint64(k[len(k)-8:])
			if !bytes.Equal(kid, id) {
				finish()
				id, last = bytes.Clone(kid), 0
			}
			if n != last+1 {
				c.fail("%s/%s: version %d follows version %d", typ, id, n, last)
			}
			last, lastRec = n, v
			c.checkRecord(string(typ), string(id), n, v)
		}
		finish()
		return nil
	})
	return count
}

func (c *checker) checkRecord(typ, id string, version uint64, v []byte) {
	r, err := decodeRecord(typ, id, v)
	switch {
	case err != nil:
		c.fail("%s/%s version %d: %v", typ, id, version, err)
	case r.VersionID != version:
		c.fail("%s/%s version %d: the record says version %d", typ, id, version, r.VersionID)
	case !r.Deleted && !json.Valid(r.JSON):
		c.fail("%s/%s version %d: the stored resource is not JSON", typ, id, version)
	case r.Deleted && len(v) != recordHead:
		c.fail("%s/%s version %d: a tombstone with a body", typ, id, version)
	}
}

// checkCurrent finds current records without versions (the other direction
// is checked while walking the versions).
func (c *checker) checkCurrent() {
	res := c.btx.Bucket(bucketRes)
	ver := c.btx.Bucket(bucketVer)
	_ = res.ForEachBucket(func(typ []byte) error {
		vb := ver.Bucket(typ)
		return res.Bucket(typ).ForEach(func(id, v []byte) error {
			if !c.tick() {
				return c.err
			}
			if len(v) < recordHead {
				c.fail("res/%s/%s: corrupt record", typ, id)
				return nil
			}
			n := beUint64(v[1:9])
			if vb == nil || vb.Get(versionKey(string(id), n)) == nil {
				c.fail("%s/%s: the current record is version %d, which is not in the version history", typ, id, n)
			}
			return nil
		})
	})
}

func (c *checker) checkLog(versions int) {
	ver := c.btx.Bucket(bucketVer)
	tlog := c.btx.Bucket(bucketTLog)
	seen := make(map[string]bool, versions)
	var entries int
	var prev time.Time
	cr := c.btx.Bucket(bucketLog).Cursor()
	for k, v := cr.First(); k != nil; k, v = cr.Next() {
		if !c.tick() {
			return
		}
		entries++
		if len(k) != 8 {
			c.fail("log: malformed key %q", k)
			continue
		}
		seq := beUint64(k)
		typ, id, n, err := decodeLogEntry(v)
		if err != nil {
			c.fail("log %d: %v", seq, err)
			continue
		}
		vk := versionKey(id, n)
		if key := typ + "/" + string(vk); seen[key] {
			c.fail("log %d: %s/%s version %d is logged twice", seq, typ, id, n)
		} else {
			seen[key] = true
		}
		var rec []byte
		if b := ver.Bucket([]byte(typ)); b != nil {
			rec = b.Get(vk)
		}
		if rec == nil {
			c.fail("log %d points at %s/%s version %d, which does not exist", seq, typ, id, n)
		} else if len(rec) >= recordHead {
			when := time.UnixMilli(int64(beUint64(rec[9:17])))
			if when.Before(prev) {
				c.fail("log %d: lastUpdated %s is before the previous entry's %s", seq, when.UTC(), prev.UTC())
			}
			prev = when
		}
		var tv []byte
		if b := tlog.Bucket([]byte(typ)); b != nil {
			tv = b.Get(k)
		}
		if !bytes.Equal(tv, encodeTypeLogEntry(id, n)) {
			c.fail("log %d (%s/%s version %d) has no matching tlog/%s entry", seq, typ, id, n, typ)
		}
	}
	if entries != versions {
		c.fail("the log has %d entries, the version history %d records", entries, versions)
	}
	var tentries int
	_ = tlog.ForEachBucket(func(typ []byte) error {
		b := tlog.Bucket(typ)
		vb := ver.Bucket(typ)
		return b.ForEach(func(k, v []byte) error {
			if !c.tick() {
				return c.err
			}
			tentries++
			id, n, err := decodeTypeLogEntry(v)
			if err != nil {
				c.fail("tlog/%s %x: %v", typ, k, err)
				return nil
			}
			if vb == nil || vb.Get(versionKey(id, n)) == nil {
				c.fail("tlog/%s %x points at %s/%s version %d, which does not exist", typ, k, typ, id, n)
			}
			return nil
		})
	})
	if c.err == nil && tentries != entries {
		c.fail("the type logs have %d entries, the system log %d", tentries, entries)
	}
	if v := c.btx.Bucket(bucketMeta).Get(keyClock); entries > 0 {
		if len(v) != 8 {
			c.fail("meta clock is missing")
		} else if clock := time.UnixMilli(int64(beUint64(v))); clock.Before(prev) {
			c.fail("meta clock %s is behind the newest write %s", clock.UTC(), prev.UTC())
		}
	}
}

// checkJournal reads the index journal from the file and compares it with
// the version in memory that searches of this snapshot read.
func (c *checker) checkJournal(j *journal) {
	durable, err := loadJournal(c.btx, c.ix)
	if err != nil {
		c.fail("ixj: %v", err)
		durable = emptyJState
	}
	c.journal = durable
	mem, ok := j.viewAt(uint64(c.btx.ID()))
	if !ok {
		return // writers moved on; nothing to compare with
	}
	a, b := durable.iter(nil, nil), mem.iter(nil, nil)
	for {
		d, okd := a.next()
		m, okm := b.next()
		if !okd && !okm {
			return
		}
		if okd != okm || !bytes.Equal(d.key, m.key) || d.present != m.present {
			c.fail("the index journal in memory differs from the file at %q / %q", d.key, m.key)
			return
		}
	}
}

// indexHas reports whether the index holds key ik of (Type, param): the
// journal's word if it has one, else the B+tree's.
func (c *checker) indexHas(pb *bolt.Bucket, typ, param string, ik []byte) bool {
	if e, ok := c.journal.get(journalKey(typ, param, ik)); ok {
		return e.present
	}
	return pb != nil && blockHas(pb, ik)
}

// checkIndexes compares idx (value -> id) with each resource's entries
// (rix, or derived: entriesLookup), and both with the current records.
func (c *checker) checkIndexes() {
	idx, rix, res := c.btx.Bucket(bucketIdx), c.btx.Bucket(bucketRix), c.btx.Bucket(bucketRes)
	if idx == nil || rix == nil {
		return // a store opened before indexes existed gets them on Open
	}
	if c.btx.Bucket(bucketMeta).Get(keyIndexBlocksPending) != nil || c.btx.Bucket(bucketIdxUpgrade) != nil {
		c.fail("idx: an upgrade to index blocks (idxblock.go) is unfinished, which Open does not leave")
	}
	entriesOf := entriesLookup(c.btx, c.ix)
	// What each resource should have in the index, read once per id.
	lists := map[string]map[string]map[string]bool{} // Type -> id -> param 0x00 key
	listOf := func(typ, id string) map[string]bool {
		ids := lists[typ]
		if ids == nil {
			ids = map[string]map[string]bool{}
			lists[typ] = ids
		}
		set, seen := ids[id]
		if !seen {
			set = map[string]bool{}
			entries, err := entriesOf([]byte(typ), []byte(id))
			if err != nil {
				c.fail("%s/%s: its index entries: %v", typ, id, err)
			}
			for _, e := range entries {
				set[e.Param+"\x00"+string(e.Key)] = true
			}
			ids[id] = set
		}
		return set
	}
	listed := func(typ, id, param string, vk []byte) bool { return listOf(typ, id)[param+"\x00"+string(vk)] }
	// rix records only of current resources.
	_ = rix.ForEachBucket(func(typ []byte) error {
		rb := res.Bucket(typ)
		return rix.Bucket(typ).ForEach(func(id, v []byte) error {
			if !c.tick() {
				return c.err
			}
			var cur []byte
			if rb != nil {
				cur = rb.Get(id)
			}
			if len(cur) < recordHead || cur[0]&flagDeleted != 0 {
				c.fail("rix/%s/%s: index entries for a resource that is absent or deleted", typ, id)
			}
			return nil
		})
	})
	// Every resource's entries in idx.
	_ = res.ForEachBucket(func(typ []byte) error {
		ib := idx.Bucket(typ)
		return res.Bucket(typ).ForEach(func(id, _ []byte) error {
			if !c.tick() {
				return c.err
			}
			for key := range listOf(string(typ), string(id)) {
				param, vk, _ := strings.Cut(key, "\x00")
				var pb *bolt.Bucket
				if ib != nil {
					pb = ib.Bucket([]byte(param))
				}
				if !c.indexHas(pb, string(typ), param, indexKey([]byte(vk), string(id))) {
					c.fail("%s/%s has the index entry %s %x, which idx does not", typ, id, param, vk)
				}
			}
			return nil
		})
	})
	if c.err != nil {
		return
	}
	// Nothing else in idx.
	_ = idx.ForEachBucket(func(typ []byte) error {
		ib := idx.Bucket(typ)
		return ib.ForEachBucket(func(param []byte) error {
			pb := ib.Bucket(param)
			return c.checkBlocks(pb, string(typ), string(param), func(k []byte) {
				vk, id, ok := splitIndexKey(k)
				if !ok {
					c.fail("idx/%s/%s: malformed key %x", typ, param, k)
					return
				}
				if e, ok := c.journal.get(journalKey(string(typ), string(param), k)); ok && !e.present {
					return // removed by the journal
				}
				if !listed(string(typ), id, string(param), vk) {
					c.fail("idx/%s/%s %x -> %s is a stale entry: not one of the resource's", typ, param, vk, id)
				}
			})
		})
	})
	if c.err != nil {
		return
	}
	c.journal.all(func(e jentry) bool {
		if !c.tick() {
			return false
		}
		typ, param, k, ok := splitJournalKey(e.key)
		vk, id, ok2 := splitIndexKey(k)
		if !ok || !ok2 {
			c.fail("ixj: malformed key %x", e.key)
			return true
		}
		if e.present && !listed(typ, id, param, vk) {
			c.fail("ixj %s/%s %x -> %s is a stale entry: not one of the resource's", typ, param, vk, id)
		}
		return true
	})
}

// checkBlocks checks the blocks of a parameter's bucket (idxblock.go):
// each decodes; its keys ascend, lie above the previous block's bound and
// not above its own; every block but the last holds a key; the last is
// bound by blockEnd. fn gets every key.
func (c *checker) checkBlocks(pb *bolt.Bucket, typ, param string, fn func(k []byte)) error {
	var (
		it        blockIter
		prev      []byte // the previous key
		lastBound []byte // the previous block's bound
	)
	bc := pb.Cursor()
	for bound, bv := bc.First(); bound != nil; bound, bv = bc.Next() {
		if bv == nil {
			c.fail("idx/%s/%s: a nested bucket %x among the blocks", typ, param, bound)
			continue
		}
		it.reset(bv)
		n := 0
		for it.next() {
			if !c.tick() {
				return c.err
			}
			if prev != nil && bytes.Compare(it.key, prev) <= 0 {
				c.fail("idx/%s/%s: key %x after %x, out of order", typ, param, it.key, prev)
			}
			if lastBound != nil && bytes.Compare(it.key, lastBound) <= 0 {
				c.fail("idx/%s/%s: key %x in the block after the one bound by %x", typ, param, it.key, lastBound)
			}
			if bytes.Compare(it.key, bound) > 0 {
				c.fail("idx/%s/%s: key %x in the block bound by %x", typ, param, it.key, bound)
			}
			n++
			prev = append(prev[:0], it.key...)
			fn(it.key)
		}
		if it.bad || n == 0 && !bytes.Equal(bound, blockEnd) {
			c.fail("idx/%s/%s: block %x is malformed or empty", typ, param, bound)
		}
		lastBound = append(lastBound[:0], bound...)
	}
	if lastBound != nil && !bytes.Equal(lastBound, blockEnd) {
		c.fail("idx/%s/%s: the last block is bound by %x, not %x", typ, param, lastBound, blockEnd)
	}
	return nil
}
