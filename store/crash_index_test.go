package store_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"healthhub/fhir"
	"healthhub/fhir/interaction"
	"healthhub/fhir/search"
	"healthhub/store"
)

// The search indexes after a crash.
//
// The property: whenever a store is opened again after a crash, at any
// point (between two write transactions, mid-pass between fold chunks,
// during a reindex or the compaction after it), every search index answers
// exactly what the stored current resources say: each (value key, id) the
// Indexer derives from a current, not deleted, resource once, and nothing
// else. indexProblems checks it through the public scans (the B+trees
// merged with the replayed journal, as searches read them), against
// entries derived afresh from the resources, independently of the
// journal's own bookkeeping (Check compares the index with the same
// derivation, but through the journal and blocks directly; it runs too).
//
// A bbolt commit is durable whole or not at all (its meta page is written
// last), so what a crash leaves is the file as of some commit: the
// in-process tests copy the file at commits (Bolt.SnapshotTo) and open the
// copies; TestIndexExactAfterSIGKILL kills a writing child process.
// HEALTHHUB_CRASH_ITERATIONS multiplies the iterations of both.

// crashScale is the multiplier HEALTHHUB_CRASH_ITERATIONS sets (1 unset).
func crashScale(t testing.TB) int {
	v := os.Getenv("HEALTHHUB_CRASH_ITERATIONS")
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("HEALTHHUB_CRASH_ITERATIONS=%q: want a positive integer", v)
	}
	return n
}

var crashRegistry = sync.OnceValues(search.Load)

// crashIndexer is serve's Indexer: the official search parameters.
func crashIndexer(t testing.TB) store.Indexer {
	t.Helper()
	reg, err := crashRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return interaction.NewIndexer(reg)
}

// crashOptions opens a store as serve does, with a small journal so that
// folds happen every few writes.
func crashOptions(ix store.Indexer, journal int) store.Options {
	return store.Options{Indexer: ix, IndexJournalMax: journal}
}

// indexProblems compares every search index of s, as searches see it, with
// the entries ix derives from the current resources: entries missing
// (lost), present for no current resource (stale), or visited twice
// (duplicates), and scans out of key order.
func indexProblems(ctx context.Context, s *store.Bolt, ix store.Indexer) ([]string, error) {
	params, err := s.IndexedParams()
	if err != nil {
		return nil, err
	}
	var problems []string
	fail := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	err = s.View(ctx, func(tx store.Tx) error {
		// What the current resources say: Type -> param -> value key 0x00 id.
		want := map[string]map[string]map[string]bool{}
		for _, typ := range search.SearchTypes {
			want[typ] = map[string]map[string]bool{}
			var ids []string
			if err := tx.ScanIDs(ctx, typ, func(id string) bool { ids = append(ids, id); return true }); err != nil {
				return err
			}
			for _, id := range ids {
				r, err := tx.Current(typ, id)
				if err != nil {
					return err
				}
				if r.Deleted {
					continue
				}
				entries, err := ix.IndexEntries(r)
				if err != nil {
					return err
				}
				for _, e := range entries {
					if want[typ][e.Param] == nil {
						want[typ][e.Param] = map[string]bool{}
					}
					want[typ][e.Param][string(e.Key)+"\x00"+id] = true
				}
			}
		}
		for typ, ps := range params {
			if want[typ] == nil {
				want[typ] = map[string]map[string]bool{}
			}
			for _, p := range ps {
				if want[typ][p] == nil {
					want[typ][p] = map[string]bool{}
				}
			}
		}
		for typ, byParam := range want {
			for param, keys := range byParam {
				seen := map[string]bool{}
				var prev []byte
				err := tx.ScanIndex(ctx, typ, param, nil, nil, func(vk []byte, id string) bool {
					k := string(vk) + "\x00" + id
					ik := append(append(bytes.Clone(vk), id...), byte(len(id)))
					switch {
					case prev != nil && bytes.Compare(ik, prev) <= 0:
						fail("%s %s: %x -> %s visited after %x (out of order or twice)", typ, param, vk, id, prev)
					case seen[k]:
						fail("%s %s: %x -> %s visited twice", typ, param, vk, id)
					case !keys[k]:
						fail("%s %s: %x -> %s is stale: the current resource has no such entry", typ, param, vk, id)
					}
					seen[k], prev = true, ik
					return true
				})
				if err != nil {
					return err
				}
				for k := range keys {
					if !seen[k] {
						at := strings.LastIndexByte(k, 0) // ids have no NUL, value keys may
						vk, id := k[:at], k[at+1:]
						fail("%s %s: %x -> %s is lost: the current resource has it, the index does not", typ, param, vk, id)
					}
				}
			}
		}
		return nil
	})
	slices.Sort(problems)
	return problems, err
}

