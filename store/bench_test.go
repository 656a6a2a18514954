package store_test

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"healthhub/fhir"
	"healthhub/store"
)

// benchResources is how many Patients the read benchmarks pick from.
const benchResources = 1000

// syntheaPatient is a typical Synthea Patient (US Core profile, narrative,
// extensions, identifiers, address with geolocation), about 3.5 kB.
func syntheaPatient(b *testing.B) []byte {
	b.Helper()
	body, err := os.ReadFile("../testdata/synthea-patient.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// benchStore opens a store holding benchResources Patients p0, p1 ...
// (versions versions each), written in one transaction. It is not checked
// at cleanup: benchmarks measure, tests check.
func benchStore(b *testing.B, versions int) (*store.Bolt, []byte) {
	b.Helper()
	s, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	body := syntheaPatient(b)
	o, err := fhir.ParseObject(body)
	if err != nil {
		b.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx store.Tx) error {
		for v := 0; v < versions; v++ {
			for i := range benchResources {
				if _, err := tx.Put("Patient", "p"+strconv.Itoa(i), o); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s, body
}

// BenchmarkRead: the current version of a random Patient, one View each.
func BenchmarkRead(b *testing.B) {
	s, _ := benchStore(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "p" + strconv.Itoa(rand.IntN(benchResources))
			err := s.View(ctx, func(tx store.Tx) error {
				_, err := tx.Current("Patient", id)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVRead: one past version of a random Patient.
func BenchmarkVRead(b *testing.B) {
	s, _ := benchStore(b, 3)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "p" + strconv.Itoa(rand.IntN(benchResources))
			v := uint64(1 + rand.IntN(3))
			err := s.View(ctx, func(tx store.Tx) error {
				_, err := tx.Version("Patient", id, v)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCreate: new Patients from concurrent writers (group commit: a
// writer waits for the batch's fsync). The parsed body is reused per
// goroutine; parsing and validation belong to the service layer.
func BenchmarkCreate(b *testing.B) {
	s, body := benchStore(b, 0)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(16) // writers spend their time waiting for the fsync
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		o, err := fhir.ParseObject(body)
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			id := "new" + strconv.FormatInt(next.Add(1), 10)
			err := s.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Put("Patient", id, o)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkUpdate: a new version of a random existing Patient, as the
// service layer does it (read the current version, then put), by one
// writer (every write waits for its own fsync) and by many.
func BenchmarkUpdate(b *testing.B) {
	update := func(s *store.Bolt, o *fhir.Object) error {
		id := "p" + strconv.Itoa(rand.IntN(benchResources))
		return s.Update(context.Background(), func(tx store.Tx) error {
			if _, err := tx.Current("Patient", id); err != nil {
				return err
			}
			_, err := tx.Put("Patient", id, o)
			return err
		})
	}
	b.Run("serial", func(b *testing.B) {
		s, body := benchStore(b, 1)
		o, err := fhir.ParseObject(body)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := update(s, o); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	})
	b.Run("parallel", func(b *testing.B) {
		s, body := benchStore(b, 1)
		b.SetParallelism(16)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			o, err := fhir.ParseObject(body)
			if err != nil {
				b.Error(err)
				return
			}
			for pb.Next() {
				if err := update(s, o); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	})
}

// BenchmarkHistory: one page of 10 entries of instance history (a Patient
// with 20 versions), type history and system history.
func BenchmarkHistory(b *testing.B) {
	s, body := benchStore(b, 1)
	o, err := fhir.ParseObject(body)
	if err != nil {
		b.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx store.Tx) error {
		for range 19 {
			if _, err := tx.Put("Patient", "p0", o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		q    store.HistoryQuery
	}{
		{"instance", store.HistoryQuery{Type: "Patient", ID: "p0", Count: 10}},
		{"type", store.HistoryQuery{Type: "Patient", Count: 10}},
		{"system", store.HistoryQuery{Count: 10}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				err := s.View(ctx, func(tx store.Tx) error {
					p, err := tx.History(ctx, bc.q)
					if err == nil && len(p.Entries) != 10 {
						b.Fatalf("got %d entries", len(p.Entries))
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIndexJournalFold: one chunk of a full index journal (an eighth
// of DefaultIndexJournalMax keys with random values, 10 per resource, as
// new resources) folded into index B+trees that already hold
// HEALTHHUB_BENCH_FOLD_BASE keys (default 1,000,000, random too: the
// worst case, keys spread over every leaf), as the background folds do:
// the block writes computed from a snapshot while writes go on
// (ms/plan), then applied in a write transaction, which every write
// waits for (ms/fold). It also reports the fold's page writes, and the
// fold done wholly in the write transaction (ms/unplanned-fold), as it
// is when a plan does not hold.
//
//	go test ./store -run '^$' -bench IndexJournalFold -benchtime 5x
func BenchmarkIndexJournalFold(b *testing.B) {
	base := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("HEALTHHUB_BENCH_FOLD_BASE")); err == nil && n >= 0 {
		base = n
	}
	const perResource = 10
	dir := b.TempDir()
	s, err := store.Open(dir, store.Options{IndexJournalMax: 1 << 40, InitialMmapSize: 8 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	next := 0
	// add indexes n more resources, perResource random keys each, in
	// transactions of 5,000 resources, through the journal.
	add := func(n int) {
		for n > 0 {
			chunk := min(n, 5000)
			err := s.Update(ctx, func(tx store.Tx) error {
				for i := range chunk {
					es := make([]store.IndexEntry, perResource)
					for k := range es {
						es[k] = store.IndexEntry{Param: "p" + strconv.Itoa(k%5), Key: []byte(strconv.FormatUint(r.Uint64(), 36) + "\x00")}
					}
					if err := tx.SetIndex("Observation", "o"+strconv.Itoa(next+i), es); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			next += chunk
			n -= chunk
		}
	}
	add(base / perResource)
	if err := s.FoldIndexJournal(ctx); err != nil {
		b.Fatal(err)
	}
	s.Close()
	// The same file with the default journal bound, filled to it.
	if s, err = store.Open(dir, store.Options{InitialMmapSize: 8 << 30}); err != nil {
		b.Fatal(err)
	}
	add(store.DefaultIndexJournalMax / perResource)
	b.ResetTimer()
	var (
		pages                    uint64
		planned, fold, unplanned time.Duration
	)
	for i := range b.N {
		b.StopTimer()
		add(store.DefaultIndexJournalMax / 8 / perResource) // what a chunk takes out
		before := s.Stats().PageWrites
		b.StartTimer()
		start := time.Now()
		if i%2 == 1 {
			// Every other chunk folded in its write transaction alone.
			if err := s.FoldIndexJournalChunk(ctx); err != nil {
				b.Fatal(err)
			}
			unplanned += time.Since(start)
			continue
		}
		apply, err := s.PrepareIndexJournalFold(ctx)
		if err != nil {
			b.Fatal(err)
		}
		planned += time.Since(start)
		start = time.Now()
		if err := apply(); err != nil {
			b.Fatal(err)
		}
		fold += time.Since(start)
		b.StopTimer()
		pages += s.Stats().PageWrites - before
		b.StartTimer()
	}
	if n := (b.N + 1) / 2; n > 0 {
		b.ReportMetric(float64(planned.Milliseconds())/float64(n), "ms/plan")
		b.ReportMetric(float64(fold.Milliseconds())/float64(n), "ms/fold")
		b.ReportMetric(float64(pages)/float64(n), "pagewrites/fold")
	}
	if n := b.N / 2; n > 0 {
		b.ReportMetric(float64(unplanned.Milliseconds())/float64(n), "ms/unplanned-fold")
	}
}
