package fhir

import "testing"

// TestNumbersEqual: RFC 6902 4.6 compares numbers by value; the comparison
// reads digits and exponent, so an exponent of a million costs nothing
// (big.Rat expanded it: ~50 ms a comparison, which a PATCH of many test
// operations against a stored 1e999999 turned into minutes of CPU).
func TestNumbersEqual(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"72.50", "72.5", true},
		{"72.5", "7.25e1", true},
		{"7.25E+1", "72.50", true},
		{"0", "-0.0", true},
		{"0e5", "0", true},
		{"100", "1e2", true},
		{"1e999999", "10e999998", true},
		{"1e999999", "1e999998", false},
		{"-1", "1", false},
		{"0.1", "0.01", false},
		{"120", "12", false},
		{"1e99999999999999999999", "1e99999999999999999999", true}, // as written
		{"1e99999999999999999999", "1e99999999999999999998", false},
	} {
		if got := numbersEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("numbersEqual(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := numbersEqual(tt.b, tt.a); got != tt.want {
			t.Errorf("numbersEqual(%s, %s) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

// TestNumbersEqualZeroExponent: zero is zero whatever its exponent, also
// one past what an int64 holds.
func TestNumbersEqualZeroExponent(t *testing.T) {
	for _, tt := range []struct{ a, b string }{
		{"0e99999999999999999999", "0"},
		{"0.0e-99999999999999999999", "-0"},
	} {
		if !numbersEqual(tt.a, tt.b) {
			t.Errorf("numbersEqual(%s, %s) = false, want true", tt.a, tt.b)
		}
	}
}