// requireExactIndexes fails t unless indexProblems and Check find nothing.
func requireExactIndexes(t testing.TB, s *store.Bolt, ix store.Indexer, when string) {
	t.Helper()
	ctx := context.Background()
	problems, err := indexProblems(ctx, s, ix)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if len(problems) > 0 {
		t.Fatalf("%s: the search indexes differ from the current resources:\n%s", when, strings.Join(problems, "\n"))
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// crashOp is one write of a write transaction: an update (Put) of a
// resource of the shared pool, a create (Create) of a new one, or a
// delete.
type crashOp struct {
	kind    byte // 'u', 'c', 'd'
	typ, id string
	body    []byte
}

// crashGen makes random writes. Pool resources are updated, deleted and
// written again over and over, by every writer; created ones get ids of
// their own (prefix).
type crashGen struct {
	r      *rand.Rand
	ix     store.Indexer
	prefix string
	next   int
}

const crashPatients, crashObservations = 12, 24

func (g *crashGen) poolID(typ string) string {
	if typ == "Patient" {
		return fmt.Sprintf("p%02d", g.r.IntN(crashPatients))
	}
	return fmt.Sprintf("o%02d", g.r.IntN(crashObservations))
}

// body is a resource of typ whose values come from small sets, so that an
// update keeps some of its entries and changes others, and many resources
// share a value.
func (g *crashGen) body(typ, id string) []byte {
	r := g.r
	var m map[string]any
	switch typ {
	case "Patient":
		m = map[string]any{
			"identifier": []any{map[string]any{"system": "urn:mrn", "value": fmt.Sprintf("mrn-%d", r.IntN(30))}},
			"active":     r.IntN(2) == 0,
			"name":       []any{map[string]any{"family": []string{"Chalmers", "Windsor", "Lee", "Okafor"}[r.IntN(4)], "given": []any{[]string{"Peter", "Ann", "Jo"}[r.IntN(3)]}}},
			"gender":     []string{"male", "female", "other", "unknown"}[r.IntN(4)],
			"birthDate":  fmt.Sprintf("19%02d-%02d-%02d", 40+r.IntN(60), 1+r.IntN(12), 1+r.IntN(28)),
		}
		if r.IntN(3) == 0 {
			m["address"] = []any{map[string]any{"city": []string{"PleasantVille", "Springfield"}[r.IntN(2)], "postalCode": strconv.Itoa(3000 + r.IntN(5))}}
		}
	default:
		codes := []string{"29463-7", "8302-2", "8867-4", "2339-0"}
		m = map[string]any{
			"status":            []string{"final", "amended", "preliminary"}[r.IntN(3)],
			"category":          []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}}},
			"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": codes[r.IntN(len(codes))]}}},
			"subject":           map[string]any{"reference": fmt.Sprintf("Patient/p%02d", r.IntN(crashPatients))},
			"effectiveDateTime": fmt.Sprintf("2024-%02d-%02dT09:%02d:00Z", 1+r.IntN(12), 1+r.IntN(28), r.IntN(60)),
			"valueQuantity":     map[string]any{"value": float64(r.IntN(2000)) / 10, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
		}
	}
	m["resourceType"] = typ
	m["id"] = id
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func (g *crashGen) op() crashOp {
	typ := "Observation"
	if g.r.IntN(3) == 0 {
		typ = "Patient"
	}
	switch n := g.r.IntN(10); {
	case n < 5:
		id := g.poolID(typ)
		return crashOp{kind: 'u', typ: typ, id: id, body: g.body(typ, id)}
	case n < 7:
		g.next++
		id := fmt.Sprintf("%s%d", g.prefix, g.next)
		return crashOp{kind: 'c', typ: typ, id: id, body: g.body(typ, id)}
	default:
		return crashOp{kind: 'd', typ: typ, id: g.poolID(typ)}
	}
}

