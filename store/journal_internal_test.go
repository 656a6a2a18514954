package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"healthhub/fhir"
)

// TestJournalStateModel applies random changes, commit by commit, to a
// journal state and to a map, and compares them after every commit: the
// full walk, walks over ranges, and single lookups. Commits of different
// sizes merge runs at different points.
func TestJournalStateModel(t *testing.T) {
	for _, perCommit := range []int{1, 7, 300, 5000} {
		t.Run(fmt.Sprint(perCommit), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(perCommit), 1))
			model := map[string]bool{}
			state := emptyJState
			key := func() []byte { return []byte(fmt.Sprintf("k%05d", r.IntN(20000))) }
			for commit := range 12 {
				var changes []jentry
				for range perCommit {
					e := jentry{key: key(), present: r.IntN(3) > 0}
					changes = append(changes, e)
					model[string(e.key)] = e.present
				}
				prev := state
				prevWalk := walk(prev, nil, nil)
				state = state.withChanges(changes)
				if got := walk(prev, nil, nil); got != prevWalk {
					t.Fatalf("commit %d changed the version before it", commit)
				}
				if got, want := walk(state, nil, nil), walkModel(model, "", ""); got != want {
					t.Fatalf("commit %d: walk differs from the model\ngot  %.200s\nwant %.200s", commit, got, want)
				}
				lo, hi := key(), key()
				if bytes.Compare(lo, hi) > 0 {
					lo, hi = hi, lo
				}
				if got, want := walk(state, lo, hi), walkModel(model, string(lo), string(hi)); got != want {
					t.Fatalf("commit %d: walk [%s, %s) differs from the model\ngot  %.200s\nwant %.200s", commit, lo, hi, got, want)
				}
				// The same version less [lo, hi), as a fold leaves it.
				cut := map[string]bool{}
				for k, v := range model {
					if k < string(lo) || k >= string(hi) {
						cut[k] = v
					}
				}
				folded := state.without(lo, hi)
				if got, want := walk(folded, nil, nil), walkModel(cut, "", ""); got != want {
					t.Fatalf("commit %d: without [%s, %s) differs from the model\ngot  %.200s\nwant %.200s", commit, lo, hi, got, want)
				}
				if commit%3 == 2 {
					// Go on from the folded version, as the journal does:
					// later merges copy runs cut from others.
					state, model = folded, cut
				}
				for range 50 {
					k := key()
					e, ok := state.get(k)
					present, known := model[string(k)]
					if ok != known || e.present != present {
						t.Fatalf("commit %d: get(%s) = %v %v, model %v %v", commit, k, e.present, ok, present, known)
					}
				}
			}
		})
	}
}

// TestJournalMergesCopyLittle: the merge policy keeps the runs few and
// copies an entry about once per doubling of its run: 8 times over 3,000
// commits here, where merging the smallest neighbours (and the second run
// into the first at an eighth of its size) copied it 70 times with 200-key
// commits and 169 times with one-key commits.
func TestJournalMergesCopyLittle(t *testing.T) {
	for _, perCommit := range []int{1, 200} {
		t.Run(fmt.Sprint(perCommit), func(t *testing.T) {
			state, inserted, copied := emptyJState, 0, 0
			for commit := range 3000 {
				changes := make([]jentry, perCommit)
				for i := range changes {
					changes[i] = jentry{key: []byte(fmt.Sprintf("k%08d", commit*perCommit+i)), present: true}
				}
				next := state.withChanges(changes)
				inserted += perCommit
				copied += newEntries(state, next)
				if len(next.runs) > maxRuns {
					t.Fatalf("commit %d: %d runs, more than %d", commit, len(next.runs), maxRuns)
				}
				state = next
			}
			per := float64(copied) / float64(inserted)
			t.Logf("%.1f copies an entry", per)
			if per > 16 {
				t.Errorf("each entry was copied %.1f times on average, want at most 16", per)
			}
		})
	}
}

