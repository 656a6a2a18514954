package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"healthhub/store"
)

// TestIndexScans: entries come back in value key, then id, order (ids of
// different lengths included), SetIndex replaces a resource's entries, and
// ScanIndexAfter resumes exactly after an entry; whether the entries sit in
// the index journal, in the B+trees, or some in each (a journal bound of 1
// or 3 keys folds during the writes), after an explicit fold, and after the
// store is closed and opened again (the journal replayed).
func TestIndexScans(t *testing.T) {
	for _, max := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("IndexJournalMax=%d", max), func(t *testing.T) { testIndexScans(t, max) })
	}
}

func testIndexScans(t *testing.T, journalMax int) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{IndexJournalMax: journalMax})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := func(id string, keys ...string) {
		t.Helper()
		put(t, s, "Patient", id)
		var es []store.IndexEntry
		for _, k := range keys {
			es = append(es, store.IndexEntry{Param: "p", Key: []byte(k)})
		}
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.SetIndex("Patient", id, es) }); err != nil {
			t.Fatal(err)
		}
	}
	set("b", "v1\x00", "v2\x00")
	set("ab", "v1\x00")
	set("a", "v1\x00")
	set("abc", "v1\x00", "v3\x00")
	set("c", "v9\x00")
	set("c", "v2\x00") // replaces v9
	set("d", "v1\x00", "v8\x00")
	set("d", "v8\x00", "v9\x00") // keeps v8, drops v1, adds v9

	var scan func(fn func(tx store.Tx, visit func([]byte, string) bool) error) string
	scan = func(fn func(tx store.Tx, visit func([]byte, string) bool) error) string {
		t.Helper()
		var got []string
		err := s.View(ctx, func(tx store.Tx) error {
			return fn(tx, func(vk []byte, id string) bool {
				got = append(got, strings.TrimSuffix(string(vk), "\x00")+"/"+id)
				return true
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, " ")
	}
	tests := []struct {
		name string
		fn   func(tx store.Tx, visit func([]byte, string) bool) error
		want string
	}{
		{"all", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndex(ctx, "Patient", "p", nil, nil, v)
		}, "v1/a v1/ab v1/abc v1/b v2/b v2/c v3/abc v8/d v9/d"},
		{"one value", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndex(ctx, "Patient", "p", []byte("v2\x00"), []byte("v2\x01"), v)
		}, "v2/b v2/c"},
		{"after a short id", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndexAfter(ctx, "Patient", "p", []byte("v1\x00"), "a", []byte("v1\x01"), v)
		}, "v1/ab v1/abc v1/b"},
		{"after the last of a value", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndexAfter(ctx, "Patient", "p", []byte("v1\x00"), "b", nil, v)
		}, "v2/b v2/c v3/abc v8/d v9/d"},
		{"after an entry that is gone", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndexAfter(ctx, "Patient", "p", []byte("v9\x00"), "c", nil, v)
		}, "v9/d"},
		{"after an absent id, between two", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndexAfter(ctx, "Patient", "p", []byte("v1\x00"), "aa", nil, v)
		}, "v1/ab v1/abc v1/b v2/b v2/c v3/abc v8/d v9/d"},
		{"unknown parameter", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndex(ctx, "Patient", "q", nil, nil, v)
		}, ""},
	}
	check := func(when string) {
		t.Helper()
		for _, tt := range tests {
			if got := scan(tt.fn); got != tt.want {
				t.Errorf("%s, %s: got %q, want %q", when, tt.name, got, tt.want)
			}
		}
	}
	check("as written")
	if err := s.FoldIndexJournal(ctx); err != nil {
		t.Fatal(err)
	}
	check("folded")
	// An empty set of entries removes all of a resource's entries; the
	// removal stays in the journal across a reopen.
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.SetIndex("Patient", "abc", nil) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, dir, store.Options{IndexJournalMax: journalMax})
	got := scan(tests[0].fn)
	if want := "v1/a v1/ab v1/b v2/b v2/c v8/d v9/d"; got != want {
		t.Errorf("after removing abc and reopening: got %q, want %q", got, want)
	}
}