// ops is one write transaction: mostly one write, sometimes several,
// sometimes of the same resource twice.
func (g *crashGen) ops() []crashOp {
	if g.r.IntN(5) > 0 {
		return []crashOp{g.op()}
	}
	ops := make([]crashOp, 2+g.r.IntN(3))
	for i := range ops {
		ops[i] = g.op()
		if i > 0 && g.r.IntN(2) == 0 && ops[i-1].kind != 'c' { // the same resource again
			prev := ops[i-1]
			switch g.r.IntN(2) {
			case 0:
				ops[i] = crashOp{kind: 'u', typ: prev.typ, id: prev.id, body: g.body(prev.typ, prev.id)}
			default:
				ops[i] = crashOp{kind: 'd', typ: prev.typ, id: prev.id}
			}
		}
	}
	return ops
}

// write runs ops in one write transaction as the service does: the new
// version, then the entries the Indexer derives from it; a delete leaves
// every index.
func (g *crashGen) write(ctx context.Context, s *store.Bolt, ops []crashOp, prepare bool) error {
	if prepare {
		for _, o := range ops {
			if o.kind != 'c' {
				s.PrepareReplace(ctx, o.typ, o.id)
			}
		}
	}
	return s.Update(ctx, func(tx store.Tx) error {
		for _, o := range ops {
			if o.kind == 'd' {
				cur, err := tx.Current(o.typ, o.id)
				if errors.Is(err, store.ErrNotFound) || err == nil && cur.Deleted {
					continue
				}
				if err != nil {
					return err
				}
				if _, err := tx.Delete(o.typ, o.id); err != nil {
					return err
				}
				if err := tx.SetIndex(o.typ, o.id, nil); err != nil {
					return err
				}
				continue
			}
			obj, err := fhir.ParseObject(o.body)
			if err != nil {
				return err
			}
			put := tx.Put
			if o.kind == 'c' {
				put = tx.Create
			}
			r, err := put(o.typ, o.id, obj)
			if err != nil {
				return err
			}
			entries, err := g.ix.IndexEntries(r)
			if err != nil {
				return err
			}
			if err := tx.SetIndex(o.typ, o.id, entries); err != nil {
				return err
			}
		}
		return nil
	})
}

// step writes one random transaction.
func (g *crashGen) step(ctx context.Context, s *store.Bolt) error {
	return g.write(ctx, s, g.ops(), g.r.IntN(2) == 0)
}

// snapshots copies a store's file at its commits into directories of its
// own: the states a crash could leave.
type snapshots struct {
	t    testing.TB
	root string
	last int
	dirs []string
}

// take copies the file unless its newest commit was copied already.
func (sn *snapshots) take(s *store.Bolt) {
	sn.t.Helper()
	dir := filepath.Join(sn.root, strconv.Itoa(len(sn.dirs)))
	txid, err := s.SnapshotTo(dir)
	if err != nil {
		sn.t.Fatal(err)
	}
	if txid == sn.last {
		if err := os.RemoveAll(dir); err != nil {
			sn.t.Fatal(err)
		}
		return
	}
	sn.last = txid
	sn.dirs = append(sn.dirs, dir)
}

// checkEveryCopy requires exact indexes of s, the store written to, and
// of every copy in sn once recovered (recoverAndCheck; every eighth is
// built on further).
func checkEveryCopy(t *testing.T, s *store.Bolt, sn *snapshots, ix store.Indexer, journal int, r *rand.Rand) {
	t.Helper()
	requireExactIndexes(t, s, ix, "the store written to")
	var st replayStats
	for i, dir := range sn.dirs {
		recoverAndCheck(t, dir, ix, journal, r, i%8 == 0, &st)
	}
	t.Log(st)
}

