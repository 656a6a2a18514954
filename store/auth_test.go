package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"healthhub/store"
)

func openAuth(t *testing.T, dir string) *store.Bolt {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAuthClients(t *testing.T) {
	ctx := context.Background()
	st := openAuth(t, t.TempDir())
	defer st.Close()
	if _, err := st.Client(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("client of an empty store: %v", err)
	}
	if err := st.DeleteClient(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete absent: %v", err)
	}
	for _, id := range []string{"b", "a"} {
		if err := st.PutClient(ctx, id, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	_ = st.Clients(ctx, func(id string, rec []byte) error { ids = append(ids, id+"="+string(rec)); return nil })
	if len(ids) != 2 || ids[0] != `a={"id":"a"}` {
		t.Fatalf("clients: %v", ids)
	}
	if err := st.DeleteClient(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if rec, err := st.Client(ctx, "b"); err != nil || string(rec) != `{"id":"b"}` {
		t.Fatalf("client b: %s %v", rec, err)
	}
}

func TestAuthSigningKeys(t *testing.T) {
	ctx := context.Background()
	st := openAuth(t, t.TempDir())
	defer st.Close()
	_ = st.PutSigningKey(ctx, "k1", []byte("one"))
	_ = st.PutSigningKey(ctx, "k2", []byte("two"))
	_ = st.DeleteSigningKey(ctx, "k1")
	_ = st.DeleteSigningKey(ctx, "absent")
	var got []string
	_ = st.SigningKeys(ctx, func(kid string, rec []byte) error { got = append(got, kid+"="+string(rec)); return nil })
	if len(got) != 1 || got[0] != "k2=two" {
		t.Fatalf("keys: %v", got)
	}
}

func TestUseJTI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openAuth(t, dir)
	now := time.Now()
	exp := now.Add(5 * time.Minute)
	steps := []struct {
		iss, jti string
		at       time.Time
		fresh    bool
	}{
		{"c1", "j", now, true},
		{"c1", "j", now.Add(time.Minute), false}, // replay
		{"c2", "j", now, true},                   // another issuer's jti
		{"c1", "j2", now, true},
		{"c1", "j", exp.Add(time.Second), true}, // after expiry the id may come back (the assertion itself is expired by then)
	}
	for i, s := range steps {
		fresh, err := st.UseJTI(ctx, s.iss, s.jti, exp, s.at)
		if err != nil || fresh != s.fresh {
			t.Fatalf("step %d %s/%s: fresh %v %v, want %v", i, s.iss, s.jti, fresh, err, s.fresh)
		}
	}
	st.Close()
	st = openAuth(t, dir) // survives a restart
	defer st.Close()
	if fresh, err := st.UseJTI(ctx, "c1", "j2", exp, now.Add(time.Minute)); err != nil || fresh {
		t.Fatalf("after restart: fresh %v %v", fresh, err)
	}
}

// Concurrent uses of one jti: exactly one is fresh, also when group commit
// reruns a batch.
func TestUseJTIConcurrent(t *testing.T) {
	ctx := context.Background()
	st := openAuth(t, t.TempDir())
	defer st.Close()
	now := time.Now()
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := st.UseJTI(ctx, "c", "same", now.Add(time.Minute), now)
			if err != nil {
				t.Error(err)
			}
			if ok {
				fresh.Add(1)
			}
		}()
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("%d uses were fresh, want 1", fresh.Load())
	}
}

// Expired entries are swept as new ones come; none blocks after expiry.
func TestUseJTIPurges(t *testing.T) {
	ctx := context.Background()
	st := openAuth(t, t.TempDir())
	defer st.Close()
	now := time.Now()
	for i := range 200 {
		if _, err := st.UseJTI(ctx, "c", string(rune('a'+i%26))+time.Duration(i).String(), now.Add(time.Second), now); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(time.Hour)
	for i := range 200 {
		if fresh, err := st.UseJTI(ctx, "c", "late"+time.Duration(i).String(), later.Add(time.Minute), later); err != nil || !fresh {
			t.Fatal(fresh, err)
		}
	}
	// Old ids expired long ago (and were swept): a reuse is fresh again.
	if fresh, _ := st.UseJTI(ctx, "c", "a0s", later.Add(time.Minute), later); !fresh {
		t.Error("an expired jti still blocks")
	}
}
