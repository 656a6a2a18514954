package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"healthhub/fhir"
	"healthhub/store"
)

// fieldIndexer stands in for the search registry's extraction: a resource
// has one entry per top-level string element (but resourceType and id),
// under the element's name.
type fieldIndexer struct{ fingerprint string }

func (x fieldIndexer) IndexEntries(r *fhir.Resource) ([]store.IndexEntry, error) {
	return fieldEntries(r.JSON)
}

func (x fieldIndexer) IndexFingerprint() string { return x.fingerprint }

func fieldEntries(body []byte) ([]store.IndexEntry, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	var out []store.IndexEntry
	for k, v := range m {
		if s, ok := v.(string); ok && k != "resourceType" && k != "id" {
			out = append(out, store.IndexEntry{Param: k, Key: []byte(s + "\x00")})
		}
	}
	return out, nil
}

// derivedStore is a store whose index entries fieldIndexer derives, with
// helpers that write resources as the service does (a version, then its
// entries) and read an index back.
type derivedStore struct {
	t   *testing.T
	dir string
	s   *store.Bolt
}

func openDerived(t *testing.T, dir string, o store.Options) *derivedStore {
	t.Helper()
	if o.Indexer == nil {
		o.Indexer = fieldIndexer{"fields-1"}
	}
	o.VerifyIndexer = true
	s, err := store.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return &derivedStore{t: t, dir: dir, s: s}
}

func (d *derivedStore) close() {
	d.t.Helper()
	if err := d.s.Close(); err != nil {
		d.t.Fatal(err)
	}
}

// put writes Patient/id with the given string elements and its entries.
func (d *derivedStore) put(tx store.Tx, id string, elems ...string) error {
	body := `{"resourceType":"Patient"`
	for i := 0; i+1 < len(elems); i += 2 {
		body += `,"` + elems[i] + `":"` + elems[i+1] + `"`
	}
	obj, err := fhir.ParseObject([]byte(body + "}"))
	if err != nil {
		return err
	}
	if _, err := tx.Put("Patient", id, obj); err != nil {
		return err
	}
	es, err := fieldEntries(obj.Bytes())
	if err != nil {
		return err
	}
	return tx.SetIndex("Patient", id, es)
}

func (d *derivedStore) update(fn func(tx store.Tx) error) {
	d.t.Helper()
	if err := d.s.Update(context.Background(), fn); err != nil {
		d.t.Fatal(err)
	}
}

// ids lists the Patients whose param has value.
func (d *derivedStore) ids(param, value string) string {
	d.t.Helper()
	var got []string
	err := d.s.View(context.Background(), func(tx store.Tx) error {
		return tx.ScanIndex(context.Background(), "Patient", param, []byte(value+"\x00"), []byte(value+"\x01"), func(_ []byte, id string) bool {
			got = append(got, id)
			return true
		})
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return strings.Join(got, " ")
}

func (d *derivedStore) check() {
	d.t.Helper()
	if err := d.s.Check(context.Background()); err != nil {
		d.t.Error(err)
	}
}

// rixRecords counts the rix records in the closed store's file.
func rixRecords(t *testing.T, dir string) int {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	_ = db.View(func(tx *bolt.Tx) error {
		rix := tx.Bucket([]byte("rix"))
		return rix.ForEachBucket(func(typ []byte) error {
			n += rix.Bucket(typ).Stats().KeyN
			return nil
		})
	})
	return n
}

// TestDerivedIndexEntries: with an Indexer, creates, updates and deletes
// keep the index exact without rix: an update removes the entries of the
// version it replaces, derived from it; the journal replays after a
// reopen, folded or not; two writes of one resource in a transaction
// remove what the index held before the first.
func TestDerivedIndexEntries(t *testing.T) {
	for _, journalMax := range []int{0, 2} { // 0: nothing folds until asked
		dir := t.TempDir()
		d := openDerived(t, dir, store.Options{IndexJournalMax: journalMax})
		d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "female", "city", "Oslo") })
		d.update(func(tx store.Tx) error { return d.put(tx, "b", "gender", "female", "city", "Tromso") })
		d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "male", "city", "Oslo") })
		d.update(func(tx store.Tx) error {
			// Two creates before either's entries, then an update twice.
			obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Patient","gender":"other"}`))
			for _, id := range []string{"c", "d"} {
				if _, err := tx.Create("Patient", id, obj); err != nil {
					return err
				}
			}
			for _, id := range []string{"c", "d"} {
				if err := tx.SetIndex("Patient", id, []store.IndexEntry{{Param: "gender", Key: []byte("other\x00")}}); err != nil {
					return err
				}
			}
			// b written twice before its entries are given.
			unknown, _ := fhir.ParseObject([]byte(`{"resourceType":"Patient","gender":"unknown"}`))
			if _, err := tx.Put("Patient", "b", unknown); err != nil {
				return err
			}
			return d.put(tx, "b", "gender", "female", "city", "Bergen")
		})
		d.update(func(tx store.Tx) error {
			if _, err := tx.Delete("Patient", "c"); err != nil {
				return err
			}
			return tx.SetIndex("Patient", "c", nil)
		})
		want := map[[2]string]string{
			{"gender", "female"}: "b", {"gender", "male"}: "a", {"gender", "other"}: "d",
			{"gender", "unknown"}: "", {"city", "Oslo"}: "a", {"city", "Bergen"}: "b", {"city", "Tromso"}: "",
		}
		verify := func(when string) {
			t.Helper()
			for k, ids := range want {
				if got := d.ids(k[0], k[1]); got != ids {
					t.Errorf("journal bound %d, %s: %s=%s: %q, want %q", journalMax, when, k[0], k[1], got, ids)
				}
			}
			d.check()
		}
		verify("as written")
		d.close()
		if n := rixRecords(t, dir); n != 0 {
			t.Errorf("journal bound %d: %d rix records, want none", journalMax, n)
		}
		d = openDerived(t, dir, store.Options{IndexJournalMax: journalMax})
		verify("reopened, the journal replayed")
		if err := d.s.FoldIndexJournal(context.Background()); err != nil {
			t.Fatal(err)
		}
		verify("folded")
		d.close()
		d = openDerived(t, dir, store.Options{IndexJournalMax: journalMax})
		verify("folded and reopened")
		d.close()
	}
}