// TestJournalRunCap: one-key commits after a large one make runs whose
// sizes span more doublings than maxRuns, so the cap merges the smallest
// neighbours; the state must still read as the model says (a merge of runs
// that are not neighbours, or in the wrong order, lets an older change win).
func TestJournalRunCap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	model := map[string]bool{}
	key := func() []byte { return []byte(fmt.Sprintf("k%04d", r.IntN(3000))) }
	var first []jentry
	for range 5000 {
		e := jentry{key: key(), present: r.IntN(2) == 0}
		first = append(first, e)
		model[string(e.key)] = e.present
	}
	state := emptyJState.withChanges(first)
	capped := 0
	for commit := range 6000 {
		// Half of them among a few keys, so that the small runs the cap
		// merges share keys; the rest spread, so that runs grow.
		k := key()
		if r.IntN(2) == 0 {
			k = []byte(fmt.Sprintf("k%04d", r.IntN(4)))
		}
		e := jentry{key: k, present: r.IntN(2) == 0}
		model[string(e.key)] = e.present
		state = state.withChanges([]jentry{e})
		if len(state.runs) == maxRuns {
			capped++
		}
		for h := range 4 { // the hot keys, after every commit: a wrong merge shows until the key changes again
			k := fmt.Sprintf("k%04d", h)
			e, ok := state.get([]byte(k))
			present, known := model[k]
			if ok != known || e.present != present {
				t.Fatalf("commit %d: get(%s) = %v %v, model %v %v", commit, k, e.present, ok, present, known)
			}
		}
		if commit%97 == 0 || commit == 5999 {
			if got, want := walk(state, nil, nil), walkModel(model, "", ""); got != want {
				t.Fatalf("commit %d: walk differs from the model\ngot  %.200s\nwant %.200s", commit, got, want)
			}
		}
	}
	if capped == 0 {
		t.Fatalf("the runs never reached %d: the cap was likely not exercised", maxRuns)
	}
}

// newEntries counts the entries of next's runs that are not shared with
// prev's: those copied to make next.
func newEntries(prev, next *jstate) int {
	shared := map[*byte]bool{}
	for _, r := range prev.runs {
		if len(r.keys) > 0 {
			shared[&r.keys[0]] = true
		}
	}
	n := 0
	for _, r := range next.runs {
		if len(r.keys) > 0 && !shared[&r.keys[0]] {
			n += r.len()
		}
	}
	return n
}

// TestLazyVersions: versions published unbuilt, and built by several
// goroutines in any order, read the same as versions built at once; their
// size is an upper bound until built, then exact.
func TestLazyVersions(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	eager := []*jstate{emptyJState}
	lazy := []*lazyState{builtState(emptyJState)}
	for range 40 {
		var changes []jentry
		for range 1 + r.IntN(50) {
			changes = append(changes, jentry{key: []byte(fmt.Sprintf("k%03d", r.IntN(300))), present: r.IntN(3) > 0})
		}
		eager = append(eager, eager[len(eager)-1].withChanges(changes))
		lazy = append(lazy, lazy[len(lazy)-1].withChanges(changes))
	}
	for i, l := range lazy {
		if l.keys() < eager[i].size() {
			t.Fatalf("version %d: %d keys before it is built, fewer than its %d", i, l.keys(), eager[i].size())
		}
	}
	var wg sync.WaitGroup
	for _, i := range r.Perm(len(lazy)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lazy[i].get()
		}()
	}
	wg.Wait()
	for i, l := range lazy {
		if got, want := walk(l.get(), nil, nil), walk(eager[i], nil, nil); got != want {
			t.Fatalf("version %d differs from the one built at once\ngot  %.200s\nwant %.200s", i, got, want)
		}
		if l.keys() != eager[i].size() {
			t.Fatalf("version %d: %d keys once built, want %d", i, l.keys(), eager[i].size())
		}
	}
}

func walk(s *jstate, lo, hi []byte) string {
	var b strings.Builder
	it := s.iter(lo, hi)
	for e, ok := it.next(); ok; e, ok = it.next() {
		fmt.Fprintf(&b, "%s=%v ", e.key, e.present)
	}
	return b.String()
}

func walkModel(m map[string]bool, lo, hi string) string {
	var keys []string
	for k := range m {
		if k >= lo && (hi == "" || k < hi) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v ", k, m[k])
	}
	return b.String()
}

func entries(r jrun) []jentry {
	var out []jentry
	for i := range r.len() {
		out = append(out, r.entry(i))
	}
	return out
}

