package interaction

import (
	"testing"
	"time"
)

func TestPageCacheBounds(t *testing.T) {
	ids := func(n int) []string { return make([]string, n) }
	now := time.Unix(0, 0)
	c := newPageCache(3, 10, time.Minute)
	c.now = func() time.Time { return now }

	a := c.put("Patient", ids(4))
	b := c.put("Patient", ids(4))
	if _, _, ok := c.get(a+".0", "Patient"); !ok {
		t.Fatal("a fresh snapshot is not found")
	}
	d := c.put("Patient", ids(4)) // 12 ids > 10: the oldest goes
	if _, _, ok := c.get(a+".0", "Patient"); ok {
		t.Error("the id budget did not evict the oldest snapshot")
	}
	for _, tok := range []string{b, d} {
		if _, _, ok := c.get(tok+".4", "Patient"); !ok {
			t.Errorf("snapshot %s evicted too early", tok)
		}
	}
	e := c.put("Patient", ids(1))
	f := c.put("Patient", ids(1)) // 4 snapshots > 3: the oldest goes
	if _, _, ok := c.get(b+".0", "Patient"); ok {
		t.Error("the count bound did not evict the oldest snapshot")
	}
	tests := []struct {
		cursor, typ string
		ok          bool
	}{
		{e + ".0", "Patient", true},
		{e + ".1", "Patient", true},
		{e + ".2", "Patient", false}, // past the end
		{e + ".-1", "Patient", false},
		{e, "Patient", false},
		{e + ".0", "Observation", false}, // another type's cursor
		{"nope.0", "Patient", false},
	}
	for _, tt := range tests {
		if _, _, ok := c.get(tt.cursor, tt.typ); ok != tt.ok {
			t.Errorf("get(%q, %s): ok %v, want %v", tt.cursor, tt.typ, ok, tt.ok)
		}
	}
	now = now.Add(2 * time.Minute)
	if _, _, ok := c.get(f+".0", "Patient"); ok {
		t.Error("an expired snapshot is still served")
	}
}
