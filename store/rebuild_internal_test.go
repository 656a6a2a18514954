package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"healthhub/fhir"
)

// TestRebuildIndexesAfterDamage: a damaged rix value that an unfolded
// create's journal record names makes Open fail (replay cannot read the
// entries). Open with RebuildIndexes drops the indexes without reading
// them; the file is refused until IndexesRebuilt, and then opens and
// passes Check with the index built again.
func TestRebuildIndexesAfterDamage(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries := []IndexEntry{{"gender", []byte("female\x00")}}
	write := func(s *Bolt) {
		t.Helper()
		err := s.Update(ctx, func(tx Tx) error {
			o, err := fhir.ParseObject([]byte(`{"resourceType":"Patient","gender":"female"}`))
			if err != nil {
				return err
			}
			if _, err := tx.Put("Patient", "d1", o); err != nil {
				return err
			}
			return tx.SetIndex("Patient", "d1", entries)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	write(s)
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRix).Bucket([]byte("Patient")).Put([]byte("d1"), []byte{0xff}) // not an entry list
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(dir, Options{}); err == nil {
		s.Close()
		t.Fatal("open with a damaged rix value that replay needs: no error")
	}

	s, err = Open(dir, Options{RebuildIndexes: true})
	if err != nil {
		t.Fatalf("open to rebuild: %v", err)
	}
	var found int
	err = s.View(ctx, func(tx Tx) error {
		return tx.ScanIndex(ctx, "Patient", "gender", nil, nil, func([]byte, string) bool { found++; return true })
	})
	if err != nil || found != 0 {
		t.Errorf("index after the drop: %d entries, %v; want none", found, err)
	}
	write(s) // what reindex does: every resource's entries again
	s.Close()
	if s, err := Open(dir, Options{}); !errors.Is(err, ErrIndexesIncomplete) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open before IndexesRebuilt: %v, want ErrIndexesIncomplete", err)
	}
	if s, err = Open(dir, Options{RebuildIndexes: true}); err != nil {
		t.Fatal(err)
	}
	write(s)
	if err := s.IndexesRebuilt(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatalf("open after IndexesRebuilt: %v", err)
	}
	defer s.Close()
	found = 0
	err = s.View(ctx, func(tx Tx) error {
		return tx.ScanIndex(ctx, "Patient", "gender", nil, nil, func([]byte, string) bool { found++; return true })
	})
	if err != nil || found != 1 {
		t.Errorf("index after the rebuild: %d entries, %v; want 1", found, err)
	}
	if err := s.Check(ctx); err != nil {
		t.Error(err)
	}
}

// TestRebuildSkipsABrokenUpgrade: an index whose upgrade to blocks fails
// (here a nested bucket among a parameter's keys) makes Open fail, saying
// how to recover; Open with RebuildIndexes drops it, the upgrade's mark
// and work bucket with it, without reading it.
func TestRebuildSkipsABrokenUpgrade(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		tb, err := tx.Bucket(bucketIdx).CreateBucketIfNotExists([]byte("Patient"))
		if err != nil {
			return err
		}
		pb, err := tb.CreateBucket([]byte("gender"))
		if err != nil {
			return err
		}
		if _, err := pb.CreateBucket([]byte("a")); err != nil { // sorts first: a nil value
			return err
		}
		if err := pb.Put([]byte("female\x00d1\x02"), nil); err != nil {
			return err
		}
		// An upgrade part way: its work bucket and mark, as a crash leaves
		// them.
		up, err := tx.CreateBucket(bucketIdxUpgrade)
		if err != nil {
			return err
		}
		upTyp, err := up.CreateBucket([]byte("Patient"))
		if err != nil {
			return err
		}
		upParam, err := upTyp.CreateBucket([]byte("birthdate"))
		if err != nil {
			return err
		}
		if err := upParam.Put(blockEnd, []byte{blockFormat}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyIndexBlocksPending, []byte{1}); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(3))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "healthhub reindex") {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open with an index that does not upgrade: %v, want an error naming healthhub reindex", err)
	}
	s, err = Open(dir, Options{RebuildIndexes: true})
	if err != nil {
		t.Fatalf("open to rebuild: %v", err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyIndexBlocksPending) != nil || tx.Bucket(bucketIdxUpgrade) != nil {
			t.Error("the rebuild left the upgrade's mark or work bucket")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.IndexesRebuilt(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatalf("open after the rebuild: %v", err)
	}
	s.Close()
}