func TestMergeRuns(t *testing.T) {
	run := func(spec string) jrun {
		var r jrun
		for _, f := range strings.Fields(spec) {
			r.add(jentry{key: []byte(strings.TrimSuffix(f, "-")), present: !strings.HasSuffix(f, "-")})
		}
		return r
	}
	tests := []struct{ older, newer, want string }{
		{"", "", ""},
		{"a b", "", "a b"},
		{"", "a b-", "a b-"},
		{"a c e", "b d", "a b c d e"},
		{"a c e", "a- e-", "a- c e-"},
		{"b c d", "a e", "a b c d e"},
		{"a b c d e f g h i j k", "j-", "a b c d e f g h i j- k"},
		{"a", "a-", "a-"},
	}
	for _, tt := range tests {
		got := mergeRuns(run(tt.older), run(tt.newer))
		if want := run(tt.want); !slices.EqualFunc(entries(got), entries(want), func(a, b jentry) bool { return bytes.Equal(a.key, b.key) && a.present == b.present }) {
			t.Errorf("mergeRuns(%q, %q) = %v, want %q", tt.older, tt.newer, entries(got), tt.want)
		}
	}
}

// TestSortChangesLastWins: of several changes to a key, the last counts.
func TestSortChangesLastWins(t *testing.T) {
	run := sortChanges([]jentry{{[]byte("b"), true}, {[]byte("a"), true}, {[]byte("b"), false}, {[]byte("a"), false}, {[]byte("a"), true}})
	got := entries(run)
	if len(got) != 2 || string(got[0].key) != "a" || !got[0].present || string(got[1].key) != "b" || got[1].present {
		t.Errorf("sortChanges = %v, want a present, b removed", got)
	}
}

// TestSortChangesModel: a commit's changes, writes of ascending keys one
// after another (some writes of one key, some touching keys an earlier
// write of the commit touched, some out of order), sort like a map that
// keeps each key's last change; from 0 to 40 writes, so that the merges
// carry odd stretches over several passes.
func TestSortChangesModel(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 8))
	for round := range 2000 {
		var changes []jentry
		model := map[string]bool{}
		for range r.IntN(41) {
			var keys []string
			for range r.IntN(6) {
				keys = append(keys, fmt.Sprintf("k%03d", r.IntN(60)))
			}
			if r.IntN(4) > 0 { // mostly in order, as SetIndex writes them
				slices.Sort(keys)
				keys = slices.Compact(keys)
			}
			for _, k := range keys {
				e := jentry{key: []byte(k), present: r.IntN(2) == 0}
				changes = append(changes, e)
				model[k] = e.present
			}
		}
		if got, want := walk(&jstate{runs: []jrun{sortChanges(changes)}}, nil, nil), walkModel(model, "", ""); got != want {
			t.Fatalf("round %d: sortChanges\ngot  %s\nwant %s", round, got, want)
		}
	}
}

func TestJournalRecordRoundTrip(t *testing.T) {
	type change struct {
		typ, id, param, vk string
		present            bool
	}
	in := []change{
		{"Patient", "p1", "name", "smith\x00", true},
		{"Patient", "p1", "birthdate", "\x01\x02", false},
		{"Observation", "o1", "code", "", true},
		{"Patient", "p1", "name", "jones\x00", true},
	}
	var r journalRecord
	var want []jentry
	for _, c := range in {
		r.add(c.typ, c.id, c.param, []byte(c.vk), c.present)
		want = append(want, jentry{journalKey(c.typ, c.param, indexKey([]byte(c.vk), c.id)), c.present})
	}
	// A create's record names the resource; its entries come from rix.
	r.addIndexed("Observation", "o2")
	for _, e := range rixEntries {
		want = append(want, jentry{journalKey("Observation", e.Param, indexKey(e.Key, "o2")), true})
	}
	r.add("Observation", "o2", "code", []byte("c\x00"), false)
	want = append(want, jentry{journalKey("Observation", "code", indexKey([]byte("c\x00"), "o2")), false})
	var out []jentry
	if err := decodeJournalRecord(r.b, someRix, func(e jentry) { out = append(out, e) }); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(want, out, func(a, b jentry) bool { return bytes.Equal(a.key, b.key) && a.present == b.present }) {
		t.Errorf("round trip: got %v, want %v", out, want)
	}
	for _, bad := range []string{
		"\x04",                             // unknown tag
		"\x03\x01T\x00",                    // an indexed record with an empty id
		"\x03\x01T\x01i\x01\x01p\x00",      // a change after it, naming no resource
		"\x01\x01p\x00",                    // a change before any resource
		"\x02\x01T\x00",                    // an empty id
		"\x02\x01T\x05ab",                  // a field past the end
		"\x02\x01T\x01i\x01\x01p\x80",      // a bad uvarint
		"\x02\x03T\x00U\x01i\x01\x01p\x00", // a NUL in the Type
	} {
		if err := decodeJournalRecord([]byte(bad), noRix, func(jentry) {}); err == nil {
			t.Errorf("decodeJournalRecord(%q) accepted a corrupt record", bad)
		}
	}
}

