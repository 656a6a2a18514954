package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"healthhub/store"
)

// TestCompact: the compacted file is smaller by the pages that were free,
// and holds what the original held: versions, history, and the counters
// writes go on from (the change log's sequence, the clock).
func TestCompact(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{Now: newClock(t0, 1e6).Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		put(t, s, "Patient", "p"+strconv.Itoa(i%10))
	}
	if _, err := del(t, s, "Patient", "p3"); err != nil {
		t.Fatal(err)
	}
	history := func(s *store.Bolt) []string {
		var names []string
		if err := s.View(context.Background(), func(tx store.Tx) error {
			p, err := tx.History(context.Background(), store.HistoryQuery{Count: 1000})
			names = entryNames(p.Entries)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return names
	}
	want := history(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Free pages, as dropped indexes leave them: a bucket of 8 MB, deleted.
	path := filepath.Join(dir, store.FileName)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("scratch"))
		for i := 0; err == nil && i < 2048; i++ {
			err = b.Put([]byte(strconv.Itoa(i)), bytes.Repeat([]byte{'x'}, 4000))
		}
		return err
	})
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("scratch")) })
	}
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	before, after, err := store.Compact(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("the compacted file's permissions: %v %v, want the original's, 0640", info.Mode(), err)
	}
	if after >= before-8<<20 {
		t.Errorf("compacted from %d to %d bytes: want 8 MB less at least", before, after)
	}
	s = openStoreAt(t, dir, store.Options{Now: newClock(t0.Add(-1e9), 1e6).Now})
	if got := history(s); !slices.Equal(got, want) {
		t.Errorf("history after compaction:\n got %q\nwant %q", got, want)
	}
	// The log goes on from its sequence, and time never goes backwards
	// (the clock given now is behind the last write's).
	r := put(t, s, "Patient", "p0")
	got := history(s)
	if got[0] != "Patient/p0/6" || len(got) != len(want)+1 {
		t.Errorf("after a write: %q, want Patient/p0/6 on top of %d entries", got[:min(3, len(got))], len(want))
	}
	if err := s.View(context.Background(), func(tx store.Tx) error {
		prev, err := tx.Version("Patient", "p0", 5)
		if err == nil && r.LastUpdated.Before(prev.LastUpdated) {
			t.Errorf("a write after compaction at %v, before the last one at %v", r.LastUpdated, prev.LastUpdated)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCompactNoStore: a directory without a store is an error, and is
// left without one.
func TestCompactNoStore(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := store.Compact(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("compact a directory without a store: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("compact left a file behind: %v", err)
	}
}

// TestCompactInUse: a store another handle holds is not compacted.
func TestCompactInUse(t *testing.T) {
	dir := t.TempDir()
	openStoreAt(t, dir, store.Options{})
	if _, _, err := store.Compact(dir); !errors.Is(err, store.ErrLocked) {
		t.Errorf("compact a store in use: %v, want ErrLocked", err)
	}
}

// TestOpenWaitingWhileCompacted: a server that starts while Compact holds
// the file waits for the lock on the file it opened; Compact then puts
// its copy in that file's place and lets go. The server must serve the
// file in place, not the replaced one, whose writes no one would see
// again.
func TestOpenWaitingWhileCompacted(t *testing.T) {
	dir := closedStoreWithPatient(t)
	path := filepath.Join(dir, store.FileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".compact", raw, 0o600); err != nil { // Compact's copy
		t.Fatal(err)
	}
	holder, err := bolt.Open(path, 0o600, nil) // Compact's lock on the original
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan *store.Bolt, 1)
	go func() {
		s, err := store.Open(dir, store.Options{LockTimeout: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		opened <- s
	}()
	time.Sleep(300 * time.Millisecond) // Open is waiting for the lock
	if err := os.Rename(path+".compact", path); err != nil {
		t.Fatal(err)
	}
	holder.Close()
	s := <-opened
	if s == nil {
		t.FailNow()
	}
	put(t, s, "Patient", "b")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, dir, store.Options{})
	if err := s.View(context.Background(), func(tx store.Tx) error {
		_, err := tx.Current("Patient", "b")
		return err
	}); err != nil {
		t.Errorf("Patient/b, written by the store opened while the file was replaced: %v", err)
	}
}

// TestOpenRemovesKilledCompactionCopy: a compaction killed part way
// leaves its copy, as large as the store, beside it. The next Open, which
// holds the lock no running compaction could share, removes it.
func TestOpenRemovesKilledCompactionCopy(t *testing.T) {
	dir := closedStoreWithPatient(t)
	leftover := filepath.Join(dir, store.FileName+".compact")
	if err := os.WriteFile(leftover, []byte("part of a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	openStoreAt(t, dir, store.Options{})
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after Open: %v, want it removed", leftover, err)
	}
}
