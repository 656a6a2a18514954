package search_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"healthhub/fhir"
	"healthhub/fhir/search"
)

func TestNormalizeString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"smith", "smith"},
		{"SMITH", "smith"},
		{"Müller", "muller"},
		{"MÜLLER", "muller"},
		{"Mu\u0308ller", "muller"}, // already decomposed
		{"Łódź", "lodz"},
		{"Straße", "strasse"},
		{"Øresund Ærø", "oresund aero"},
		{"Ἀθῆναι", "αθηναι"},
		{"Οδυσσεύς", "οδυσσευσ"}, // final sigma
		{"ΟΔΥΣΣΕΥΣ", "οδυσσευσ"},
		{"Nguyễn", "nguyen"},
		{"ﬁnn", "finn"}, // compatibility ligature
		{"O'Brien-Smith 2nd", "o'brien-smith 2nd"},
	}
	for _, tt := range tests {
		if got := search.NormalizeString(tt.in); got != tt.want {
			t.Errorf("NormalizeString(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// keysAscending checks that keys of values listed in ascending order are
// strictly ascending.
func keysAscending[T any](t *testing.T, name string, vals []T, key func(T) []byte) {
	t.Helper()
	for i := 1; i < len(vals); i++ {
		if a, b := key(vals[i-1]), key(vals[i]); bytes.Compare(a, b) >= 0 {
			t.Errorf("%s: key(%v) = %x is not below key(%v) = %x", name, vals[i-1], a, vals[i], b)
		}
	}
}

func TestKeyOrder(t *testing.T) {
	strs := []string{"", "\x00", "\x00\x00", "\x00a", "a", "a\x00", "a\x00b", "ab", "b", "\xff"}
	keysAscending(t, "strings", strs, func(s string) []byte { return search.AppendKeyString(nil, s) })
	keysAscending(t, "strings with a suffix", strs, func(s string) []byte { return append(search.AppendKeyString(nil, s), 0xFF) })
	for _, s := range strs {
		for _, more := range []string{"", "\x00", "x"} {
			if !bytes.HasPrefix(search.AppendKeyString(nil, s+more), search.AppendKeyPrefix(nil, s)) {
				t.Errorf("AppendKeyPrefix(%q) is not a prefix of AppendKeyString(%q)", s, s+more)
			}
		}
	}

	times := []time.Time{search.DateMin, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1677, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999999999), time.Unix(0, 0), time.Unix(0, 1), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), search.DateMax}
	keysAscending(t, "times", times, func(tm time.Time) []byte { return search.AppendKeyTime(nil, tm) })
}

func TestValueKeys(t *testing.T) {
	forms := func(keys [][]byte) string {
		var b []byte
		for _, k := range keys {
			b = append(b, k[0])
		}
		return string(b)
	}
	tests := []struct {
		name  string
		v     search.Value
		forms string
	}{
		{"token", search.TokenValue{System: "s", Code: "c", Display: "D"}, "vct"},
		{"token without system", tokenV("", "c"), "vc"},
		{"token of a system", tokenV("s", ""), "v"},
		{"token text only", search.TokenValue{Display: "x"}, "t"},
		{"identifier with a type", search.TokenValue{System: "s", Code: "1", TypeSystem: "t", TypeCode: "MR"}, "vco"},
		{"string", stringV("Ab"), "v"},
		{"date", dateV("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"), "vz"},
		{"local reference", refV("Patient", "p"), "v"},
		{"absolute reference", search.ReferenceValue{URL: "http://x/Patient/p", ResourceType: "Patient", ID: "p"}, "u"},
		{"reference with identifier", search.ReferenceValue{ResourceType: "Patient", ID: "p", Identifier: tokenV("s", "1")}, "vij"},
		{"quantity", quantityV("1", "u", "mg", "milligram"), "vsnn"},
		{"quantity, unit = code", quantityV("1", "u", "mg", "mg"), "vsn"},
		{"bare quantity", quantityV("1", "", "", ""), "v"},
		{"number", search.NumberValue{Value: fhir.MustDecimal("2")}, "v"},
		{"uri", search.URIValue{URI: "http://x"}, "v"},
		{"composite token quantity", compositeV(search.TokenValue{System: "s", Code: "c", Display: "D"}, quantityV("1", "u", "mg", "")), "vv"}, // (system|code, code) x number: units are not keyed
	}
	for _, tt := range tests {
		keys := tt.v.Keys()
		if got := forms(keys); got != tt.forms {
			t.Errorf("%s: key forms %q, want %q", tt.name, got, tt.forms)
		}
		if !bytes.Equal(keys[0][1:], tt.v.Key()) && tt.v.Type() != search.Composite && tt.v.Type() != search.Token {
			t.Errorf("%s: Keys()[0] %x is not form + Key() %x", tt.name, keys[0], tt.v.Key())
		}
	}
	// The composite keys: each pairs one token form with one quantity form.
	c := compositeV(tokenV("s", "c"), quantityV("5", "u", "mg", "")).Keys()
	want := [][]byte{
		concat([]byte("v"), tokenV("s", "c").Keys()[0], quantityV("5", "u", "mg", "").Keys()[0]),
		concat([]byte("v"), tokenV("s", "c").Keys()[1], quantityV("5", "u", "mg", "").Keys()[0]),
	}
	if !slices.ContainsFunc(c, func(k []byte) bool { return bytes.Equal(k, want[0]) }) ||
		!slices.ContainsFunc(c, func(k []byte) bool { return bytes.Equal(k, want[1]) }) {
		t.Errorf("composite keys %q lack %q", c, want)
	}
	// Date keys: FormValue orders by start, FormEnd by end.
	d := dateV("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
	if k := d.Keys(); !bytes.Equal(k[0][1:13], search.AppendKeyTime(nil, d.Start)) || !bytes.Equal(k[1][1:13], search.AppendKeyTime(nil, d.End)) {
		t.Errorf("date keys %x", k)
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParseReference(t *testing.T) {
	tests := []struct {
		in   string
		want search.ReferenceValue
	}{
		{"Patient/123", refV("Patient", "123")},
		{"Patient/a.b-C/_history/2", search.ReferenceValue{ResourceType: "Patient", ID: "a.b-C", Version: "2"}},
		{"http://x.org/fhir/Observation/o1", search.ReferenceValue{ResourceType: "Observation", ID: "o1", URL: "http://x.org/fhir/Observation/o1"}},
		{"http://x.org/fhir/Observation/o1/_history/9", search.ReferenceValue{ResourceType: "Observation", ID: "o1", Version: "9", URL: "http://x.org/fhir/Observation/o1"}},
		{"http://hl7.org/fhir/StructureDefinition/bp|4.0.1", search.ReferenceValue{ResourceType: "StructureDefinition", ID: "bp", Version: "4.0.1", URL: "http://hl7.org/fhir/StructureDefinition/bp"}},
		{"http://example.org/vs", search.ReferenceValue{URL: "http://example.org/vs"}},
		{"urn:uuid:53fefa32", search.ReferenceValue{URL: "urn:uuid:53fefa32"}},
		{"#p1", search.ReferenceValue{}},
		{"", search.ReferenceValue{}},
		{"Patient", search.ReferenceValue{}},
		{"patient/1", search.ReferenceValue{}},
		{"Patient/", search.ReferenceValue{}},
		{"Patient?identifier=x|1", search.ReferenceValue{}},
		{"Patient/1/_history/", search.ReferenceValue{}},
		{"Patient/" + strings.Repeat("a", 65), search.ReferenceValue{}},
	}
	for _, tt := range tests {
		if got := search.ParseReference(tt.in); got != tt.want {
			t.Errorf("ParseReference(%q): got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestDateValueIsTheParsedRange(t *testing.T) {
	r, err := fhir.ParseDateTime("2024-02")
	if err != nil {
		t.Fatal(err)
	}
	v := search.DateValue{DateRange: r}
	if !v.Contains(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)) || v.Contains(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("2024-02 covers %v", v.DateRange)
	}
}
