package store_test

import (
	"context"
	"strings"
	"testing"

	"healthhub/store"
)

// TestIndexScans: entries come back in value key, then id, order (ids of
// different lengths included), SetIndex replaces a resource's entries, and
// ScanIndexAfter resumes exactly after an entry.
func TestIndexScans(t *testing.T) {
	s := openStore(t, store.Options{})
	ctx := context.Background()
	set := func(id string, keys ...string) {
		t.Helper()
		put(t, s, "Patient", id)
		var es []store.IndexEntry
		for _, k := range keys {
			es = append(es, store.IndexEntry{Param: "p", Key: []byte(k)})
		}
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.SetIndex("Patient", id, es) }); err != nil {
			t.Fatal(err)
		}
	}
	set("b", "v1\x00", "v2\x00")
	set("ab", "v1\x00")
	set("a", "v1\x00")
	set("abc", "v1\x00", "v3\x00")
	set("c", "v9\x00")
	set("c", "v2\x00") // replaces v9
	set("d", "v1\x00", "v8\x00")
	set("d", "v8\x00", "v9\x00") // keeps v8, drops v1, adds v9

	scan := func(fn func(tx store.Tx, visit func([]byte, string) bool) error) string {
		t.Helper()
		var got []string
		err := s.View(ctx, func(tx store.Tx) error {
			return fn(tx, func(vk []byte, id string) bool {
				got = append(got, strings.TrimSuffix(string(vk), "\x00")+"/"+id)
				return true
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, " ")
	}
	tests := []struct {
		name string
		fn   func(tx store.Tx, visit func([]byte, string) bool) error
		want string
	}{
		{"all", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndex(ctx, "Patient", "p", nil, nil, v)
		}, "v1/a v1/ab v1/abc v1/b v2/b v2/c v3/abc v8/d v9/d"},
		{"one value", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndex(ctx, "Patient", "p", []byte("v2\x00"), []byte("v2\x01"), v)
		}, "v2/b v2/c"},
		{"after a short id", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndexAfter(ctx, "Patient", "p", []byte("v1\x00"), "a", []byte("v1\x01"), v)
		}, "v1/ab v1/abc v1/b"},
		{"after the last of a value", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndexAfter(ctx, "Patient", "p", []byte("v1\x00"), "b", nil, v)
		}, "v2/b v2/c v3/abc v8/d v9/d"},
		{"after an entry that is gone", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndexAfter(ctx, "Patient", "p", []byte("v9\x00"), "c", nil, v)
		}, "v9/d"},
		{"after an absent id, between two", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndexAfter(ctx, "Patient", "p", []byte("v1\x00"), "aa", nil, v)
		}, "v1/ab v1/abc v1/b v2/b v2/c v3/abc v8/d v9/d"},
		{"unknown parameter", func(tx store.Tx, v func([]byte, string) bool) error {
			return tx.ScanIndex(ctx, "Patient", "q", nil, nil, v)
		}, ""},
	}
	for _, tt := range tests {
		if got := scan(tt.fn); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	// An empty set of entries removes all of a resource's entries.
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.SetIndex("Patient", "abc", nil) }); err != nil {
		t.Fatal(err)
	}
	got := scan(tests[0].fn)
	if want := "v1/a v1/ab v1/b v2/b v2/c v8/d v9/d"; got != want {
		t.Errorf("after removing abc: got %q, want %q", got, want)
	}
}
