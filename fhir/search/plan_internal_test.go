package search

import (
	"bytes"
	"slices"
	"testing"
)

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{nil, nil},
		{[]byte{0xFF, 0xFF}, nil},
		{[]byte("v"), []byte("w")},
		{[]byte{'a', 0xFF}, []byte("b")},
		{[]byte{'a', 0x00, 0x01}, []byte{'a', 0x00, 0x02}},
		{[]byte{'a', 0xFE, 0xFF, 0xFF}, []byte{'a', 0xFF}},
	} {
		got := prefixEnd(tc.in)
		if !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("prefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
	in := []byte("ab")
	_ = prefixEnd(in)
	if string(in) != "ab" {
		t.Errorf("prefixEnd changed its argument: %q", in)
	}
}

func TestMergeScans(t *testing.T) {
	s := func(p, from, to string) Scan {
		sc := Scan{Param: p, From: []byte(from)}
		if to != "~" {
			sc.To = []byte(to)
		}
		return sc
	}
	got := mergeScans([]Scan{
		s("b", "a", "c"),
		s("a", "m", "~"), // unbounded: swallows what starts after m
		s("a", "c", "e"),
		s("a", "a", "c"), // touches [c, e)
		s("a", "n", "p"),
		s("a", "g", "h"),
		s("b", "b", "d"),
		s("a", "l", "m"), // touches [m, ~)
	})
	want := []Scan{s("a", "a", "e"), s("a", "g", "h"), s("a", "l", "~"), s("b", "a", "d")}
	if len(got) != len(want) {
		t.Fatalf("mergeScans: %d scans %v, want %v", len(got), got, want)
	}
	for i := range want {
		if got[i].Param != want[i].Param || !bytes.Equal(got[i].From, want[i].From) || !bytes.Equal(got[i].To, want[i].To) || (got[i].To == nil) != (want[i].To == nil) {
			t.Errorf("scan %d: %s [%q, %q), want %s [%q, %q)", i, got[i].Param, got[i].From, got[i].To, want[i].Param, want[i].From, want[i].To)
		}
	}
}

// TestMergeScansPoint: a scan stays a point (one value key) only when what
// merges into it is the same point.
func TestMergeScansPoint(t *testing.T) {
	point := func(k string) Scan {
		return Scan{Param: "code", From: []byte(k), To: prefixEnd([]byte(k)), Point: true}
	}
	for _, tt := range []struct {
		name  string
		scans []Scan
		want  []bool
	}{
		{"one", []Scan{point("ca")}, []bool{true}},
		{"the same value twice", []Scan{point("ca"), point("ca")}, []bool{true}},
		{"two values apart", []Scan{point("ca"), point("cc")}, []bool{true, true}},
		{"a value inside a range", []Scan{{Param: "code", From: []byte("c"), To: []byte("d")}, point("ca")}, []bool{false}},
		{"adjacent values", []Scan{point("ca"), {Param: "code", From: prefixEnd([]byte("ca")), To: []byte("cz"), Point: true}}, []bool{false}},
	} {
		got := mergeScans(tt.scans)
		var points []bool
		for _, s := range got {
			points = append(points, s.Point)
		}
		if !slices.Equal(points, tt.want) {
			t.Errorf("%s: points %v, want %v", tt.name, points, tt.want)
		}
	}
}
