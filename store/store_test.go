package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"healthhub/fhir"
	"healthhub/store"
)

// openStore opens a store in a fresh temporary directory. At cleanup it
// checks the store's invariants (store.Bolt.Check) and closes it.
func openStore(t testing.TB, opt store.Options) *store.Bolt {
	t.Helper()
	return openStoreAt(t, t.TempDir(), opt)
}

// openStoreAt opens the store in dir, with the same cleanup as openStore. A
// store the test closed itself is not checked again.
func openStoreAt(t testing.TB, dir string, opt store.Options) *store.Bolt {
	t.Helper()
	s, err := store.Open(dir, opt)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		err := s.Check(context.Background())
		if err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			t.Errorf("store invariants broken:\n%v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// t0 is the fake clock's start.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is a fake time source: each call returns the next of a fixed list,
// or, past its end, the last value plus step per call.
type clock struct {
	mu    sync.Mutex
	next  time.Time
	step  time.Duration
	queue []time.Time
}

func newClock(start time.Time, step time.Duration) *clock {
	return &clock{next: start, step: step}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) > 0 {
		t := c.queue[0]
		c.queue = c.queue[1:]
		c.next = t.Add(c.step)
		return t
	}
	t := c.next
	c.next = c.next.Add(c.step)
	return t
}

func object(t testing.TB, js string) *fhir.Object {
	t.Helper()
	o, err := fhir.ParseObject([]byte(js))
	if err != nil {
		t.Fatalf("parse %s: %v", js, err)
	}
	return o
}

func body(typ string) string { return `{"resourceType":"` + typ + `","active":true}` }

func put(t testing.TB, s store.Store, typ, id string) *fhir.Resource {
	t.Helper()
	o := object(t, body(typ))
	var r *fhir.Resource
	err := s.Update(context.Background(), func(tx store.Tx) (err error) {
		r, err = tx.Put(typ, id, o)
		return err
	})
	if err != nil {
		t.Fatalf("put %s/%s: %v", typ, id, err)
	}
	return r
}

func del(t testing.TB, s store.Store, typ, id string) (*fhir.Resource, error) {
	t.Helper()
	var r *fhir.Resource
	err := s.Update(context.Background(), func(tx store.Tx) (err error) {
		r, err = tx.Delete(typ, id)
		return err
	})
	return r, err
}

// describe renders a result compactly for table comparisons.
func describe(r *fhir.Resource, err error) string {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "not found"
	case err != nil:
		return "error: " + err.Error()
	case r == nil:
		return "nil"
	case r.Deleted:
		return "deleted v" + strconv.FormatUint(r.VersionID, 10)
	}
	return "v" + strconv.FormatUint(r.VersionID, 10)
}

func TestPutCurrentVersionDelete(t *testing.T) {
	type step struct {
		op      string // put, delete, current, version
		typ, id string
		version uint64 // for version
		want    string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"create then read", []step{
			{"put", "Patient", "a", 0, "v1"},
			{"current", "Patient", "a", 0, "v1"},
			{"version", "Patient", "a", 1, "v1"},
			{"version", "Patient", "a", 2, "not found"},
			{"version", "Patient", "a", 0, "not found"},
		}},
		{"updates count versions", []step{
			{"put", "Patient", "a", 0, "v1"},
			{"put", "Patient", "a", 0, "v2"},
			{"put", "Patient", "a", 0, "v3"},
			{"current", "Patient", "a", 0, "v3"},
			{"version", "Patient", "a", 2, "v2"},
		}},
		{"never written", []step{
			{"current", "Patient", "nope", 0, "not found"},
			{"version", "Patient", "nope", 1, "not found"},
			{"current", "NoSuchType", "x", 0, "not found"},
		}},
		{"delete", []step{
			{"put", "Patient", "a", 0, "v1"},
			{"delete", "Patient", "a", 0, "deleted v2"},
			{"current", "Patient", "a", 0, "deleted v2"},
			{"version", "Patient", "a", 1, "v1"},
			{"version", "Patient", "a", 2, "deleted v2"},
		}},
		{"delete twice writes nothing", []step{
			{"put", "Patient", "a", 0, "v1"},
			{"delete", "Patient", "a", 0, "deleted v2"},
			{"delete", "Patient", "a", 0, "deleted v2"},
			{"version", "Patient", "a", 3, "not found"},
		}},
		{"delete what never existed", []step{
			{"delete", "Patient", "a", 0, "not found"},
			{"current", "Patient", "a", 0, "not found"},
		}},
		{"write after delete", []step{
			{"put", "Patient", "a", 0, "v1"},
			{"delete", "Patient", "a", 0, "deleted v2"},
			{"put", "Patient", "a", 0, "v3"},
			{"current", "Patient", "a", 0, "v3"},
		}},
		{"types are separate", []step{
			{"put", "Patient", "a", 0, "v1"},
			{"current", "Observation", "a", 0, "not found"},
			{"put", "Observation", "a", 0, "v1"},
			{"put", "Patient", "a", 0, "v2"},
			{"current", "Observation", "a", 0, "v1"},
		}},
		{"ids sharing a prefix are separate", []step{
			{"put", "Patient", "a", 0, "v1"},
			{"put", "Patient", "a-b", 0, "v1"},
			{"put", "Patient", "a.1", 0, "v1"},
			{"put", "Patient", "a", 0, "v2"},
			{"current", "Patient", "a-b", 0, "v1"},
			{"version", "Patient", "a-b", 2, "not found"},
			{"current", "Patient", "a", 0, "v2"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, store.Options{})
			for i, st := range tc.steps {
				var r *fhir.Resource
				var err error
				switch st.op {
				case "put":
					r = put(t, s, st.typ, st.id)
				case "delete":
					r, err = del(t, s, st.typ, st.id)
				case "current":
					err = s.View(context.Background(), func(tx store.Tx) (err error) { r, err = tx.Current(st.typ, st.id); return })
				case "version":
					err = s.View(context.Background(), func(tx store.Tx) (err error) { r, err = tx.Version(st.typ, st.id, st.version); return })
				default:
					t.Fatalf("bad op %q", st.op)
				}
				if got := describe(r, err); got != st.want {
					t.Errorf("step %d: %s %s/%s %d: got %s, want %s", i, st.op, st.typ, st.id, st.version, got, st.want)
				}
				if r != nil && (r.Type != st.typ || r.ID != st.id) {
					t.Errorf("step %d: %s %s/%s: got a resource for %s/%s", i, st.op, st.typ, st.id, r.Type, r.ID)
				}
			}
		})
	}
}

