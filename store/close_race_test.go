package store_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"healthhub/store"
)

// TestCloseRacesWritersAndFolds: Close while writers keep the
// journal past its bound (folds and backpressure running); every writer
// must return (an error after Close) and no goroutine may be left.
func TestCloseRacesWritersAndFolds(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := store.Open(t.TempDir(), store.Options{IndexJournalMax: 40})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			o := object(t, body("Patient"))
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				err := s.Update(ctx, func(tx store.Tx) error {
					if _, err := tx.Put("Patient", id, o); err != nil {
						return err
					}
					es := make([]store.IndexEntry, 5)
					for k := range es {
						es[k] = store.IndexEntry{Param: "p", Key: []byte(fmt.Sprintf("%s-%d\x00", id, k))}
					}
					return tx.SetIndex("Patient", id, es)
				})
				if err != nil {
					return
				}
				writes.Add(1)
			}
		})
		wg.Go(func() {
			for {
				err := s.View(ctx, func(tx store.Tx) error {
					return tx.ScanIndex(ctx, "Patient", "p", nil, nil, func([]byte, string) bool { return true })
				})
				if err != nil {
					return
				}
				_ = s.Stats()
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("Close did not return in 10s\n%s", buf[:runtime.Stack(buf, true)])
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("writers did not return after Close\n%s", buf[:runtime.Stack(buf, true)])
	}
	t.Logf("%d writes", writes.Load())
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
