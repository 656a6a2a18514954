package interaction

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/store"
)

// lastUpdatedParam is answered from the time the store assigns inside the
// transaction, not from the client's body.
const lastUpdatedParam = "_lastUpdated"

// indexEntries extracts the search-index keys of a resource about to be
// written (before the transaction: extraction is the expensive part). obj
// must already carry the final id. Types without search parameters get
// none. _lastUpdated is left to lastUpdatedEntries; parameters the index
// does not keep (search.Param.Stored) are left out.
func (s *Service) indexEntries(typ string, obj *fhir.Object) ([]store.IndexEntry, error) {
	return storedEntries(s.registry, typ, obj.Bytes())
}

func storedEntries(reg *search.Registry, typ string, body []byte) ([]store.IndexEntry, error) {
	if reg == nil || !reg.Searchable(typ) {
		return nil, nil
	}
	entries, err := reg.ExtractStored(typ, body)
	if err != nil {
		return nil, fhir.Errorf(fhir.Internal, "exception", "search index extraction failed").Wrap(err)
	}
	out := make([]store.IndexEntry, 0, 2*len(entries))
	for _, e := range entries {
		if e.Param == lastUpdatedParam {
			continue
		}
		for _, k := range e.Value.Keys() {
			out = append(out, store.IndexEntry{Param: e.Param, Key: k})
		}
	}
	// Two values often make the same key (an identifier's value under two
	// systems has one code-only key): write each once. Sorted, the puts
	// also walk each index in order.
	slices.SortFunc(out, compareEntries)
	return slices.CompactFunc(out, func(a, b store.IndexEntry) bool { return compareEntries(a, b) == 0 }), nil
}

func compareEntries(a, b store.IndexEntry) int {
	if c := strings.Compare(a.Param, b.Param); c != 0 {
		return c
	}
	return bytes.Compare(a.Key, b.Key)
}

// Indexer derives the index entries of a stored version as the service
// writes them (putIndexed), for a store that keeps no copy of them
// (store.Indexer).
type Indexer struct{ registry *search.Registry }

// NewIndexer returns the Indexer of the service built with reg.
func NewIndexer(reg *search.Registry) Indexer { return Indexer{registry: reg} }

// IndexEntries implements store.Indexer: what putIndexed gives SetIndex
// for r.
func (x Indexer) IndexEntries(r *fhir.Resource) ([]store.IndexEntry, error) {
	if r.Deleted || x.registry == nil || !x.registry.Searchable(r.Type) {
		return nil, nil
	}
	entries, err := storedEntries(x.registry, r.Type, r.JSON)
	if err != nil {
		return nil, err
	}
	return append(lastUpdatedEntries(r.LastUpdated), entries...), nil
}

// IndexFingerprint implements store.Indexer.
func (x Indexer) IndexFingerprint() string {
	if x.registry == nil {
		return "none"
	}
	return x.registry.IndexFingerprint()
}

// lastUpdatedEntries are the _lastUpdated keys of a version written at t.
func lastUpdatedEntries(t time.Time) []store.IndexEntry {
	v := search.DateValue{DateRange: fhir.DateRange{Start: t, End: t.Add(time.Millisecond)}}
	var out []store.IndexEntry
	for _, k := range v.Keys() {
		out = append(out, store.IndexEntry{Param: lastUpdatedParam, Key: k})
	}
	return out
}

// putIndexed writes a version and its index entries in tx, for p: every
// write of a resource goes through here, so here a principal confined to a
// patient's compartment is held to it (mayWrite). create: the write is a
// create (POST, a server-assigned id), not an update.
func (s *Service) putIndexed(tx store.Tx, p auth.Principal, typ, id string, obj *fhir.Object, entries []store.IndexEntry, create bool) (*fhir.Resource, error) {
	if err := s.mayWrite(tx, p, typ, id, obj); err != nil {
		return nil, err
	}
	put := tx.Put
	if create {
		put = tx.Create
	}
	r, err := put(typ, id, obj)
	if err != nil {
		return nil, err
	}
	if s.registry == nil || !s.registry.Searchable(typ) {
		return r, nil
	}
	// _lastUpdated sorts before every parameter the index keeps, so the
	// entries stay sorted and the store need not sort them again.
	all := make([]store.IndexEntry, 0, len(entries)+2)
	all = append(append(all, lastUpdatedEntries(r.LastUpdated)...), entries...)
	return r, tx.SetIndex(typ, id, all)
}
