package fhir

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Decimal is an exact decimal number as written in FHIR JSON (or a search
// value): the text is kept, and comparison and keys use its value, so 1.0,
// 1 and 1.00 are equal and order numerically with every other decimal.
type Decimal struct {
	text   string // as written
	neg    bool
	digits string // significant digits, no leading or trailing zeros; "" for zero
	exp    int32  // the value is 0.digits × 10^exp
}

// maxExponent bounds the decimal exponent ParseDecimal accepts; FHIR
// decimals stay far inside it, and big.Rat conversions stay small.
const maxExponent = 10000

// ParseDecimal reads a decimal: an optional sign, digits, an optional
// fraction and an optional exponent ([+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?).
func ParseDecimal(s string) (Decimal, error) {
	bad := func(why string) (Decimal, error) {
		return Decimal{}, fmt.Errorf("invalid decimal %q: %s", s, why)
	}
	d := Decimal{text: s}
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		d.neg = s[i] == '-'
		i++
	}
	digitsFrom := func(j int) int {
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j
	}
	j := digitsFrom(i)
	intPart := s[i:j]
	if intPart == "" {
		return bad("expected digits")
	}
	i = j
	frac := ""
	if i < len(s) && s[i] == '.' {
		j = digitsFrom(i + 1)
		frac = s[i+1 : j]
		if frac == "" {
			return bad("expected digits after the point")
		}
		i = j
	}
	exp := int64(0)
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		esign := int64(1)
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			if s[i] == '-' {
				esign = -1
			}
			i++
		}
		j = digitsFrom(i)
		if j == i {
			return bad("expected digits in the exponent")
		}
		for _, c := range s[i:j] {
			exp = exp*10 + int64(c-'0')
			if exp > maxExponent {
				return bad("exponent out of range")
			}
		}
		exp *= esign
		i = j
	}
	if i != len(s) {
		return bad("unexpected " + strconv.Quote(s[i:]))
	}
	// Significant digits of intPart+frac, without building the
	// concatenation unless they span the point.
	lead := len(intPart) - len(strings.TrimLeft(intPart, "0"))
	var sig string
	if lead == len(intPart) { // integer part is zero
		t := strings.TrimLeft(frac, "0")
		exp -= int64(len(frac) - len(t))
		sig = strings.TrimRight(t, "0")
	} else {
		exp += int64(len(intPart) - lead)
		if strings.TrimRight(frac, "0") == "" {
			sig = strings.TrimRight(intPart[lead:], "0")
		} else {
			sig = intPart[lead:] + strings.TrimRight(frac, "0")
		}
	}
	if sig == "" {
		return Decimal{text: s}, nil // zero, whatever its sign
	}
	if exp > maxExponent || exp < -maxExponent {
		return bad("exponent out of range")
	}
	d.digits, d.exp = sig, int32(exp)
	return d, nil
}

// MustDecimal is ParseDecimal for constants; it panics on a bad one.
func MustDecimal(s string) Decimal {
	d, err := ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

// String is the decimal as written.
func (d Decimal) String() string { return d.text }

// Sign is -1, 0 or +1.
func (d Decimal) Sign() int {
	switch {
	case d.digits == "":
		return 0
	case d.neg:
		return -1
	}
	return 1
}

// Cmp compares by value: -1 if d < o, 0 if equal, +1 if d > o.
func (d Decimal) Cmp(o Decimal) int {
	if ds, os := d.Sign(), o.Sign(); ds != os || ds == 0 {
		switch {
		case ds < os:
			return -1
		case ds > os:
			return 1
		}
		return 0
	}
	c := 0
	switch {
	case d.exp < o.exp:
		c = -1
	case d.exp > o.exp:
		c = 1
	default:
		c = strings.Compare(d.digits, o.digits)
	}
	if d.neg {
		c = -c
	}
	return c
}

// Float64 is the nearest float64 (±Inf beyond its range).
func (d Decimal) Float64() float64 {
	f, err := strconv.ParseFloat(d.text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0
	}
	return f
}

// Rat is the exact value.
func (d Decimal) Rat() *big.Rat {
	r := new(big.Rat)
	if d.digits == "" {
		return r
	}
	m, _ := new(big.Int).SetString(d.digits, 10)
	r.SetInt(m)
	shift := int64(d.exp) - int64(len(d.digits))
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(max(shift, -shift)), nil)
	if shift >= 0 {
		r.Mul(r, new(big.Rat).SetInt(p))
	} else {
		r.Quo(r, new(big.Rat).SetInt(p))
	}
	if d.neg {
		r.Neg(r)
	}
	return r
}

// Key is the decimal's index key: byte order is numeric order.
func (d Decimal) Key() []byte { return d.AppendKey(nil) }

// AppendKey appends the order-preserving encoding: a sign byte (0x01
// negative, 0x02 zero, 0x03 positive), then for non-zero values the
// exponent (4 bytes, big-endian, sign bit flipped) and the significant
// digits ending in 0x00; for negative values exponent and digits are
// complemented and the end is 0xFF, so larger magnitudes sort first.
func (d Decimal) AppendKey(b []byte) []byte {
	switch d.Sign() {
	case 0:
		return append(b, 0x02)
	case 1:
		b = binary.BigEndian.AppendUint32(append(b, 0x03), uint32(d.exp)^(1<<31))
		return append(append(b, d.digits...), 0x00)
	}
	b = binary.BigEndian.AppendUint32(append(b, 0x01), ^(uint32(d.exp) ^ (1 << 31)))
	for i := 0; i < len(d.digits); i++ {
		b = append(b, ^d.digits[i])
	}
	return append(b, 0xFF)
}

// DecimalFromRat is the decimal equal to r, for turning range bounds
// computed as big.Rat into keys. It fails when r has no finite decimal
// expansion (its denominator has a prime factor other than 2 and 5).
func DecimalFromRat(r *big.Rat) (Decimal, error) {
	den := new(big.Int).Set(r.Denom())
	places := 0
	mod := new(big.Int)
	for _, f := range []int64{2, 5} {
		n, q, bf := 0, new(big.Int), big.NewInt(f)
		for {
			q.QuoRem(den, bf, mod)
			if mod.Sign() != 0 {
				break
			}
			den.Set(q)
			n++
		}
		places = max(places, n)
	}
	if den.Cmp(big.NewInt(1)) != 0 {
		return Decimal{}, fmt.Errorf("%s has no finite decimal expansion", r.RatString())
	}
	if places > maxExponent {
		return Decimal{}, fmt.Errorf("%s: too many decimal places", r.RatString())
	}
	return ParseDecimal(r.FloatString(places))
}