// TestDerivedIndexUpgrade: a file whose entries are in rix (written
// without an Indexer, by layout 4) opens with one, and is layout 5 from
// then on (a layout 4 binary would read derived entries as none). An
// update then removes the entries rix lists, and drops the record;
// resources not written since keep theirs. A resource the old file gave no
// entries (no rix record: a type or parameter not indexed then) has none
// until it is written again, whatever the Indexer derives from it.
func TestDerivedIndexUpgrade(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	legacy := &derivedStore{t: t, dir: dir, s: s}
	legacy.update(func(tx store.Tx) error { return legacy.put(tx, "a", "gender", "female") })
	legacy.update(func(tx store.Tx) error { return legacy.put(tx, "b", "gender", "female") })
	legacy.update(func(tx store.Tx) error {
		obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Patient","gender":"female","city":"Oslo"}`))
		if _, err := tx.Put("Patient", "x", obj); err != nil {
			return err
		}
		return tx.SetIndex("Patient", "x", nil)
	})
	legacy.close()
	if n := rixRecords(t, dir); n != 2 {
		t.Fatalf("written without an Indexer: %d rix records, want 2", n)
	}
	setMeta(t, dir, "schema", []byte{0, 0, 0, 0, 0, 0, 0, 4})

	d := openDerived(t, dir, store.Options{})
	if got := d.ids("gender", "female"); got != "a b" {
		t.Errorf("female as opened: %q, want a b", got)
	}
	d.check()
	d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "male") })
	d.update(func(tx store.Tx) error { return d.put(tx, "x", "gender", "male", "city", "Oslo") })
	for _, c := range []struct{ param, value, want string }{
		{"gender", "female", "b"}, {"gender", "male", "a x"}, {"city", "Oslo", "x"},
	} {
		if got := d.ids(c.param, c.value); got != c.want {
			t.Errorf("%s=%s after the updates: %q, want %q", c.param, c.value, got, c.want)
		}
	}
	d.check()
	d.close()
	if n := rixRecords(t, dir); n != 1 {
		t.Errorf("after the update: %d rix records, want b's alone", n)
	}
	if v := getMeta(t, dir, "schema"); len(v) != 8 || v[7] != 5 {
		t.Errorf("layout %x after the upgrade, want 5", v)
	}
	d = openDerived(t, dir, store.Options{})
	d.check()
	d.close()
}

func setMeta(t *testing.T, dir, key string, v []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte(key), v) }); err != nil {
		t.Fatal(err)
	}
}

func getMeta(t *testing.T, dir, key string) (v []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket([]byte("meta")).Get([]byte(key)))
		return nil
	})
	return v
}