// TestIndexJournalSnapshots: every read transaction sees the index exactly
// as of its snapshot of the resources, while writers move entries between
// values and the journal folds (a bound of 4 keys folds every few writes,
// in the background): each resource is listed once, under the value of the
// version the same transaction reads.
func TestIndexJournalSnapshots(t *testing.T) {
	s := openStore(t, store.Options{IndexJournalMax: 4})
	ctx := context.Background()
	const resources, writers, each = 8, 4, 40
	ids := make([]string, resources)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%d", i)
	}
	key := func(version uint64) []byte { return []byte(fmt.Sprintf("v%06d\x00", version)) }
	write := func(id string) error {
		return s.Update(ctx, func(tx store.Tx) error {
			r, err := tx.Put("Patient", id, object(t, body("Patient")))
			if err != nil {
				return err
			}
			return tx.SetIndex("Patient", id, []store.IndexEntry{{Param: "p", Key: key(r.VersionID)}})
		})
	}
	for _, id := range ids {
		if err := write(id); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var done atomic.Bool
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := write(ids[(w*each+i)%resources]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	var reads atomic.Int64
	for range 3 {
		readers.Go(func() {
			for !done.Load() || reads.Load() == 0 {
				err := s.View(ctx, func(tx store.Tx) error {
					want := map[string]string{}
					for _, id := range ids {
						r, err := tx.Current("Patient", id)
						if err != nil {
							return err
						}
						want[id] = string(key(r.VersionID))
					}
					seen := map[string]int{}
					err := tx.ScanIndex(ctx, "Patient", "p", nil, nil, func(vk []byte, id string) bool {
						seen[id]++
						if want[id] != string(vk) {
							t.Errorf("%s is indexed under %q, its current version under %q", id, vk, want[id])
						}
						return true
					})
					for _, id := range ids {
						if seen[id] != 1 {
							t.Errorf("%s is listed %d times", id, seen[id])
						}
					}
					return err
				})
				if err != nil {
					t.Error(err)
				}
				reads.Add(1)
				if t.Failed() {
					return
				}
			}
		})
	}
	wg.Wait()
	done.Store(true)
	readers.Wait()
	t.Logf("%d consistent reads", reads.Load())
}

// scanPatientP lists the entries of Patient's index "p" as value/id, value
// keys as pEntry makes them.
func scanPatientP(t *testing.T, tx store.Tx) string {
	t.Helper()
	var got []string
	if err := tx.ScanIndex(context.Background(), "Patient", "p", nil, nil, func(vk []byte, id string) bool {
		got = append(got, strings.TrimSuffix(string(vk), "\x00")+"/"+id)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(got, " ")
}

// pEntry is an index entry of "p" with the value v.
func pEntry(v string) []store.IndexEntry {
	return []store.IndexEntry{{Param: "p", Key: []byte(v + "\x00")}}
}

// TestIndexReadsItsOwnWrites: a write transaction's scans see the index
// entries it set before them, each time (a transaction Bundle resolves
// conditional references between its writes), and none of them once it
// rolls back.
func TestIndexReadsItsOwnWrites(t *testing.T) {
	s := openStore(t, store.Options{})
	ctx := context.Background()
	scan := func(tx store.Tx) string { return scanPatientP(t, tx) }
	put(t, s, "Patient", "a")
	put(t, s, "Patient", "b")
	errRollBack := errors.New("roll back")
	err := s.Update(ctx, func(tx store.Tx) error {
		steps := []struct {
			id, key, want string
		}{
			{"a", "v1", "v1/a"},
			{"b", "v1", "v1/a v1/b"},
			{"a", "v2", "v1/b v2/a"},
			{"b", "", "v2/a"},
		}
		for _, st := range steps {
			var es []store.IndexEntry
			if st.key != "" {
				es = pEntry(st.key)
			}
			if err := tx.SetIndex("Patient", st.id, es); err != nil {
				return err
			}
			if got := scan(tx); got != st.want {
				t.Errorf("after setting %s to %q: got %q, want %q", st.id, st.key, got, st.want)
			}
		}
		return errRollBack
	})
	if !errors.Is(err, errRollBack) {
		t.Fatal(err)
	}
	if err := s.View(ctx, func(tx store.Tx) error {
		if got := scan(tx); got != "" {
			t.Errorf("after the rollback: got %q, want nothing", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestIndexAfterFirstVersions: SetIndex after the write of a resource's
// first version may skip the rix lookup (nothing can be there yet), but
// only for that resource and once: a second SetIndex of it in the same
// transaction, one after an update, or one of another type's resource
// with the same id, still replaces the entries there were.
func TestIndexAfterFirstVersions(t *testing.T) {
	s := openStore(t, store.Options{})
	ctx := context.Background()
	scan := func(tx store.Tx) string { return scanPatientP(t, tx) }
	o := object(t, body("Patient"))
	type step struct {
		write     string // "create", "put", "delete" or "" (SetIndex only)
		id, key   string
		wantIndex string
	}
	for _, steps := range [][]step{
		{ // one transaction
			{"create", "n", "v1", "v1/n"},
			{"", "n", "v2", "v2/n"},
			{"put", "m", "v1", "v1/m v2/n"}, // update-as-create: a first version too
			{"put", "n", "v3", "v1/m v3/n"},
			{"", "n", "", "v1/m"},
		},
		{ // the next one, on what the first left
			{"put", "n", "v4", "v1/m v4/n"},
			{"delete", "m", "", "v4/n"},
			{"put", "m", "v5", "v4/n v5/m"}, // re-created: its deleted version was there before
			{"create", "k", "v5", "v4/n v5/k v5/m"},
		},
		{ // a first version of another type with the same id as an indexed Patient
			{"create:Observation", "n", "", "v4/n v5/k v5/m"},
			{"", "n", "v6", "v5/k v5/m v6/n"},
		},
	} {
		err := s.Update(ctx, func(tx store.Tx) error {
			for _, st := range steps {
				var err error
				switch st.write {
				case "create:Observation":
					_, err = tx.Create("Observation", st.id, object(t, body("Observation")))
				case "create":
					_, err = tx.Create("Patient", st.id, o)
				case "put":
					_, err = tx.Put("Patient", st.id, o)
				case "delete":
					_, err = tx.Delete("Patient", st.id)
				}
				if err != nil {
					return err
				}
				if st.write == "create:Observation" {
					continue // written, not indexed: the next step indexes the Patient
				}
				var es []store.IndexEntry
				if st.key != "" {
					es = pEntry(st.key)
				}
				if err := tx.SetIndex("Patient", st.id, es); err != nil {
					return err
				}
				if got := scan(tx); got != st.wantIndex {
					t.Errorf("after %s %s and %q: got %q, want %q", st.write, st.id, st.key, got, st.wantIndex)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestIndexJournalChunkedFolds: random index changes, folds of one chunk
// at a time (passes over the key space end and start), and reopens (the
// journal replayed past its fold markers) leave the index equal to a model
// at every step, and the store's invariants hold (Check compares the
// journal in memory with the one in the file). Resources gain entries
// from none (a create's "indexed" record, replayed from rix) and lose them
// all, again and again, between folds and reopens.
func TestIndexJournalChunkedFolds(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { testIndexJournalChunkedFolds(t, seed) })
	}
}

func testIndexJournalChunkedFolds(t *testing.T, seed uint64) {
	dir := t.TempDir()
	// Chunks of 2 keys; writes also fold on their own past 16 keys.
	opt := store.Options{IndexJournalMax: 16}
	s, err := store.Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, seed))
	model := map[string]map[string]bool{} // id -> "p/value"
	const ids = 30
	for i := range ids {
		put(t, s, "Patient", fmt.Sprintf("r%02d", i))
	}
	check := func(when string) {
		t.Helper()
		store.CheckIndexModel(t, s, "Patient", []string{"p"}, model, when)
	}
	for step := range 300 {
		switch n := r.IntN(10); {
		case n < 6: // a write transaction with a few changes
			store.WriteRandomIndex(t, s, r, "Patient", ids, []string{"p"}, 40, 3, model)
		case n < 9:
			if err := s.FoldIndexJournalChunk(ctx); err != nil {
				t.Fatal(err)
			}
		default:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = store.Open(dir, opt); err != nil {
				t.Fatal(err)
			}
		}
		check(fmt.Sprintf("step %d", step))
	}
	if err := s.FoldIndexJournal(ctx); err != nil {
		t.Fatal(err)
	}
	check("folded")
	if keys := s.Stats().JournalKeys; keys != 0 {
		t.Errorf("%d keys left in the journal after folding it all", keys)
	}
}

// TestIndexJournalBackpressure: writers that add index keys faster than
// folds take them out wait, so the journal stays near its bound (twice
// it, plus what one group commit adds) instead of growing with the load.
func TestIndexJournalBackpressure(t *testing.T) {
	const max, writers, each, keys = 40, 8, 60, 5
	s := openStore(t, store.Options{IndexJournalMax: max})
	ctx := context.Background()
	var peak atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			o := object(t, body("Patient"))
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				err := s.Update(ctx, func(tx store.Tx) error {
					if _, err := tx.Put("Patient", id, o); err != nil {
						return err
					}
					es := make([]store.IndexEntry, keys)
					for k := range es {
						es[k] = store.IndexEntry{Param: "p", Key: []byte(fmt.Sprintf("%s-%d\x00", id, k))}
					}
					return tx.SetIndex("Patient", id, es)
				})
				if err != nil {
					t.Error(err)
					return
				}
				if n := int64(s.Stats().JournalKeys); n > peak.Load() {
					peak.Store(n)
				}
			}
		})
	}
	wg.Wait()
	if limit := int64(2*max + writers*keys); peak.Load() > limit {
		t.Errorf("the journal reached %d keys, want at most %d", peak.Load(), limit)
	}
	var n int
	if err := s.View(ctx, func(tx store.Tx) error {
		return tx.ScanIndex(ctx, "Patient", "p", nil, nil, func([]byte, string) bool { n++; return true })
	}); err != nil {
		t.Fatal(err)
	}
	if n != writers*each*keys {
		t.Errorf("the index holds %d keys, want %d", n, writers*each*keys)
	}
	// the background folds' metrics: folds and their plans took time
	if st := s.Stats(); st.JournalFolds == 0 || st.JournalFoldTime <= 0 || st.JournalFoldPlanTime <= 0 {
		t.Errorf("after background folds: %d folds, fold time %v, plan time %v", st.JournalFolds, st.JournalFoldTime, st.JournalFoldPlanTime)
	}
}
