package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"healthhub/fhir"
)

// Buckets and key encodings. Numbers are big-endian so keys sort.
//
//	meta                 "schema" -> u64 schema version
//	                     "clock"  -> u64 unix ms of the newest write (keeps time monotonic)
//	res/<Type>           id -> record of the current version (a tombstone when deleted)
//	ver/<Type>           id 0x00 u64(version) -> record of that version
//	log                  u64(seq) -> logEntry (system history, in commit order)
//	tlog/<Type>          u64(seq) -> id 0x00 u64(version) (type history)
//	idx, rix, ixj        search indexes and their journal (index.go, journal.go)
//	auth/clients, auth/keys, auth/jti   the auth package's records (auth.go)
//
// record: 1 byte flags (bit 0: deleted; bit 1: the version an update
// created the resource with, Resource.CreatedByUpdate) | u64 version |
// u64 lastUpdated unix ms | JSON
// logEntry: u64 version | Type 0x00 id
var (
	bucketMeta = []byte("meta")
	bucketRes  = []byte("res")
	bucketVer  = []byte("ver")
	bucketLog  = []byte("log")
	bucketTLog = []byte("tlog")

	keySchema = []byte("schema")
	keyClock  = []byte("clock")
)

// appendFill is how full bbolt fills the pages it splits in buckets whose
// keys mostly arrive in order (server-assigned ids are time-ordered;
// journal sequence numbers count up). bbolt's default, half, suits random
// inserts: in an append-only bucket it leaves every page half empty for
// good, and each commit writes twice the pages its data needs.
const appendFill = 0.9

// schemaVersion is the layout version written on first open. A store with a
// different one is refused, unless initSchema knows how to upgrade it.
// Version 5: index entries derived from the resources (indexer.go), which
// version 4 binaries would read as none.
const schemaVersion = 5

const (
	flagDeleted         = 1 << 0
	flagCreatedByUpdate = 1 << 1 // older binaries ignore it: no new layout
	recordHead          = 1 + 8 + 8
)

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func encodeRecord(r *fhir.Resource) []byte {
	json := r.JSON
	b := make([]byte, recordHead, recordHead+len(json))
	if r.Deleted {
		b[0] |= flagDeleted
	}
	if r.CreatedByUpdate {
		b[0] |= flagCreatedByUpdate
	}
	binary.BigEndian.PutUint64(b[1:9], r.VersionID)
	binary.BigEndian.PutUint64(b[9:17], uint64(r.LastUpdated.UnixMilli()))
	return append(b, json...)
}

var errCorrupt = errors.New("store: corrupt record")

// decodeRecord copies v: bbolt's bytes die with the transaction.
func decodeRecord(typ, id string, v []byte) (*fhir.Resource, error) {
	if len(v) < recordHead {
		return nil, errCorrupt
	}
	r := &fhir.Resource{
		Type:            typ,
		ID:              id,
		Deleted:         v[0]&flagDeleted != 0,
		CreatedByUpdate: v[0]&flagCreatedByUpdate != 0,
		VersionID:       binary.BigEndian.Uint64(v[1:9]),
		LastUpdated:     time.UnixMilli(int64(binary.BigEndian.Uint64(v[9:17]))).UTC(),
	}
	if !r.Deleted {
		r.JSON = bytes.Clone(v[recordHead:])
	}
	return r, nil
}

func versionKey(id string, version uint64) []byte {
	k := make([]byte, 0, len(id)+9)
	k = append(k, id...)
	k = append(k, 0)
	return append(k, u64(version)...)
}

func encodeLogEntry(typ, id string, version uint64) []byte {
	b := make([]byte, 0, 8+len(typ)+1+len(id))
	b = append(b, u64(version)...)
	b = append(b, typ...)
	b = append(b, 0)
	return append(b, id...)
}

func decodeLogEntry(v []byte) (typ, id string, version uint64, err error) {
	if len(v) < 10 {
		return "", "", 0, errCorrupt
	}
	version = binary.BigEndian.Uint64(v[:8])
	i := bytes.IndexByte(v[8:], 0)
	if i < 0 {
		return "", "", 0, errCorrupt
	}
	return string(v[8 : 8+i]), string(v[8+i+1:]), version, nil
}

func encodeTypeLogEntry(id string, version uint64) []byte { return versionKey(id, version) }

func decodeTypeLogEntry(v []byte) (id string, version uint64, err error) {
	if len(v) < 10 || v[len(v)-9] != 0 {
		return "", 0, errCorrupt
	}
	return string(v[:len(v)-9]), binary.BigEndian.Uint64(v[len(v)-8:]), nil
}