// rixEntries is what someRix lists for every resource.
var rixEntries = []IndexEntry{{"code", []byte("c\x00")}, {"status", []byte("final\x00")}}

func noRix(typ, id []byte) ([]IndexEntry, error)   { return nil, nil }
func someRix(typ, id []byte) ([]IndexEntry, error) { return rixEntries, nil }

// FuzzDecodeJournalRecord: any bytes decode or fail, without a panic, and
// every key decoded names a Type, a parameter and an index key with an id.
func FuzzDecodeJournalRecord(f *testing.F) {
	var r journalRecord
	r.add("Patient", "p1", "name", []byte("smith\x00"), true)
	r.add("Patient", "p2", "name", []byte("x"), false)
	f.Add(r.b)
	f.Add([]byte{2, 1, 'T', 1, 'i', 1, 0x80, 0x80})
	r.addIndexed("Patient", "p3")
	f.Add(r.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodeJournalRecord(b, someRix, func(e jentry) {
			_, _, ik, ok := splitJournalKey(e.key)
			if !ok {
				t.Fatalf("decoded key %q has no Type and parameter", e.key)
			}
			if _, _, ok := splitIndexKey(ik); !ok {
				t.Fatalf("decoded key %q has no id", e.key)
			}
		})
	})
}

// TestOpenUpgradesSchema: a store written before the index journal
// (layout 1, no ixj), before its "indexed" records (layout 2) or before
// index blocks (layout 3, idx with a bbolt key per index key) opens, its
// idx rewritten as blocks, and is marked layout 4, so that an older binary
// refuses it rather than miss journaled entries or misread blocks.
func TestOpenUpgradesSchema(t *testing.T) {
	ctx := context.Background()
	defer func(n int) { upgradeChunk = n }(upgradeChunk)
	upgradeChunk = 7 // many transactions per parameter
	for _, c := range []struct {
		from        uint64
		interrupted bool // a crash after the first step of the rewrite
	}{{1, false}, {2, false}, {3, false}, {3, true}} {
		from := c.from
		t.Run(fmt.Sprint(from, c.interrupted), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			o, err := fhir.ParseObject([]byte(`{"resourceType":"Observation","status":"final"}`))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range 300 {
				id := fmt.Sprintf("o%04d", i)
				err := s.Update(ctx, func(tx Tx) error {
					if _, err := tx.Put("Observation", id, o); err != nil {
						return err
					}
					return tx.SetIndex("Observation", id, []IndexEntry{{Param: "code", Key: fmt.Appendf(nil, "c%d\x00", i%3)}})
				})
				if err != nil {
					t.Fatal(err)
				}
				if i%3 == 1 {
					want = append(want, id)
				}
			}
			if err := s.FoldIndexJournal(ctx); err != nil {
				t.Fatal(err)
			}
			db := s.db
			err = db.Update(func(tx *bolt.Tx) error {
				if from == 1 {
					if err := tx.DeleteBucket(bucketIxj); err != nil {
						return err
					}
				}
				// idx as layouts 1-3 kept it: a bbolt key per index key.
				tb := tx.Bucket(bucketIdx).Bucket([]byte("Observation"))
				var keys [][]byte
				bc := blockCursor{c: tb.Bucket([]byte("code")).Cursor()}
				for k := bc.seek(nil); k != nil; k = bc.next() {
					keys = append(keys, bytes.Clone(k))
				}
				if len(keys) != 300 || bc.err != nil {
					t.Fatalf("%d keys in the blocks (%v), want 300", len(keys), bc.err)
				}
				if err := tb.DeleteBucket([]byte("code")); err != nil {
					return err
				}
				pb, err := tb.CreateBucket([]byte("code"))
				if err != nil {
					return err
				}
				for _, k := range keys {
					if err := pb.Put(k, nil); err != nil {
						return err
					}
				}
				return tx.Bucket(bucketMeta).Put(keySchema, u64(from))
			})
			if err != nil {
				t.Fatal(err)
			}
			if c.interrupted {
				// What Open did before the crash: the mark, and one step.
				err = db.Update(func(tx *bolt.Tx) error {
					if err := s.initSchema(tx); err != nil {
						return err
					}
					return convertChunk(tx, tx.Bucket(bucketIdx).Bucket([]byte("Observation")), []byte("Observation"), []byte("code"))
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, Options{})
			if err != nil {
				t.Fatalf("open a layout %d store: %v", from, err)
			}
			defer s.Close()
			err = s.db.View(func(tx *bolt.Tx) error {
				if tx.Bucket(bucketIxj) == nil {
					t.Error("no ixj bucket after the upgrade")
				}
				meta := tx.Bucket(bucketMeta)
				if v := meta.Get(keySchema); beUint64(v) != schemaVersion {
					t.Errorf("schema %d after the upgrade, want %d", beUint64(v), schemaVersion)
				}
				if meta.Get(keyIndexBlocksPending) != nil || tx.Bucket(bucketIdxUpgrade) != nil {
					t.Error("the upgrade left its mark or its work bucket")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Check(ctx); err != nil {
				t.Errorf("Check after the upgrade: %v", err)
			}
			var got []string
			err = s.View(ctx, func(tx Tx) error {
				return tx.ScanIndex(ctx, "Observation", "code", []byte("c1\x00"), []byte("c1\x01"), func(_ []byte, id string) bool {
					got = append(got, id)
					return true
				})
			})
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("code=c1 after the upgrade: %v (%v), want %d ids", len(got), err, len(want))
			}
		})
	}
}

func TestFoldStateRoundTrip(t *testing.T) {
	states := []*foldState{
		{},
		{inPass: true, passFirst: 7, next: []byte("Patient\x00name\x00b")},
		{inPass: true, passFirst: 3, next: []byte("x"), markers: []foldMarker{
			{seq: 3, lo: nil, hi: []byte("x")},
			{seq: 9, lo: []byte("x"), hi: nil},
			{seq: 12, lo: []byte{}, hi: []byte{}},
		}},
	}
	for _, fs := range states {
		got, err := decodeFoldState(fs.encode())
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", fs, err)
		}
		if !bytes.Equal(got.encode(), fs.encode()) {
			t.Errorf("round trip of %+v gave %+v", fs, got)
		}
		for _, m := range fs.markers {
			if (m.hi == nil) != (got.markers[slices.IndexFunc(fs.markers, func(x foldMarker) bool { return x.seq == m.seq })].hi == nil) {
				t.Errorf("marker %d: an open end and an empty end must stay apart", m.seq)
			}
		}
	}
	for _, bad := range []string{"\x02", "\x01\x00", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05ab", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"} {
		if _, err := decodeFoldState([]byte(bad)); err == nil {
			t.Errorf("decodeFoldState(%q) accepted a corrupt state", bad)
		}
	}
}

// FuzzDecodeFoldState: any bytes decode or fail without a panic, and what
// decodes encodes back to a state that decodes the same.
func FuzzDecodeFoldState(f *testing.F) {
	f.Add((&foldState{inPass: true, passFirst: 3, next: []byte("k"), markers: []foldMarker{{seq: 3, hi: []byte("k")}, {seq: 5, lo: []byte("k")}}}).encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := decodeFoldState(b)
		if err != nil {
			return
		}
		again, err := decodeFoldState(fs.encode())
		if err != nil || !bytes.Equal(again.encode(), fs.encode()) {
			t.Fatalf("%x decodes to a state that does not survive a round trip: %v", b, err)
		}
	})
}

// TestLazyVersionPanics: a version whose build panics (a bug) makes every
// caller panic, in turn, rather than hand out a nil version; the
// background builder does not take the process down.
func TestLazyVersionPanics(t *testing.T) {
	l := newLazyState(1, func() *jstate { panic("boom") })
	j := newJournal(10, 1, emptyJState)
	j.build(l) // recovers
	for range 2 {
		func() {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "boom") {
					t.Errorf("get: recovered %v, want the build's panic", p)
				}
			}()
			l.get()
			t.Error("get returned")
		}()
	}
}