// TestPutStamps: the store sets id, meta.versionId and meta.lastUpdated and
// keeps every other byte; what Put returns is what Current and Version
// read back.
func TestPutStamps(t *testing.T) {
	clk := newClock(t0.Add(123456789*time.Nanosecond), time.Second)
	s := openStore(t, store.Options{Now: clk.Now})
	in := `{"resourceType":"Patient","id":"client-chose","meta":{"profile":["http://example.org/p"],"versionId":"99"},"_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]},"birthDate":"1970-01-01"}`
	var r *fhir.Resource
	err := s.Update(context.Background(), func(tx store.Tx) (err error) {
		r, err = tx.Put("Patient", "server-id", object(t, in))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","id":"server-id","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00.123Z","profile":["http://example.org/p"]},"_birthDate":{"extension":[{"url":"http://example.org/x","valueString":"y"}]},"birthDate":"1970-01-01"}`
	if string(r.JSON) != want {
		t.Errorf("stored JSON:\n got %s\nwant %s", r.JSON, want)
	}
	if !r.LastUpdated.Equal(t0.Add(123 * time.Millisecond)) {
		t.Errorf("LastUpdated: got %s, want %s", r.LastUpdated, t0.Add(123*time.Millisecond))
	}
	var cur, v1 *fhir.Resource
	err = s.View(context.Background(), func(tx store.Tx) (err error) {
		if cur, err = tx.Current("Patient", "server-id"); err != nil {
			return err
		}
		v1, err = tx.Version("Patient", "server-id", 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cur, r) || !reflect.DeepEqual(v1, r) {
		t.Errorf("read back differs from what Put returned:\n put     %+v\n current %+v\n version %+v", r, cur, v1)
	}
}

// TestCreateAndPutRecordTheirInteraction: version 1 written by Put (an
// update as create) says so, read back from the current record and the
// version history; one written by Create does not, nor do later versions,
// except the one a Put writes after a deletion; and Create refuses an id
// that exists.
func TestCreateAndPutRecordTheirInteraction(t *testing.T) {
	s := openStore(t, store.Options{})
	ctx := context.Background()
	write := func(create bool, id string) (*fhir.Resource, error) {
		var r *fhir.Resource
		err := s.Update(ctx, func(tx store.Tx) (err error) {
			if create {
				r, err = tx.Create("Patient", id, object(t, body("Patient")))
			} else {
				r, err = tx.Put("Patient", id, object(t, body("Patient")))
			}
			return err
		})
		return r, err
	}
	for _, w := range []struct {
		create bool
		id     string
		want   bool // CreatedByUpdate
	}{{false, "by-put", true}, {true, "by-post", false}, {false, "by-post", false}, {false, "by-put", false}} {
		r, err := write(w.create, w.id)
		if err != nil {
			t.Fatal(err)
		}
		if r.CreatedByUpdate != w.want {
			t.Errorf("%s version %d: CreatedByUpdate %v, want %v", w.id, r.VersionID, r.CreatedByUpdate, w.want)
		}
	}
	var fe *fhir.Error
	if _, err := write(true, "by-put"); !errors.As(err, &fe) || fe.Kind != fhir.Conflict {
		t.Errorf("Create of an existing id: %v, want a conflict", err)
	}
	// Put after a deletion creates the resource again.
	if _, err := del(t, s, "Patient", "by-post"); err != nil {
		t.Fatal(err)
	}
	if r, err := write(false, "by-post"); err != nil || !r.CreatedByUpdate || r.VersionID != 4 {
		t.Errorf("Put after a deletion: %+v, %v; want version 4 marked CreatedByUpdate", r, err)
	}
	err := s.View(ctx, func(tx store.Tx) error {
		for id, want := range map[string]bool{"by-put": true, "by-post": false} {
			v1, err := tx.Version("Patient", id, 1)
			if err != nil {
				return err
			}
			if v1.CreatedByUpdate != want {
				t.Errorf("%s version 1 read back: CreatedByUpdate %v, want %v", id, v1.CreatedByUpdate, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Error(err)
	}
}

func TestWriteInViewFails(t *testing.T) {
	s := openStore(t, store.Options{})
	err := s.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.Put("Patient", "a", object(t, body("Patient")))
		return err
	})
	if err == nil {
		t.Error("Put in a read-only transaction: got no error")
	}
	err = s.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.Delete("Patient", "a")
		return err
	})
	if err == nil {
		t.Error("Delete in a read-only transaction: got no error")
	}
}

func TestCanceledContextDoesNoWork(t *testing.T) {
	s := openStore(t, store.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := s.Update(ctx, func(store.Tx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("Update with a canceled context: got %v (fn ran: %v), want context.Canceled without running", err, ran)
	}
	if err := s.View(ctx, func(store.Tx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("View with a canceled context: got %v (fn ran: %v), want context.Canceled without running", err, ran)
	}
}

// TestValuesOutliveTransaction: bbolt's bytes are only valid inside their
// transaction (the file is memory-mapped, and unmapped on close or growth);
// what the store returns must be copies.
func TestValuesOutliveTransaction(t *testing.T) {
	s := openStore(t, store.Options{})
	// Big enough that the type's buckets are not inline: bbolt copies the
	// values of small inline buckets anyway, which would hide the bug.
	o := object(t, `{"resourceType":"Patient","gender":"`+strings.Repeat("x", 3000)+`"}`)
	var want *fhir.Resource
	err := s.Update(context.Background(), func(tx store.Tx) (err error) {
		for _, id := range []string{"b", "c", "a"} {
			if want, err = tx.Put("Patient", id, o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var cur, v1 *fhir.Resource
	err = s.View(context.Background(), func(tx store.Tx) (err error) {
		if cur, err = tx.Current("Patient", "a"); err != nil {
			return err
		}
		v1, err = tx.Version("Patient", "a", 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // unmaps the file: a reference into it would fault
		t.Fatal(err)
	}
	if string(cur.JSON) != string(want.JSON) || string(v1.JSON) != string(want.JSON) {
		t.Errorf("values read in a closed transaction changed:\n got %s\n and %s\nwant %s", cur.JSON, v1.JSON, want.JSON)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "Patient", "a")
	w := put(t, s, "Patient", "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, dir, store.Options{})
	var r *fhir.Resource
	if err := s.View(context.Background(), func(tx store.Tx) (err error) { r, err = tx.Current("Patient", "a"); return }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, w) {
		t.Errorf("after reopening: got %+v, want %+v", r, w)
	}
	if got := put(t, s, "Patient", "a"); got.VersionID != 3 {
		t.Errorf("write after reopening: got version %d, want 3", got.VersionID)
	}
}

// closedStoreWithPatient is a data directory whose store holds Patient/a
// and is closed again, for tests that open its file themselves.
func closedStoreWithPatient(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "Patient", "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestReopenWritesNothing: opening a file whose layout is in place commits
// no transaction, so opening a store to read it (or a server that starts
// and stops at once) leaves the file as it was.
func TestReopenWritesNothing(t *testing.T) {
	dir := closedStoreWithPatient(t)
	lastTx := func() int {
		db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		tx, err := db.Begin(false)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		return tx.ID()
	}
	before := lastTx()
	for range 2 {
		s, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := lastTx(); after != before {
		t.Errorf("opening and closing the store twice committed %d transactions", after-before)
	}
}

// historyFixture writes, one second apart from t0:
//
//	seq 1 Patient/a v1       t0
//	seq 2 Patient/b v1       t0+1s
//	seq 3 Observation/x v1   t0+2s
//	seq 4 Patient/a v2       t0+3s
//	seq 5 Patient/b v2 (del) t0+4s
//	seq 6 Observation/x v2   t0+5s
//	seq 7 Patient/a v3       t0+6s
//	seq 8 Patient/c v1       t0+7s
func historyFixture(t *testing.T) *store.Bolt {
	s := openStore(t, store.Options{Now: newClock(t0, time.Second).Now})
	put(t, s, "Patient", "a")
	put(t, s, "Patient", "b")
	put(t, s, "Observation", "x")
	put(t, s, "Patient", "a")
	if _, err := del(t, s, "Patient", "b"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "Observation", "x")
	put(t, s, "Patient", "a")
	put(t, s, "Patient", "c")
	return s
}

func entryNames(es []*fhir.Resource) []string {
	out := make([]string, 0, len(es))
	for _, r := range es {
		n := r.Type + "/" + r.ID + "/" + strconv.FormatUint(r.VersionID, 10)
		if r.Deleted {
			n += " deleted"
		}
		out = append(out, n)
	}
	return out
}

func TestHistory(t *testing.T) {
	s := historyFixture(t)
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	all := []string{"Patient/c/1", "Patient/a/3", "Observation/x/2", "Patient/b/2 deleted", "Patient/a/2", "Observation/x/1", "Patient/b/1", "Patient/a/1"}
	cases := []struct {
		name      string
		q         store.HistoryQuery
		want      []string
		wantNext  uint64
		wantTotal int
		wantErr   error
	}{
		{"instance", store.HistoryQuery{Type: "Patient", ID: "a"}, []string{"Patient/a/3", "Patient/a/2", "Patient/a/1"}, 0, 3, nil},
		{"instance deleted", store.HistoryQuery{Type: "Patient", ID: "b"}, []string{"Patient/b/2 deleted", "Patient/b/1"}, 0, 2, nil},
		{"instance unknown", store.HistoryQuery{Type: "Patient", ID: "zz"}, nil, 0, 0, store.ErrNotFound},
		{"instance count", store.HistoryQuery{Type: "Patient", ID: "a", Count: 2}, []string{"Patient/a/3", "Patient/a/2"}, 2, 3, nil},
		{"instance before", store.HistoryQuery{Type: "Patient", ID: "a", Before: 2}, []string{"Patient/a/1"}, 0, 3, nil},
		{"instance before 1", store.HistoryQuery{Type: "Patient", ID: "a", Before: 1}, nil, 0, 3, nil},
		{"instance before past the end", store.HistoryQuery{Type: "Patient", ID: "a", Before: 100}, []string{"Patient/a/3", "Patient/a/2", "Patient/a/1"}, 0, 3, nil},
		{"instance since", store.HistoryQuery{Type: "Patient", ID: "a", Since: sec(3)}, []string{"Patient/a/3", "Patient/a/2"}, 0, -1, nil},
		{"instance at", store.HistoryQuery{Type: "Patient", ID: "a", AtStart: sec(3), AtEnd: sec(4)}, []string{"Patient/a/2"}, 0, -1, nil},
		{"instance at now", store.HistoryQuery{Type: "Patient", ID: "a", AtStart: sec(100), AtEnd: sec(101)}, []string{"Patient/a/3"}, 0, -1, nil},
		{"type", store.HistoryQuery{Type: "Patient"}, []string{"Patient/c/1", "Patient/a/3", "Patient/b/2 deleted", "Patient/a/2", "Patient/b/1", "Patient/a/1"}, 0, -1, nil},
		{"type other", store.HistoryQuery{Type: "Observation"}, []string{"Observation/x/2", "Observation/x/1"}, 0, -1, nil},
		{"type never written", store.HistoryQuery{Type: "Encounter"}, nil, 0, -1, nil},
		{"type count", store.HistoryQuery{Type: "Patient", Count: 2}, []string{"Patient/c/1", "Patient/a/3"}, 7, -1, nil},
		{"type before", store.HistoryQuery{Type: "Patient", Before: 7, Count: 2}, []string{"Patient/b/2 deleted", "Patient/a/2"}, 4, -1, nil},
		{"type since", store.HistoryQuery{Type: "Patient", Since: sec(3)}, []string{"Patient/c/1", "Patient/a/3", "Patient/b/2 deleted", "Patient/a/2"}, 0, -1, nil},
		{"system", store.HistoryQuery{}, all, 0, -1, nil},
		{"system count", store.HistoryQuery{Count: 3}, all[:3], 6, -1, nil},
		{"system before", store.HistoryQuery{Before: 6, Count: 3}, all[3:6], 3, -1, nil},
		{"system last page", store.HistoryQuery{Before: 3, Count: 3}, all[6:], 0, -1, nil},
		{"system before past the end", store.HistoryQuery{Before: 100}, all, 0, -1, nil},
		{"system before 1", store.HistoryQuery{Before: 1}, nil, 0, -1, nil},
		{"system since", store.HistoryQuery{Since: sec(3)}, all[:5], 0, -1, nil},
		{"system since in the future", store.HistoryQuery{Since: sec(60)}, nil, 0, -1, nil},
		{"system since and count", store.HistoryQuery{Since: sec(3), Count: 4}, all[:4], 5, -1, nil},
		// Current at some point of [t0+3s, t0+4s): a/2 (from 3s), x/1 (2s..5s), b/1 (1s..4s).
		{"system at", store.HistoryQuery{AtStart: sec(3), AtEnd: sec(4)}, []string{"Patient/a/2", "Observation/x/1", "Patient/b/1"}, 0, -1, nil},
		{"type at", store.HistoryQuery{Type: "Observation", AtStart: sec(3), AtEnd: sec(4)}, []string{"Observation/x/1"}, 0, -1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if q.Count == 0 {
				q.Count = 100
			}
			var page *store.HistoryPage
			err := s.View(context.Background(), func(tx store.Tx) (err error) {
				page, err = tx.History(context.Background(), q)
				return err
			})
			if tc.wantErr != nil || err != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("%+v: got error %v, want %v", tc.q, err, tc.wantErr)
				}
				return
			}
			if got := entryNames(page.Entries); !slices.Equal(got, tc.want) {
				t.Errorf("%+v: got %q, want %q", tc.q, got, tc.want)
			}
			if page.Next != tc.wantNext {
				t.Errorf("%+v: got Next %d, want %d", tc.q, page.Next, tc.wantNext)
			}
			if page.Total != tc.wantTotal {
				t.Errorf("%+v: got Total %d, want %d", tc.q, page.Total, tc.wantTotal)
			}
		})
	}
}

func TestHistoryCanceled(t *testing.T) {
	s := openStore(t, store.Options{})
	o := object(t, body("Patient"))
	err := s.Update(context.Background(), func(tx store.Tx) error {
		for i := range 600 {
			if _, err := tx.Put("Patient", strconv.Itoa(i), o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.View(context.Background(), func(tx store.Tx) error {
		// _at in the past: no entry matches, so the walk visits every
		// entry and must notice the canceled context on the way.
		_, err := tx.History(ctx, store.HistoryQuery{AtStart: t0, AtEnd: t0.Add(time.Second), Count: 10})
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a long history walk with a canceled context: got %v, want context.Canceled", err)
	}
}

// TestHistoryAtAsOf: an _at listing that reaches now answers as of its
// first page (HistoryQuery.AsOf): a resource updated between pages keeps
// the version that was current then, also when the update has the same
// lastUpdated (the same millisecond) as the snapshot's newest entry.
func TestHistoryAtAsOf(t *testing.T) {
	future := t0.Add(time.Hour)
	for _, tc := range []struct {
		name        string
		step        time.Duration // between writes
		updateFirst bool          // a is updated before the first page
		want        []string
	}{
		{"update after the first page", time.Millisecond, false, []string{"Patient/c/1", "Patient/b/1", "Patient/a/1"}},
		{"update after the first page, same millisecond", 0, false, []string{"Patient/c/1", "Patient/b/1", "Patient/a/1"}},
		{"update before the first page, same millisecond", 0, true, []string{"Patient/a/2", "Patient/c/1", "Patient/b/1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, store.Options{Now: newClock(t0, tc.step).Now})
			for _, id := range []string{"a", "b", "c"} {
				put(t, s, "Patient", id)
			}
			if tc.updateFirst {
				put(t, s, "Patient", "a")
			}
			q := store.HistoryQuery{Type: "Patient", AtStart: future, AtEnd: future.Add(time.Second), Count: 1}
			var got []string
			for page := 0; ; page++ {
				if page == 1 && !tc.updateFirst {
					put(t, s, "Patient", "a")
				}
				var p *store.HistoryPage
				if err := s.View(context.Background(), func(tx store.Tx) (err error) {
					p, err = tx.History(context.Background(), q)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				got = append(got, entryNames(p.Entries)...)
				if p.Next == 0 {
					break
				}
				q.Before, q.AsOf = p.Next, p.AsOf
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestHistoryAtAsOfManyInOneMillisecond: telling whether a version was
// written after the snapshot reads the snapshot's millisecond once per
// page, not once for every version it checks: a transaction of many
// updates, all of one millisecond, made an _at page read that
// millisecond's entries over and over (quadratic in the transaction's
// size; 10,000 entries are allowed).
func TestHistoryAtAsOfManyInOneMillisecond(t *testing.T) {
	s := openStore(t, store.Options{Now: newClock(t0, 0).Now})
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "p" + strconv.Itoa(i)
	}
	for range 2 {
		if err := s.Update(context.Background(), func(tx store.Tx) error {
			for _, id := range ids {
				if _, err := tx.Put("Patient", id, object(t, body("Patient"))); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	future := t0.Add(time.Hour)
	q := store.HistoryQuery{Type: "Patient", AtStart: future, AtEnd: future.Add(time.Second), Count: 2 * n}
	var entries int
	allocs := testing.AllocsPerRun(1, func() {
		if err := s.View(context.Background(), func(tx store.Tx) error {
			p, err := tx.History(context.Background(), q)
			if p != nil {
				entries = len(p.Entries)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	})
	if entries != n {
		t.Fatalf("%d entries, want %d (the current versions)", entries, n)
	}
	if perEntry := allocs / (2 * n); perEntry > 100 {
		t.Errorf("%.0f allocations per entry visited: the snapshot's millisecond is read again for each", perEntry)
	}
}

// TestHistoryPagingWhileWriting: following Next visits every entry that
// existed when the first page was read exactly once, newest first, while
// other writes keep landing between pages.
func TestHistoryPagingWhileWriting(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    store.HistoryQuery
	}{
		{"instance", store.HistoryQuery{Type: "Patient", ID: "p0"}},
		{"type", store.HistoryQuery{Type: "Patient"}},
		{"system", store.HistoryQuery{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, store.Options{Now: newClock(t0, time.Millisecond).Now})
			writes := 0
			write := func() {
				writes++
				switch writes % 4 {
				case 0:
					put(t, s, "Observation", "o"+strconv.Itoa(writes%3))
				case 1:
					if _, err := del(t, s, "Patient", "p"+strconv.Itoa(1+writes%5)); err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Fatal(err)
					}
				default:
					put(t, s, "Patient", "p"+strconv.Itoa(writes%5))
				}
			}
			for range 40 {
				write()
			}
			var want []string
			if err := s.View(context.Background(), func(tx store.Tx) error {
				q := tc.q
				q.Count = 1000
				p, err := tx.History(context.Background(), q)
				want = entryNames(p.Entries)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if len(want) < 4 {
				t.Fatalf("fixture too small: %d entries", len(want))
			}
			var got []string
			q := tc.q
			q.Count = 3
			for pages := 0; ; pages++ {
				if pages > len(want) {
					t.Fatalf("paging does not end: %d pages for %d entries", pages, len(want))
				}
				var p *store.HistoryPage
				if err := s.View(context.Background(), func(tx store.Tx) (err error) { p, err = tx.History(context.Background(), q); return }); err != nil {
					t.Fatal(err)
				}
				got = append(got, entryNames(p.Entries)...)
				if p.Next == 0 {
					break
				}
				q.Before = p.Next
				write()
				write()
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages while writing:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestLastUpdatedMonotonic: a clock that goes backwards (NTP step, VM
// migration) never makes lastUpdated go backwards, not even across a
// reopen; time is kept at millisecond precision, as stamped in the JSON.
func TestLastUpdatedMonotonic(t *testing.T) {
	clk := newClock(t0, 0)
	clk.queue = []time.Time{
		t0.Add(5 * time.Second),
		t0.Add(6*time.Second + 999999*time.Nanosecond),
		t0.Add(-time.Hour), // backwards
		t0.Add(6 * time.Second),
		t0.Add(7 * time.Second),
		t0.Add(-24 * time.Hour),
	}
	want := []time.Time{
		t0.Add(5 * time.Second),
		t0.Add(6 * time.Second),
		t0.Add(6 * time.Second),
		t0.Add(6 * time.Second),
		t0.Add(7 * time.Second),
		t0.Add(7 * time.Second),
	}
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Time
	for i := range 5 {
		r := put(t, s, "Patient", "p"+strconv.Itoa(i%2))
		got = append(got, r.LastUpdated)
		var meta struct {
			Meta struct{ LastUpdated string } `json:"meta"`
		}
		if err := json.Unmarshal(r.JSON, &meta); err != nil {
			t.Fatal(err)
		}
		if stamped := r.LastUpdated.Format(fhir.InstantLayout); meta.Meta.LastUpdated != stamped {
			t.Errorf("write %d: meta.lastUpdated %s, LastUpdated %s", i, meta.Meta.LastUpdated, stamped)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, dir, store.Options{Now: clk.Now})
	got = append(got, put(t, s, "Patient", "p9").LastUpdated)
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("write %d: got lastUpdated %s, want %s", i, got[i].Format(fhir.InstantLayout), want[i].Format(fhir.InstantLayout))
		}
	}
}

var errBoom = errors.New("boom")

// TestConcurrentUpdates runs many writers through Batch at once. Update's fn
// may run more than once, and a failing fn makes its whole batch run again:
// every fn below recomputes from what its Tx reads, so the results must be
// exactly right (a counter without lost or doubled increments), the values
// captured by the fn must describe the write that committed, and the
// failing writers must leave no trace.
func TestConcurrentUpdates(t *testing.T) {
	for _, mode := range batchModes {
		t.Run(mode.name, func(t *testing.T) { testConcurrentUpdates(t, mode.opt) })
	}
}

// batchModes are group commits of any size, and of at most 2 writes (more
// commits, so more interleaving of retries with other batches).
var batchModes = []struct {
	name string
	opt  store.Options
}{
	{"group commit", store.Options{}},
	{"batches of 2", store.Options{MaxBatchSize: 2}},
}

func testConcurrentUpdates(t *testing.T, opt store.Options) {
	s := openStore(t, opt)
	const writers, each, failers = 8, 25, 3
	var runs, failRuns atomic.Int64
	type ack struct {
		version uint64
		tag     string
	}
	acks := make(chan ack, writers*each)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				tag := fmt.Sprintf("g%d-%d", g, i)
				var r *fhir.Resource
				var seen uint64
				err := s.Update(context.Background(), func(tx store.Tx) error {
					runs.Add(1)
					r, seen = nil, 0 // this fn may run again
					cur, err := tx.Current("Basic", "counter")
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					if cur != nil {
						var c struct{ N uint64 }
						if err := json.Unmarshal(cur.JSON, &c); err != nil {
							return err
						}
						seen = c.N
					}
					o, err := fhir.ParseObject(fmt.Appendf(nil, `{"resourceType":"Basic","n":%d,"tag":%q}`, seen+1, tag))
					if err != nil {
						return err
					}
					r, err = tx.Put("Basic", "counter", o)
					return err
				})
				if err != nil {
					t.Errorf("%s: %v", tag, err)
					return
				}
				if r == nil || r.VersionID != seen+1 {
					t.Errorf("%s: the fn's results do not describe the committed write: version %v, counter %d", tag, describe(r, nil), seen+1)
					continue
				}
				acks <- ack{r.VersionID, tag}
			}
		})
	}
	for g := range failers {
		wg.Go(func() {
			for i := range each / 5 {
				o := object(t, `{"resourceType":"Basic","tag":"failed"}`)
				var calls int
				err := s.Update(context.Background(), func(tx store.Tx) error {
					calls++
					failRuns.Add(1)
					if _, err := tx.Put("Basic", "counter", o); err != nil {
						return err
					}
					if _, err := tx.Put("Basic", fmt.Sprintf("failed-%d-%d", g, i), o); err != nil {
						return err
					}
					return errBoom
				})
				if !errors.Is(err, errBoom) {
					t.Errorf("failing writer: got %v, want %v", err, errBoom)
				}
				if calls < 2 {
					t.Errorf("failing writer: fn ran %d times; bbolt reruns a failed batch call alone", calls)
				}
			}
		})
	}
	wg.Wait()
	close(acks)
	byVersion := map[uint64]string{}
	for a := range acks {
		if prev, dup := byVersion[a.version]; dup {
			t.Errorf("version %d acknowledged to both %s and %s", a.version, prev, a.tag)
		}
		byVersion[a.version] = a.tag
	}
	t.Logf("%d writes, %d fn runs (%d by failing writers)", writers*each, runs.Load(), failRuns.Load())
	err := s.View(context.Background(), func(tx store.Tx) error {
		cur, err := tx.Current("Basic", "counter")
		if err != nil {
			return err
		}
		if cur.VersionID != writers*each {
			t.Errorf("counter: got version %d, want %d", cur.VersionID, writers*each)
		}
		for v := uint64(1); v <= cur.VersionID; v++ {
			r, err := tx.Version("Basic", "counter", v)
			if err != nil {
				return fmt.Errorf("version %d: %w", v, err)
			}
			var c struct {
				N   uint64
				Tag string
			}
			if err := json.Unmarshal(r.JSON, &c); err != nil {
				return err
			}
			if c.N != v || c.Tag != byVersion[v] {
				t.Errorf("version %d: got n=%d tag=%q, want n=%d tag=%q", v, c.N, c.Tag, v, byVersion[v])
			}
		}
		p, err := tx.History(context.Background(), store.HistoryQuery{Type: "Basic", Count: 10000})
		if err != nil {
			return err
		}
		if len(p.Entries) != writers*each {
			t.Errorf("type history: got %d entries, want %d (failed writes must leave none)", len(p.Entries), writers*each)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPanicInUpdate: a write function that panics panics in its own
// caller (where the request's recovery can answer 500), writes nothing, and
// does not take down the writes it was grouped with, nor the index journal
// (a panic after SetIndex must still end the transaction's journal stage,
// or every later write would wait for it).
func TestPanicInUpdate(t *testing.T) {
	for _, mode := range batchModes {
		t.Run(mode.name, func(t *testing.T) {
			s := openStore(t, mode.opt)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					o := object(t, body("Patient"))
					for i := range 10 {
						id := fmt.Sprintf("ok-%d-%d", g, i)
						err := s.Update(context.Background(), func(tx store.Tx) error {
							if _, err := tx.Put("Patient", id, o); err != nil {
								return err
							}
							return tx.SetIndex("Patient", id, []store.IndexEntry{{Param: "p", Key: []byte("ok\x00")}})
						})
						if err != nil {
							t.Errorf("%s: %v", id, err)
						}
					}
				})
			}
			for i := range 5 {
				wg.Go(func() {
					defer func() {
						if p := recover(); p != "boom" {
							t.Errorf("panicking write %d: recovered %v, want boom", i, p)
						}
					}()
					o := object(t, body("Patient"))
					_ = s.Update(context.Background(), func(tx store.Tx) error {
						id := fmt.Sprintf("bad-%d", i)
						if _, err := tx.Put("Patient", id, o); err != nil {
							return err
						}
						if err := tx.SetIndex("Patient", id, []store.IndexEntry{{Param: "p", Key: []byte("bad\x00")}}); err != nil {
							return err
						}
						panic("boom")
					})
				})
			}
			wg.Wait()
			var p *store.HistoryPage
			if err := s.View(context.Background(), func(tx store.Tx) (err error) {
				p, err = tx.History(context.Background(), store.HistoryQuery{Type: "Patient", Count: 1000})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Entries {
				if strings.HasPrefix(r.ID, "bad-") {
					t.Errorf("a panicking write left %s", r.ID)
				}
			}
			if len(p.Entries) != 80 {
				t.Errorf("got %d writes, want 80", len(p.Entries))
			}
		})
	}
}

// TestLoneWriterDoesNotWait: with group commit, a writer alone commits at
// once instead of waiting for company: bbolt's Batch would wait its
// MaxBatchDelay, 10 ms by default, every time (it was the store's batching
// once: BENCHMARKS.md). An fsync is ~2 ms here.
func TestLoneWriterDoesNotWait(t *testing.T) {
	s := openStore(t, store.Options{})
	o := object(t, body("Patient"))
	const n = 20
	start := time.Now()
	for i := range n {
		if err := s.Update(context.Background(), func(tx store.Tx) error { _, err := tx.Put("Patient", strconv.Itoa(i), o); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if per := time.Since(start) / n; per >= 10*time.Millisecond {
		t.Errorf("a lone write takes %s on average: does it wait for a batch timer?", per)
	}
}

// TestConcurrentCreates: ids made before the transaction, as Create does,
// land once each with version 1, however often their fn runs.
func TestConcurrentCreates(t *testing.T) {
	s := openStore(t, store.Options{})
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			o := object(t, body("Patient"))
			for i := range each {
				id := fmt.Sprintf("w%d-%d", g, i)
				var r *fhir.Resource
				err := s.Update(context.Background(), func(tx store.Tx) (err error) {
					r, err = tx.Put("Patient", id, o)
					return err
				})
				if err != nil || r.VersionID != 1 || r.ID != id {
					t.Errorf("create %s: got %s %v", id, describe(r, err), err)
				}
			}
		})
	}
	wg.Wait()
	var p *store.HistoryPage
	if err := s.View(context.Background(), func(tx store.Tx) (err error) {
		p, err = tx.History(context.Background(), store.HistoryQuery{Type: "Patient", Count: 10000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != writers*each {
		t.Errorf("type history: got %d entries, want %d", len(p.Entries), writers*each)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	openStoreAt(t, dir, store.Options{})
	start := time.Now()
	s, err := store.Open(dir, store.Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("a second Open of a store in use succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Errorf("second Open: got %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, store.FileName)) {
		t.Errorf("second Open: error %q does not name the file", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %s with a 100ms lock timeout", d)
	}
}

// TestCheckFindsDamage makes sure the invariant check used by every test
// above would notice a broken store.
func TestCheckFindsDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(tx *bolt.Tx) error
		want   string
	}{
		{"missing version", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("ver")).Bucket([]byte("Patient")).Delete(append([]byte("a\x00"), 0, 0, 0, 0, 0, 0, 0, 1))
		}, "version 2 follows version 0"},
		{"current differs", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("res")).Bucket([]byte("Patient"))
			v := append([]byte(nil), b.Get([]byte("a"))...)
			return b.Put([]byte("a"), append(v, ' '))
		}, "differs from its newest version"},
		{"current without versions", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("res")).Bucket([]byte("Patient"))
			return b.Put([]byte("ghost"), b.Get([]byte("a")))
		}, "not in the version history"},
		{"dangling log entry", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("log")).Put([]byte{0, 0, 0, 0, 0, 0, 0, 99}, append([]byte{0, 0, 0, 0, 0, 0, 0, 7}, "Patient\x00a"...))
		}, "does not exist"},
		{"stale index entry", func(tx *bolt.Tx) error {
			pb, err := patientNameIndex(tx)
			if pb == nil {
				return err // no indexes in this layout: the check below then fails loudly
			}
			k := []byte("smith\x00a\x01")                              // value key | id | len(id)
			return pb.Put(k, append([]byte{1, 0, byte(len(k))}, k...)) // a block of one key, bound by it
		}, "stale entry"},
		{"index key below its block's range", func(tx *bolt.Tx) error {
			pb, err := patientNameIndex(tx)
			if pb == nil {
				return err
			}
			// Blocks bound by "m" and by 0xff; "c" in the second is below
			// the first's bound, where no search or fold looks for it.
			if err := pb.Put([]byte("m"), []byte{1, 0, 1, 'a'}); err != nil {
				return err
			}
			return pb.Put([]byte{0xff}, []byte{1, 0, 1, 'c'})
		}, "in the block after"},
		{"malformed index block", func(tx *bolt.Tx) error {
			pb, err := patientNameIndex(tx)
			if pb == nil {
				return err
			}
			return pb.Put([]byte("jones\x00b\x01"), []byte{1, 0, 40, 'j'}) // a key longer than the block
		}, "malformed"},
		{"half-written JSON", func(tx *bolt.Tx) error {
			for _, name := range []string{"res", "ver"} {
				b := tx.Bucket([]byte(name)).Bucket([]byte("Observation"))
				k := []byte("x")
				if name == "ver" {
					k = append([]byte("x\x00"), 0, 0, 0, 0, 0, 0, 0, 1)
				}
				v := b.Get(k)
				if err := b.Put(k, append([]byte(nil), v[:len(v)-5]...)); err != nil {
					return err
				}
			}
			return nil
		}, "not JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, "Patient", "a")
			put(t, s, "Patient", "a")
			put(t, s, "Observation", "x")
			if err := s.Check(context.Background()); err != nil {
				t.Fatalf("before the damage: %v", err)
			}
			s.Close()
			db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tc.damage); err != nil {
				t.Fatal(err)
			}
			db.Close()
			s, err = store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Check(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// patientNameIndex is the bucket of idx/Patient/name, made if missing; nil
// in a layout without indexes.
func patientNameIndex(tx *bolt.Tx) (*bolt.Bucket, error) {
	idx := tx.Bucket([]byte("idx"))
	if idx == nil {
		return nil, nil
	}
	b, err := idx.CreateBucketIfNotExists([]byte("Patient"))
	if err != nil {
		return nil, err
	}
	return b.CreateBucketIfNotExists([]byte("name"))
}
