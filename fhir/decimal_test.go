package fhir_test

import (
	"bytes"
	"math/big"
	"testing"

	"healthhub/fhir"
)

func TestParseDecimal(t *testing.T) {
	valid := []struct {
		in    string
		sign  int
		equal string // another spelling of the same value
	}{
		{"0", 0, "-0.000"},
		{"1", 1, "1.000"},
		{"1.0", 1, "+1"},
		{"-1.50", -1, "-1.5"},
		{"0.0012", 1, "1.2e-3"},
		{"1200", 1, "1.2E3"},
		{"100.5", 1, "1005e-1"},
		{"007", 1, "7"},
		{"-2.5e1", -1, "-25"},
		{"120.50", 1, "120.5"},
	}
	for _, tt := range valid {
		d, err := fhir.ParseDecimal(tt.in)
		if err != nil {
			t.Errorf("ParseDecimal(%q): %v", tt.in, err)
			continue
		}
		if d.String() != tt.in || d.Sign() != tt.sign {
			t.Errorf("ParseDecimal(%q): got %q sign %d, want %q sign %d", tt.in, d.String(), d.Sign(), tt.in, tt.sign)
		}
		e := fhir.MustDecimal(tt.equal)
		if d.Cmp(e) != 0 || !bytes.Equal(d.Key(), e.Key()) {
			t.Errorf("%s and %s: Cmp %d, keys %x %x; want equal", tt.in, tt.equal, d.Cmp(e), d.Key(), e.Key())
		}
		want, _ := new(big.Rat).SetString(tt.in)
		if d.Rat().Cmp(want) != 0 {
			t.Errorf("%s: Rat %s, want %s", tt.in, d.Rat().RatString(), want.RatString())
		}
	}
	for _, in := range []string{"", "-", "1.", ".5", "1e", "1e+", "0x10", "1,5", "1 ", "NaN", "Inf", "1e10001", "1e99999999999999999999"} {
		if d, err := fhir.ParseDecimal(in); err == nil {
			t.Errorf("ParseDecimal(%q): got %v, want an error", in, d)
		}
	}
	if f := fhir.MustDecimal("-2.5e1").Float64(); f != -25 {
		t.Errorf("Float64: got %v", f)
	}
}

func TestDecimalFromRat(t *testing.T) {
	for _, s := range []string{"199/2", "-1/8", "0", "3", "1/1000000"} {
		r, _ := new(big.Rat).SetString(s)
		d, err := fhir.DecimalFromRat(r)
		if err != nil || d.Rat().Cmp(r) != 0 {
			t.Errorf("DecimalFromRat(%s): got %v, %v", s, d, err)
		}
	}
	if _, err := fhir.DecimalFromRat(big.NewRat(1, 3)); err == nil {
		t.Error("DecimalFromRat(1/3): no error")
	}
}

// TestDecimalKeyOrder: keys of decimals listed in ascending order are
// strictly ascending, and a decimal's key is never a prefix of a larger
// one's, so a suffix (a resource id, in an index key) cannot reorder them.
func TestDecimalKeyOrder(t *testing.T) {
	decimals := []string{"-1e300", "-1000", "-999.5", "-100", "-10.5", "-10", "-9", "-1.01", "-1.001", "-1", "-0.5", "-0.123", "-0.12",
		"-0.0001", "0", "0.0001", "0.12", "0.123", "0.5", "1", "1.001", "1.01", "9", "10", "10.5", "100", "999.5", "1000", "1e300"}
	for i := 1; i < len(decimals); i++ {
		a, b := fhir.MustDecimal(decimals[i-1]).Key(), fhir.MustDecimal(decimals[i]).Key()
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("key(%s) = %x is not below key(%s) = %x", decimals[i-1], a, decimals[i], b)
		}
		if bytes.Compare(append(a, 0xFF, 0xFF), b) >= 0 {
			t.Errorf("key(%s) with a suffix is not below key(%s)", decimals[i-1], decimals[i])
		}
	}
}

// For two decimals a < b, Key(a) < Key(b); equal decimals have equal keys.
func FuzzDecimalKeyOrder(f *testing.F) {
	for _, p := range [][2]string{
		{"1", "2"}, {"-1", "-2"}, {"0.12", "0.123"}, {"-0.12", "-0.123"}, {"10", "9.99"}, {"-10", "-9.99"},
		{"0", "-0"}, {"1e3", "1000.0"}, {"1e-3", "0.001"}, {"-5e2", "5e-2"}, {"105", "1.05e2"}, {"0.0", "0.00001"},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		da, err1 := fhir.ParseDecimal(a)
		db, err2 := fhir.ParseDecimal(b)
		if err1 != nil || err2 != nil || len(a) > 60 || len(b) > 60 {
			return
		}
		ra, ok1 := new(big.Rat).SetString(a)
		rb, ok2 := new(big.Rat).SetString(b)
		if !ok1 || !ok2 {
			t.Fatalf("big.Rat rejects %q or %q, ParseDecimal accepts both", a, b)
		}
		want := ra.Cmp(rb)
		if got := bytes.Compare(da.Key(), db.Key()); got != want {
			t.Errorf("%s vs %s: keys compare %d, values %d (%x, %x)", a, b, got, want, da.Key(), db.Key())
		}
		if got := da.Cmp(db); got != want {
			t.Errorf("%s vs %s: Cmp %d, want %d", a, b, got, want)
		}
		if da.Rat().Cmp(ra) != 0 {
			t.Errorf("%s: Rat %s", a, da.Rat().RatString())
		}
	})
}