// TestIndexerFingerprint: the file records its Indexer's fingerprint; Open
// refuses another Indexer, and no Indexer at all, until the indexes are
// rebuilt with it (RebuildIndexes), which gives every resource its entries
// anew.
func TestIndexerFingerprint(t *testing.T) {
	dir := t.TempDir()
	d := openDerived(t, dir, store.Options{})
	d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "female") })
	d.close()

	if s, err := store.Open(dir, store.Options{Indexer: fieldIndexer{"fields-2"}}); !errors.Is(err, store.ErrIndexerChanged) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with another fingerprint: %v, want ErrIndexerChanged", err)
	}
	if s, err := store.Open(dir, store.Options{}); !errors.Is(err, store.ErrIndexerMissing) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open without an Indexer: %v, want ErrIndexerMissing", err)
	}

	// The rebuild: every resource's entries given again, none removed.
	d = openDerived(t, dir, store.Options{Indexer: fieldIndexer{"fields-2"}, RebuildIndexes: true})
	if got := d.ids("gender", "female"); got != "" {
		t.Errorf("rebuilding, before any entry is given: %q", got)
	}
	if err := d.s.Update(context.Background(), func(tx store.Tx) error { return d.put(tx, "z", "gender", "female") }); err == nil {
		t.Error("a write while the indexes are rebuilt was taken")
	}
	d.update(func(tx store.Tx) error {
		return tx.SetIndex("Patient", "a", []store.IndexEntry{{Param: "gender", Key: []byte("female\x00")}})
	})
	if err := d.s.IndexesRebuilt(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.close()
	d = openDerived(t, dir, store.Options{Indexer: fieldIndexer{"fields-2"}})
	if got := d.ids("gender", "female"); got != "a" {
		t.Errorf("after the rebuild: %q, want a", got)
	}
	d.check()
	d.close()
}

// TestVerifyIndexer: entries the Indexer would not derive from the version
// written are refused (Options.VerifyIndexer), and nothing is written.
func TestVerifyIndexer(t *testing.T) {
	d := openDerived(t, t.TempDir(), store.Options{})
	defer d.close()
	err := d.s.Update(context.Background(), func(tx store.Tx) error {
		obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Patient","gender":"female"}`))
		if _, err := tx.Put("Patient", "a", obj); err != nil {
			return err
		}
		return tx.SetIndex("Patient", "a", []store.IndexEntry{{Param: "gender", Key: []byte("male\x00")}})
	})
	if err == nil || !strings.Contains(err.Error(), "Indexer derives") {
		t.Fatalf("SetIndex with entries the Indexer does not derive: %v, want a refusal", err)
	}
	if got := d.ids("gender", "male"); got != "" {
		t.Errorf("male: %q, want nothing", got)
	}
	if ids := slices.Collect(func(yield func(string) bool) {
		_ = d.s.View(context.Background(), func(tx store.Tx) error {
			return tx.ScanIDs(context.Background(), "Patient", yield)
		})
	}); len(ids) != 0 {
		t.Errorf("stored %v, want nothing", ids)
	}
}

// countingIndexer counts its derivations.
type countingIndexer struct {
	fieldIndexer
	n *atomic.Int64
}

func (x countingIndexer) IndexEntries(r *fhir.Resource) ([]store.IndexEntry, error) {
	x.n.Add(1)
	return x.fieldIndexer.IndexEntries(r)
}

// TestPrepareReplace: entries PrepareReplace derived spare the write that
// replaces their version its own derivation, once; a transaction that
// writes the resource twice takes those of the version its first write
// replaced; the index is right throughout.
func TestPrepareReplace(t *testing.T) {
	var n atomic.Int64
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{Indexer: countingIndexer{fieldIndexer{"fields-1"}, &n}})
	if err != nil {
		t.Fatal(err)
	}
	d := &derivedStore{t: t, dir: dir, s: s}
	defer d.close()
	ctx := context.Background()
	d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "female", "city", "Oslo") })

	s.PrepareReplace(ctx, "Patient", "a")
	before := n.Load()
	d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "male", "city", "Oslo") })
	if got := n.Load() - before; got != 0 {
		t.Errorf("an update after PrepareReplace derived %d times, want none", got)
	}

	s.PrepareReplace(ctx, "Patient", "a")
	d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "other", "city", "Bergen") }) // takes them
	before = n.Load()
	d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "unknown", "city", "Bergen") })
	if got := n.Load() - before; got != 1 {
		t.Errorf("an update without prepared entries derived %d times, want 1", got)
	}

	s.PrepareReplace(ctx, "Patient", "a")
	d.update(func(tx store.Tx) error { // two writes, then the entries
		obj, _ := fhir.ParseObject([]byte(`{"resourceType":"Patient","gender":"female","city":"Tromso"}`))
		if _, err := tx.Put("Patient", "a", obj); err != nil {
			return err
		}
		if _, err := tx.Put("Patient", "a", obj); err != nil {
			return err
		}
		return tx.SetIndex("Patient", "a", []store.IndexEntry{{Param: "city", Key: []byte("Tromso\x00")}, {Param: "gender", Key: []byte("female\x00")}})
	})
	d.update(func(tx store.Tx) error { return d.put(tx, "a", "gender", "male", "city", "Tromso") })
	for _, c := range []struct{ param, value, want string }{
		{"gender", "male", "a"}, {"gender", "female", ""}, {"gender", "unknown", ""}, {"city", "Tromso", "a"}, {"city", "Bergen", ""}, {"city", "Oslo", ""},
	} {
		if got := d.ids(c.param, c.value); got != c.want {
			t.Errorf("%s=%s: %q, want %q", c.param, c.value, got, c.want)
		}
	}
	d.check()
}
