package store

import (
	"encoding/binary"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"healthhub/fhir"
)

type boltTx struct {
	btx *bolt.Tx
	now func() time.Time // nil in a read-only transaction

	journal *journal
	jstage  *jstage // a write transaction's journal, once it has used it
	view    *jstate // a read transaction's journal version

	ix *indexing // a write transaction's

	// pending are the resources this transaction wrote whose index
	// entries SetIndex has not replaced since, each with the version
	// whose entries the index still holds: none (nil) for a first
	// version, which spares SetIndex a lookup in the serial commit path.
	pending map[string]*fhir.Resource // Type 0x00 id ->
}

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// sub returns the per-type bucket inside parent, or nil when absent and
// create is false.
func (t *boltTx) sub(parent []byte, typ string, create bool) (*bolt.Bucket, error) {
	p := t.btx.Bucket(parent)
	if p == nil {
		return nil, errCorrupt
	}
	if b := p.Bucket([]byte(typ)); b != nil || !create {
		return b, nil
	}
	return p.CreateBucket([]byte(typ))
}

func (t *boltTx) Current(typ, id string) (*fhir.Resource, error) {
	b, err := t.sub(bucketRes, typ, false)
	if err != nil || b == nil {
		return nil, errOr(err, ErrNotFound)
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeRecord(typ, id, v)
}

func (t *boltTx) Version(typ, id string, version uint64) (*fhir.Resource, error) {
	b, err := t.sub(bucketVer, typ, false)
	if err != nil || b == nil {
		return nil, errOr(err, ErrNotFound)
	}
	v := b.Get(versionKey(id, version))
	if v == nil {
		return nil, ErrNotFound
	}
	return decodeRecord(typ, id, v)
}

func errOr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// stampTime returns the write time: now, but never before the newest write,
// so the change log is in time order.
func (t *boltTx) stampTime() (time.Time, error) {
	meta := t.btx.Bucket(bucketMeta)
	now := fhir.Instant(t.now())
	if v := meta.Get(keyClock); len(v) == 8 {
		if last := time.UnixMilli(int64(beUint64(v))).UTC(); now.Before(last) {
			now = last
		}
	}
	return now, meta.Put(keyClock, u64(uint64(now.UnixMilli())))
}

func (t *boltTx) Put(typ, id string, body *fhir.Object) (*fhir.Resource, error) {
	return t.put(typ, id, body, true)
}

func (t *boltTx) Create(typ, id string, body *fhir.Object) (*fhir.Resource, error) {
	return t.put(typ, id, body, false)
}

// put writes the next version of Type/id; byUpdate tells an update (Put)
// from a create (Create).
func (t *boltTx) put(typ, id string, body *fhir.Object, byUpdate bool) (*fhir.Resource, error) {
	if t.now == nil {
		return nil, bolt.ErrTxNotWritable
	}
	prev, err := t.Current(typ, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if prev != nil && !byUpdate {
		return nil, fhir.Errorf(fhir.Conflict, "duplicate", "%s/%s exists: a create needs a new id", typ, id)
	}
	version := uint64(1)
	if prev != nil {
		version = prev.VersionID + 1
	}
	when, err := t.stampTime()
	if err != nil {
		return nil, err
	}
	js, err := fhir.Stamp(body, id, version, when)
	if err != nil {
		return nil, &fhir.Error{Kind: fhir.Invalid, Issues: []fhir.Issue{{Severity: "error", Code: "structure", Diagnostics: err.Error(), Expression: []string{typ + ".meta"}}}}
	}
	r := &fhir.Resource{Type: typ, ID: id, VersionID: version, LastUpdated: when, JSON: js, CreatedByUpdate: byUpdate && (prev == nil || prev.Deleted)}
	if err := t.write(r); err != nil {
		return nil, err
	}
	t.wrote(typ, id, prev)
	return r, nil
}

// wrote notes, for SetIndex, that Type/id has a new version that
// replaced prev (nil: none).
func (t *boltTx) wrote(typ, id string, prev *fhir.Resource) {
	k := pendingKey(typ, id)
	if _, ok := t.pending[k]; ok {
		return // the index still holds what the first write replaced
	}
	if t.pending == nil {
		t.pending = map[string]*fhir.Resource{}
	}
	t.pending[k] = prev
}

func pendingKey(typ, id string) string { return typ + "\x00" + id }

func (t *boltTx) Delete(typ, id string) (*fhir.Resource, error) {
	if t.now == nil {
		return nil, bolt.ErrTxNotWritable
	}
	prev, err := t.Current(typ, id)
	if err != nil {
		return nil, err
	}
	if prev.Deleted {
		return prev, nil
	}
	when, err := t.stampTime()
	if err != nil {
		return nil, err
	}
	r := &fhir.Resource{Type: typ, ID: id, VersionID: prev.VersionID + 1, LastUpdated: when, Deleted: true}
	if err := t.write(r); err != nil {
		return nil, err
	}
	t.wrote(typ, id, prev)
	return r, nil
}

// write stores r as the current version, in the version history, and in
// the system and type change logs.
func (t *boltTx) write(r *fhir.Resource) error {
	rec := encodeRecord(r)
	res, err := t.sub(bucketRes, r.Type, true)
	if err != nil {
		return err
	}
	if err := res.Put([]byte(r.ID), rec); err != nil {
		return err
	}
	ver, err := t.sub(bucketVer, r.Type, true)
	if err != nil {
		return err
	}
	if err := ver.Put(versionKey(r.ID, r.VersionID), rec); err != nil {
		return err
	}
	log := t.btx.Bucket(bucketLog)
	seq, err := log.NextSequence()
	if err != nil {
		return err
	}
	if err := log.Put(u64(seq), encodeLogEntry(r.Type, r.ID, r.VersionID)); err != nil {
		return err
	}
	tlog, err := t.sub(bucketTLog, r.Type, true)
	if err != nil {
		return err
	}
	return tlog.Put(u64(seq), encodeTypeLogEntry(r.ID, r.VersionID))
}
