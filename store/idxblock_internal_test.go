package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestApplyBlocks applies random batches of changes to one parameter's
// blocks and compares, after each, every key and a seek from random
// points with a plain set of the keys. The batches mix what the index
// sees: ids appended at the end of a value's range, inserts anywhere,
// removals, removals of keys that are not there, and batches that empty
// the bucket.
func TestApplyBlocks(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			db, err := bolt.Open(t.TempDir()+"/b.db", 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			model := map[string]bool{}
			next := 0 // ids count up, as the server's are time-ordered
			for round := range 40 {
				changes := map[string]bool{}
				for range r.IntN(400) {
					switch op := r.IntN(10); {
					case op < 6: // a new id for some value
						next++
						changes[string(indexKey(fmt.Appendf(nil, "v%03d\x00", r.IntN(50)), fmt.Sprintf("id%08d", next)))] = true
					case op < 8 && len(model) > 0: // remove a key the index has
						for k := range model {
							changes[k] = false
							break
						}
					default: // remove a key it does not have
						changes[string(indexKey([]byte("v999\x00"), fmt.Sprint(r.IntN(1000))))] = false
					}
				}
				if round%13 == 12 { // empty it
					for k := range model {
						changes[k] = false
					}
				}
				var batch []jentry
				for k, present := range changes {
					batch = append(batch, jentry{key: []byte(k), present: present})
					if present {
						model[k] = true
					} else {
						delete(model, k)
					}
				}
				slices.SortFunc(batch, func(a, b jentry) int { return bytes.Compare(a.key, b.key) })
				err := db.Update(func(tx *bolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists([]byte("p"))
					if err != nil {
						return err
					}
					var scratch jrun
					return applyBlocks(b, batch, &scratch)
				})
				if err != nil {
					t.Fatal(err)
				}
				checkAgainst(t, db, model, r)
			}
		})
	}
}

func checkAgainst(t *testing.T, db *bolt.DB, model map[string]bool, r *rand.Rand) {
	t.Helper()
	want := make([]string, 0, len(model))
	for k := range model {
		want = append(want, k)
	}
	slices.Sort(want)
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("p"))
		c := &checker{ctx: context.Background(), btx: tx}
		var got []string
		if err := c.checkBlocks(b, "T", "p", func(k []byte) { got = append(got, string(k)) }); err != nil {
			return err
		}
		if len(c.problems) > 0 {
			t.Fatalf("blocks: %v", c.problems)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("the blocks hold %d keys, the model %d", len(got), len(want))
		}
		for range 50 {
			from := indexKey(fmt.Appendf(nil, "v%03d\x00", r.IntN(52)), fmt.Sprintf("id%08d", r.IntN(20000)))
			i, _ := slices.BinarySearch(want, string(from))
			bc := blockCursor{c: b.Cursor()}
			k := bc.seek(from)
			if i == len(want) {
				if k != nil {
					t.Fatalf("seek(%q) = %q, want nothing", from, k)
				}
				continue
			}
			if string(k) != want[i] {
				t.Fatalf("seek(%q) = %q, want %q", from, k, want[i])
			}
			if k = bc.next(); i+1 < len(want) && string(k) != want[i+1] || i+1 == len(want) && k != nil {
				t.Fatalf("next after %q = %q", want[i], k)
			}
			if !blockHas(b, []byte(want[i])) || blockHas(b, append(from, 'x')) {
				t.Fatalf("blockHas disagrees with the model at %q", want[i])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzBlockIter: whatever bytes a block holds (a damaged file), decoding
// ends without a panic, and blocks that splitBlocks encodes decode to
// their keys.
func FuzzBlockIter(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c', 2, 1, 'd'})
	f.Add([]byte{0, 40, 'j'})
	f.Add([]byte{5, 1, 'x'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var it blockIter
		it.reset(b)
		var keys jrun
		var prev []byte
		for it.next() {
			if bytes.Compare(it.key, prev) > 0 {
				keys.add(jentry{key: it.key})
				prev = keys.key(keys.len() - 1)
			}
		}
		var got jrun
		for _, blk := range splitBlocks(&keys) {
			it.reset(blk.b)
			for first := true; it.next(); first = false {
				if first && !bytes.Equal(it.key, blk.first) {
					t.Fatalf("block keyed %q starts with %q", blk.first, it.key)
				}
				got.add(jentry{key: it.key})
			}
			if it.bad || len(blk.b) > blockSize && len(blk.b) > len(blk.first)+4 {
				t.Fatalf("block of %d bytes from %q: bad %v", len(blk.b), blk.first, it.bad)
			}
		}
		if !bytes.Equal(got.keys, keys.keys) || !slices.Equal(got.ends, keys.ends) {
			t.Fatalf("round trip of %d keys gave %d", keys.len(), got.len())
		}
	})
}
