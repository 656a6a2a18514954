package validate

import "testing"

// TestCompareDecimal: rng-2 compares JSON numbers exactly as written, never
// through float64, and gives up (ok false: the Range is accepted) only on
// what is not a decimal, or has an exponent beyond fhir.ParseDecimal's
// bound (10,000).
func TestCompareDecimal(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
		ok   bool
	}{
		{"1", "2", -1, true},
		{"2", "10", -1, true},
		{"10", "2", 1, true},
		{"1.0", "1.00", 0, true},
		{"100", "1E2", 0, true},
		{"1e+2", "100.0", 0, true},
		{"0.01", "1e-2", 0, true},
		{"0", "-0", 0, true},
		{"0.000", "0e5", 0, true},
		{"-1", "0", -1, true},
		{"0", "-0.0001", 1, true},
		{"-2", "-1.5", -1, true},
		{"-1.5", "-2", 1, true},
		{"0.19", "0.2", -1, true},
		{"0.30000000000000001", "0.3", 1, true},
		{"12345678901234567890.2", "12345678901234567890.1", 1, true},
		{"1e400", "1e399", 1, true},
		{"1e-400", "0", 1, true},
		{"007", "7", 0, true},
		{"1e0000000000000000002", "100", 0, true}, // leading zeros of an exponent do not count
		{"1e9999999999999999", "1", 0, false},
		{"1.", "1", 0, false},
		{".5", "1", 0, false},
		{"1e", "1", 0, false},
		{"abc", "1", 0, false},
		{"", "1", 0, false},
		{"1", "1x", 0, false},
	} {
		got, ok := compareDecimal(c.a, c.b)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("compareDecimal(%q, %q) = %d, %v; want %d, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
		if ok {
			if back, _ := compareDecimal(c.b, c.a); back != -got {
				t.Errorf("compareDecimal(%q, %q) = %d, not the opposite of %d", c.b, c.a, back, got)
			}
		}
	}
}
