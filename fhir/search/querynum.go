package search

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
)

// QueryNumber is a decimal written in a search value (number and quantity
// parameters). Text is kept exactly as written because FHIR search gives a
// number the precision it was written with: "100" means [99.5, 100.5) and
// "100.00" means [99.995, 100.005). Rat is its exact value.
type QueryNumber struct {
	Text string
	Rat  *big.Rat
}

// Limits that keep a hostile value from costing much: a FHIR decimal has at
// most 18 significant digits in practice, and an exponent beyond ±1000 would
// only make big.Rat allocate.
const (
	maxNumberLen      = 64
	maxNumberExponent = 1000
)

// ParseQueryNumber reads a search number: an optional '-', digits, an
// optional fraction and an optional exponent (-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?).
// A leading '+' is refused: in a URL it would have arrived as a space.
func ParseQueryNumber(s string) (QueryNumber, error) {
	if _, _, err := numberShape(s); err != nil {
		return QueryNumber{}, err
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return QueryNumber{}, fmt.Errorf("%q is not a decimal number", s)
	}
	return QueryNumber{Text: s, Rat: r}, nil
}

// numberShape checks the grammar and returns the number of digits after
// the decimal point and the exponent.
func numberShape(s string) (fraction, exponent int, err error) {
	bad := fmt.Errorf("%q is not a decimal number (digits, optional fraction and exponent, as in 5.4 or 1.5e-3)", s)
	if len(s) > maxNumberLen {
		return 0, 0, fmt.Errorf("number %.20q... is longer than %d characters", s, maxNumberLen)
	}
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return 0, 0, bad
	}
	if i < len(s) && s[i] == '.' {
		i++
		if fraction = digits(); fraction == 0 {
			return 0, 0, bad
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		start := i + 1
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, 0, bad
		}
		exponent, err = strconv.Atoi(s[start:i])
		if err != nil || exponent > maxNumberExponent || exponent < -maxNumberExponent {
			return 0, 0, errors.New("number exponent out of range")
		}
	}
	if i != len(s) {
		return 0, 0, bad
	}
	return fraction, exponent, nil
}

// String returns the number as written.
func (n QueryNumber) String() string { return n.Text }

// Range returns the interval [lo, hi) that the number covers at the
// precision it was written with: half a unit of its last written digit on
// each side. "100" is [99.5, 100.5), "100.00" is [99.995, 100.005), "2.0" is
// [1.95, 2.05) and "1e2" is [50, 150).
//
// R4's search page gives [95, 105) for "1e2", which contradicts its own "1
// significant figure" explanation; we follow the rule, as HAPI does
// (BigDecimal scale), not the example.
func (n QueryNumber) Range() (lo, hi *big.Rat) {
	fraction, exponent, err := numberShape(n.Text)
	if err != nil || n.Rat == nil {
		return nil, nil
	}
	// half = 5 * 10^(exponent - fraction - 1)
	e := exponent - fraction - 1
	half := new(big.Rat).SetInt64(5)
	pow := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(e, -e))), nil))
	if e >= 0 {
		half.Mul(half, pow)
	} else {
		half.Quo(half, pow)
	}
	return new(big.Rat).Sub(n.Rat, half), new(big.Rat).Add(n.Rat, half)
}