// recoverAndCheck opens the copy in dir as a restarted server would and
// requires exact indexes; then writes more, folds everything and reopens,
// so that the replayed journal and its fold markers are also built on.
// It counts in st what the crash left to replay.
func recoverAndCheck(t *testing.T, dir string, ix store.Indexer, journal int, r *rand.Rand, more bool, st *replayStats) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(dir, crashOptions(ix, journal))
	if err != nil {
		t.Fatalf("open %s after the crash: %v", dir, err)
	}
	defer func() { s.Close() }()
	st.add(t, s)
	requireExactIndexes(t, s, ix, dir+": reopened")
	if !more {
		return
	}
	g := &crashGen{r: r, ix: ix, prefix: "after-"}
	for range 5 + r.IntN(10) {
		if err := g.step(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if r.IntN(2) == 0 {
		if err := s.FoldIndexJournal(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = store.Open(dir, crashOptions(ix, journal)); err != nil {
		t.Fatal(err)
	}
	requireExactIndexes(t, s, ix, dir+": written to after the crash, reopened")
}

// replayStats count what the crashes left for Open to replay.
type replayStats struct {
	crashes  int
	replayed int // of them, with journal records to replay
	midPass  int // with a pass of folds under way (fold markers to skip by)
	keys     int // keys replayed, in all
}

func (st *replayStats) add(t testing.TB, s *store.Bolt) {
	t.Helper()
	records, inPass, _, err := s.JournalFile()
	if err != nil {
		t.Fatal(err)
	}
	st.crashes++
	if records > 0 {
		st.replayed++
	}
	if inPass {
		st.midPass++
	}
	st.keys += s.Stats().JournalKeys
}

func (st replayStats) String() string {
	return fmt.Sprintf("%d crashes: %d left journal records to replay (%d keys in all), %d in the middle of a pass of folds", st.crashes, st.replayed, st.keys, st.midPass)
}

// spread returns at most n of dirs, evenly spread, the last included.
func spread(dirs []string, n int) []string {
	if len(dirs) <= n {
		return dirs
	}
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, dirs[(i+1)*len(dirs)/n-1])
	}
	return out
}

// serialCrashes writes steps random transactions to s, one at a time, with
// folds of a chunk (planned, a write between plan and fold, or not) and of
// the whole journal among them, copying the file after every commit.
func serialCrashes(t *testing.T, s *store.Bolt, g *crashGen, sn *snapshots, steps int) {
	t.Helper()
	ctx := context.Background()
	r := g.r
	for range steps {
		var err error
		switch n := r.IntN(10); {
		case n < 7:
			err = g.step(ctx, s)
		case n < 8:
			err = s.FoldIndexJournalChunk(ctx)
		case n < 9:
			var apply func() error
			if apply, err = s.PrepareIndexJournalFold(ctx); err == nil {
				if r.IntN(2) == 0 { // a write between the plan and its fold
					err = g.step(ctx, s)
					sn.take(s)
				}
				if err == nil {
					err = apply()
				}
			}
		default:
			err = s.FoldIndexJournal(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		sn.take(s)
	}
}

// TestIndexExactAfterCrashAtCommits: a crash after any commit, then a
// reopen, leaves every search index exact, and so does writing on after
// the reopen. The commits are those of
//
//   - serial: one writer's creates, updates and deletes, and the folds of
//     chunks (planned or not) and of the whole journal between them, every
//     commit copied: crashes between writes and folds, mid-pass between
//     fold chunks, just after a pass ended;
//   - rix: the same in a file first written without an Indexer (every
//     resource's entries in rix), then opened with one (derived entries
//     from then on, the rix records dropped as resources are written);
//   - concurrent: four writers with background folds, planned while the
//     writes go on, and group commits in which a fold and writes share a
//     transaction, copied while they run;
//   - reindex: a rebuild of the indexes from scratch (Reindex, the folds
//     during and after it, IndexesRebuilt), copied while it runs: a copy
//     from before IndexesRebuilt must be refused until a reindex.
func TestIndexExactAfterCrashAtCommits(t *testing.T) {
	t.Parallel()
	ix := crashIndexer(t)
	ctx := context.Background()
	scale := crashScale(t)
	const journal = 160 // folds of 20 keys
	for seed := range uint64(2 * scale) {
		t.Run(fmt.Sprintf("serial-%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, seed))
			s, err := store.Open(t.TempDir(), crashOptions(ix, journal))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sn := &snapshots{t: t, root: t.TempDir()}
			serialCrashes(t, s, &crashGen{r: r, ix: ix, prefix: "c"}, sn, 60)
			checkEveryCopy(t, s, sn, ix, journal, r)
		})
	}
	for seed := range uint64(scale) {
		t.Run(fmt.Sprintf("rix-%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(13, seed))
			dir := t.TempDir()
			s, err := store.Open(dir, store.Options{IndexJournalMax: journal})
			if err != nil {
				t.Fatal(err)
			}
			sn := &snapshots{t: t, root: t.TempDir()}
			g := &crashGen{r: r, ix: ix, prefix: "c"}
			serialCrashes(t, s, g, sn, 30)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = store.Open(dir, crashOptions(ix, journal)); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			serialCrashes(t, s, g, sn, 30)
			checkEveryCopy(t, s, sn, ix, journal, r)
		})
	}
	for seed := range uint64(scale) {
		t.Run(fmt.Sprintf("concurrent-%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(12, seed))
			const journal = 64 // folds of 8 keys, in the background
			s, err := store.Open(t.TempDir(), crashOptions(ix, journal))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sn := &snapshots{t: t, root: t.TempDir()}
			var st replayStats
			var wg sync.WaitGroup
			done := make(chan struct{})
			for w := range 4 {
				g := &crashGen{r: rand.New(rand.NewPCG(uint64(w), seed)), ix: ix, prefix: fmt.Sprintf("w%d-", w)}
				wg.Go(func() {
					for range 30 {
						if err := g.step(ctx, s); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			go func() { wg.Wait(); close(done) }()
			for running := true; running; {
				select {
				case <-done:
					running = false
				default:
				}
				sn.take(s)
			}
			requireExactIndexes(t, s, ix, "the store written to")
			if s.Stats().JournalFolds == 0 {
				t.Error("no fold ran: the crash points are not between folds")
			}
			checked := spread(sn.dirs, 40*scale)
			for i, dir := range checked {
				recoverAndCheck(t, dir, ix, journal, r, i%8 == 0, &st)
			}
			t.Logf("%d crash points copied, %d folds; checked %v", len(sn.dirs), s.Stats().JournalFolds, st)
		})
	}
	for seed := range uint64(scale) {
		t.Run(fmt.Sprintf("reindex-%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(14, seed))
			const journal = 64
			dir := t.TempDir()
			s, err := store.Open(dir, crashOptions(ix, journal))
			if err != nil {
				t.Fatal(err)
			}
			g := &crashGen{r: r, ix: ix, prefix: "c"}
			for range 40 {
				if err := g.step(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			reg, err := crashRegistry()
			if err != nil {
				t.Fatal(err)
			}
			s, err = store.Open(dir, store.Options{Indexer: ix, IndexJournalMax: journal, RebuildIndexes: true})
			if err != nil {
				t.Fatal(err)
			}
			sn := &snapshots{t: t, root: t.TempDir()}
			var st replayStats
			sn.take(s)
			done := make(chan error)
			go func() {
				_, err := interaction.New(s, nil, reg).Reindex(ctx, nil)
				if err == nil {
					err = s.IndexesRebuilt(ctx)
				}
				done <- err
			}()
			for running := true; running; {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					running = false
				default:
				}
				sn.take(s)
			}
			rebuilt := len(sn.dirs) // copies from here on are after IndexesRebuilt
			for range 20 {          // the folds after the rebuild
				sn.take(s)
				time.Sleep(time.Millisecond)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			refused := 0
			for i, dir := range spread(sn.dirs, 40*scale) {
				s, err := store.Open(dir, crashOptions(ix, journal))
				if errors.Is(err, store.ErrIndexesIncomplete) {
					refused++
					if s, err = store.Open(dir, store.Options{Indexer: ix, IndexJournalMax: journal, RebuildIndexes: true}); err != nil {
						t.Fatal(err)
					}
					_, err = interaction.New(s, nil, reg).Reindex(ctx, nil)
					if err == nil {
						err = s.IndexesRebuilt(ctx)
					}
					if err == nil {
						err = s.Close()
					}
					if err != nil {
						t.Fatal(err)
					}
				} else if err != nil {
					t.Fatalf("copy %d: %v", i, err)
				} else if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				recoverAndCheck(t, dir, ix, journal, r, i%8 == 0, &st)
			}
			t.Logf("%d crash points copied, %d of them after IndexesRebuilt; %d checked copies refused until a reindex; after it, %v", len(sn.dirs), len(sn.dirs)-rebuilt, refused, st)
		})
	}
}

// crashChildEnv, when set, makes the test binary a child process of
// TestIndexExactAfterSIGKILL (TestMain): "write DIR JOURNAL SEED" writes
// until killed; "reindex DIR JOURNAL" runs what healthhub reindex does.
const crashChildEnv = "HEALTHHUB_TEST_CRASH_CHILD"

func TestMain(m *testing.M) {
	if args := os.Getenv(crashChildEnv); args != "" {
		os.Exit(crashChild(strings.Fields(args)))
	}
	os.Exit(m.Run())
}

// crashChild runs a child's work, telling its phases on stdout, one a
// line: opening, ready (writing), then for a reindex reindexing, rebuilt,
// compacting, compacted.
func crashChild(args []string) int {
	say := func(phase string) { _, _ = os.Stdout.WriteString(phase + "\n") }
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	if len(args) < 3 {
		return fail(fmt.Errorf("arguments %q", args))
	}
	dir := args[1]
	journal, err := strconv.Atoi(args[2])
	if err != nil {
		return fail(err)
	}
	reg, err := crashRegistry()
	if err != nil {
		return fail(err)
	}
	ix := interaction.NewIndexer(reg)
	ctx := context.Background()
	switch args[0] {
	case "write":
		seed, err := strconv.ParseUint(args[3], 10, 64)
		if err != nil {
			return fail(err)
		}
		say("opening")
		s, err := store.Open(dir, crashOptions(ix, journal))
		if err != nil {
			return fail(err)
		}
		say("ready")
		var wg sync.WaitGroup
		for w := range 4 {
			g := &crashGen{r: rand.New(rand.NewPCG(seed, uint64(w))), ix: ix, prefix: fmt.Sprintf("k%d-%d-", seed, w)}
			wg.Go(func() {
				for {
					if err := g.step(ctx, s); err != nil {
						fmt.Fprintln(os.Stderr, "crash child:", err)
						os.Exit(1)
					}
				}
			})
		}
		wg.Wait() // until killed
		return 0
	case "reindex":
		say("opening")
		s, err := store.Open(dir, store.Options{Indexer: ix, IndexJournalMax: journal, RebuildIndexes: true})
		if err != nil {
			return fail(err)
		}
		say("reindexing")
		if _, err := interaction.New(s, nil, reg).Reindex(ctx, nil); err != nil {
			return fail(err)
		}
		if err := s.IndexesRebuilt(ctx); err != nil {
			return fail(err)
		}
		say("rebuilt") // the background folds may still run
		if err := s.Close(); err != nil {
			return fail(err)
		}
		say("compacting")
		if _, _, err := store.Compact(dir); err != nil {
			return fail(err)
		}
		say("compacted")
		return 0
	}
	return fail(fmt.Errorf("arguments %q", args))
}

// crashKid is a running child.
type crashKid struct {
	cmd    *exec.Cmd
	phases chan string // closed when stdout ends
	stderr bytes.Buffer
}

func startCrashKid(t *testing.T, args ...string) *crashKid {
	t.Helper()
	k := &crashKid{cmd: exec.Command(os.Args[0]), phases: make(chan string, 16)}
	k.cmd.Env = append(os.Environ(), crashChildEnv+"="+strings.Join(args, " "))
	k.cmd.Stderr = &k.stderr
	out, err := k.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(k.phases)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			k.phases <- sc.Text()
		}
	}()
	return k
}

// killAfter waits for the child to tell phase (or to end), waits delay
// more and sends it SIGKILL; it returns the phases the child had told by
// then and whether it had exited on its own.
func (k *crashKid) killAfter(t *testing.T, phase string, delay time.Duration) (told []string, exited bool) {
	t.Helper()
	for p := range k.phases {
		told = append(told, p)
		if p == phase {
			break
		}
	}
	time.Sleep(delay)
	// What it told meanwhile was told before the kill.
	for more := true; more; {
		select {
		case p, ok := <-k.phases:
			if !ok {
				more = false
				break
			}
			told = append(told, p)
		default:
			more = false
		}
	}
	_ = k.cmd.Process.Signal(syscall.SIGKILL)
	for p := range k.phases { // told before the kill, read after it
		told = append(told, p)
	}
	err := k.cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return told, true
	case errors.As(err, &ee) && !ee.Exited(): // killed
		return told, false
	default:
		t.Fatalf("the child failed: %v\n%s", err, k.stderr.String())
		return nil, false
	}
}

// TestIndexExactAfterSIGKILL: a child process writes (creates, updates and
// deletes of shared resources from four goroutines, with a journal of 64
// keys, so that background folds run all the time) and is killed with
// SIGKILL at a random moment; or it rebuilds the indexes as healthhub
// reindex does, and is killed while it opens, reindexes, folds after the
// rebuild, or compacts the file. After each kill the store opens (or,
// killed before the rebuild finished, refuses to, until a reindex) and
// every search index is exact. The iterations share a data directory (16
// at most), so each crash recovers from a file earlier crashes left.
func TestIndexExactAfterSIGKILL(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL")
	}
	ix := crashIndexer(t)
	reg, err := crashRegistry()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	root := t.TempDir()
	const journal = 64
	iterations := 8 * crashScale(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill times from seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	hit := map[string]int{} // the last phase a child told before its kill
	var (
		st                  replayStats // of the opens that did not need a reindex
		refused, midCompact int
	)
	for i := range iterations {
		// A store lives 16 kills: longer, and it grows so that the checks
		// take most of the time.
		dir := filepath.Join(root, strconv.Itoa(i/16))
		var (
			told   []string
			exited bool
		)
		partial := filepath.Join(dir, store.FileName+".compact") // an earlier kill's, maybe
		before, _ := os.Stat(partial)
		if i%3 == 2 {
			phase := []string{"opening", "reindexing", "rebuilt", "compacting"}[r.IntN(4)]
			k := startCrashKid(t, "reindex", dir, strconv.Itoa(journal))
			told, exited = k.killAfter(t, phase, time.Duration(r.IntN(3000))*time.Microsecond)
		} else {
			phase, delay := "ready", time.Duration(r.IntN(400))*time.Millisecond
			if r.IntN(5) == 0 {
				phase, delay = "opening", time.Duration(r.IntN(2000))*time.Microsecond
			}
			k := startCrashKid(t, "write", dir, strconv.Itoa(journal), strconv.Itoa(i))
			told, exited = k.killAfter(t, phase, delay)
		}
		last := "(none)"
		if len(told) > 0 {
			last = told[len(told)-1]
		}
		if exited {
			last = "exited"
		}
		hit[fmt.Sprintf("%s: %s", map[bool]string{true: "reindex", false: "write"}[i%3 == 2], last)]++

		if after, err := os.Stat(partial); err == nil && (before == nil || !after.ModTime().Equal(before.ModTime())) {
			midCompact++ // killed while it copied the file: the copy is left behind
		}
		s, err := store.Open(dir, crashOptions(ix, journal))
		if errors.Is(err, store.ErrIndexesIncomplete) {
			refused++
			if slices.Contains(told, "rebuilt") {
				t.Fatalf("iteration %d: killed after the rebuild finished (%v), the store refuses to open: %v", i, told, err)
			}
			// What healthhub reindex, run again, does.
			if s, err = store.Open(dir, store.Options{Indexer: ix, IndexJournalMax: journal, RebuildIndexes: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := interaction.New(s, nil, reg).Reindex(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := s.IndexesRebuilt(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = store.Open(dir, crashOptions(ix, journal))
		} else if err == nil {
			st.add(t, s)
		}
		if err != nil {
			t.Fatalf("iteration %d: open after the kill (%v): %v", i, told, err)
		}
		requireExactIndexes(t, s, ix, fmt.Sprintf("iteration %d, killed after %v", i, told))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills; the last phase told before each: %v; %d left a partial copy of compaction behind, %d a rebuild to do again; the others: %v", iterations, hit, midCompact, refused, st)
}
