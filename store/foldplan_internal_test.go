package store

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"healthhub/fhir"
)

// TestChangedSince: a version grown from another by commits (withChanges),
// small and large so that runs merge, some of them old runs, reports
// exactly the keys in a range whose state differs from the old version's
// or that it lacks, with their new state; and gives up past its limit.
// The old version may itself be cut by a fold (without), as the journal's
// versions are after one.
func TestChangedSince(t *testing.T) {
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 3))
		key := func() []byte { return fmt.Appendf(nil, "k%04d", r.IntN(3000)) }
		model := map[string]bool{}
		state := emptyJState
		commit := func(n int) {
			var changes []jentry
			for range n {
				e := jentry{key: key(), present: r.IntN(3) > 0}
				changes = append(changes, e)
				model[string(e.key)] = e.present
			}
			state = state.withChanges(changes)
		}
		sizes := []int{1, 5, 40, 300, 2000}
		for range 5 + r.IntN(30) {
			commit(sizes[r.IntN(len(sizes))])
		}
		if seed%2 == 1 {
			lo, hi := key(), key()
			if bytes.Compare(lo, hi) > 0 {
				lo, hi = hi, lo
			}
			state = state.without(lo, hi)
			maps.DeleteFunc(model, func(k string, _ bool) bool { return k >= string(lo) && k < string(hi) })
		}
		old, oldModel := state, maps.Clone(model)
		for range 1 + r.IntN(8) {
			commit(sizes[r.IntN(len(sizes)-1)])
		}
		lo, hi := key(), key()
		if bytes.Compare(lo, hi) > 0 {
			lo, hi = hi, lo
		}
		if seed%5 == 0 {
			hi = nil
		}
		var want []string
		for k, present := range model {
			if k < string(lo) || (hi != nil && k >= string(hi)) {
				continue
			}
			if was, ok := oldModel[k]; !ok || was != present {
				want = append(want, fmt.Sprintf("%s=%v", k, present))
			}
		}
		slices.Sort(want)
		delta, ok := state.changedSince(old, lo, hi, 1<<30)
		if !ok {
			t.Fatalf("seed %d: gave up without a limit", seed)
		}
		var got []string
		for _, e := range delta {
			got = append(got, fmt.Sprintf("%s=%v", e.key, e.present))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: changedSince [%s, %s)\ngot  %v\nwant %v", seed, lo, hi, got, want)
		}
		if len(want) > 0 {
			if _, ok := state.changedSince(old, lo, hi, len(want)-1); ok {
				t.Fatalf("seed %d: %d changes, but no give-up at a limit of %d", seed, len(want), len(want)-1)
			}
		}
	}
}

// TestPreparedFolds: folds computed from a snapshot while writes go on,
// then applied (Bolt.prepareFold, boltTx.fold), leave the index equal to a
// model, and the store's invariants hold (Check), at every step and after
// reopening (the journal replayed past the folds' markers). Writes between
// a plan and its fold add, remove and restore keys inside the plan's
// chunk; sometimes another fold runs between them, and the plan must not
// be applied, even when both folded a whole pass; passes over the key
// space end and start.
func TestPreparedFolds(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { testPreparedFolds(t, seed) })
	}
}

func testPreparedFolds(t *testing.T, seed uint64) {
	dir := t.TempDir()
	const chunk = 12
	// A bound the test never reaches: it folds itself.
	opt := Options{IndexJournalMax: 1 << 30}
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(11, seed))
	const ids = 30
	model := map[string]map[string]bool{} // id -> index keys (param/value)
	err = s.Update(ctx, func(tx Tx) error {
		for i := range ids {
			o, err := fhir.ParseObject([]byte(`{"resourceType":"Patient"}`))
			if err != nil {
				return err
			}
			if _, err := tx.Create("Patient", fmt.Sprintf("r%02d", i), o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	params := []string{"a", "b", "c"}
	write := func() {
		t.Helper()
		WriteRandomIndex(t, s, r, "Patient", ids, params, 25, 4, model)
	}
	check := func(when string) {
		t.Helper()
		CheckIndexModel(t, s, "Patient", params, model, when)
	}
	foldWith := func(plan *foldPlan) {
		t.Helper()
		err := s.Update(ctx, func(tx Tx) error { _, err := tx.(*boltTx).fold(chunk, plan); return err })
		if err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		write()
	}
	plans, appliedPlans := 0, 0
	for step := range 200 {
		if r.IntN(4) == 0 {
			// A journal of less than a chunk: the plan, and a fold made
			// before it is applied, each fold a whole pass.
			if err := s.FoldIndexJournal(ctx); err != nil {
				t.Fatal(err)
			}
			write()
		}
		plan, err := s.prepareFold(chunk)
		if err != nil {
			t.Fatal(err)
		}
		for range r.IntN(4) {
			write()
		}
		before := s.Stats()
		stale := r.IntN(8) == 0
		if stale {
			foldWith(nil)
		}
		foldWith(plan)
		applied := s.Stats().JournalFoldsPlanned - before.JournalFoldsPlanned
		if applied != 0 && stale {
			t.Fatalf("step %d: a plan made before another fold was applied", step)
		}
		if !stale {
			plans++
			appliedPlans += int(applied)
		}
		check(fmt.Sprintf("step %d", step))
		if r.IntN(15) == 0 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(dir, opt); err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("step %d, reopened", step))
		}
		for range r.IntN(3) {
			write()
		}
	}
	if appliedPlans < plans*3/4 {
		t.Errorf("%d of %d plans applied", appliedPlans, plans)
	}
}

// CheckIndexModel fails t unless the index of typ, over params, holds
// exactly model's keys (id -> "param/value", the value key less its
// terminator), and Check finds nothing wrong.
func CheckIndexModel(t testing.TB, s *Bolt, typ string, params []string, model map[string]map[string]bool, when string) {
	t.Helper()
	ctx := context.Background()
	var want []string
	for id, keys := range model {
		for k := range keys {
			want = append(want, k+"/"+id)
		}
	}
	slices.Sort(want)
	var got []string
	err := s.View(ctx, func(tx Tx) error {
		for _, p := range params {
			err := tx.ScanIndex(ctx, typ, p, nil, nil, func(vk []byte, id string) bool {
				got = append(got, p+"/"+strings.TrimSuffix(string(vk), "\x00")+"/"+id)
				return true
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: index\n%v\nmodel\n%v", when, got, want)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// WriteRandomIndex sets, in one write transaction, the index entries of one
// to three of typ's resources r00 ... (ids of them): up to maxKeys each,
// of params and values v00 ... (values of them), and records them in model
// (as CheckIndexModel reads it).
func WriteRandomIndex(t testing.TB, s *Bolt, r *rand.Rand, typ string, ids int, params []string, values, maxKeys int, model map[string]map[string]bool) {
	t.Helper()
	err := s.Update(context.Background(), func(tx Tx) error {
		for range 1 + r.IntN(3) {
			id := fmt.Sprintf("r%02d", r.IntN(ids))
			keys := map[string]bool{}
			var es []IndexEntry
			for range r.IntN(maxKeys + 1) {
				p, v := params[r.IntN(len(params))], fmt.Sprintf("v%02d", r.IntN(values))
				keys[p+"/"+v] = true
				es = append(es, IndexEntry{Param: p, Key: []byte(v + "\x00")})
			}
			if err := tx.SetIndex(typ, id, es); err != nil {
				return err
			}
			model[id] = keys
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
