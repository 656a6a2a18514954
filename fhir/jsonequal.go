package fhir

import (
	"encoding/json"
	"strconv"
	"strings"
)

// JSONEqual is RFC 6902 4.6's equality of two decoded JSON values (numbers
// as json.Number): same type; strings, booleans and null by value, numbers
// by numeric value, arrays item by item, objects by their members whatever
// their order. JSON Patch's test operation and FHIRPath's equality of
// elements (obs-7's Codings) use it.
func JSONEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		return ok && numbersEqual(string(a), string(b))
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !JSONEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !JSONEqual(va, vb) {
				return false
			}
		}
		return true
	default: // string, bool, nil
		return a == b
	}
}

// numbersEqual compares two JSON numbers by value without expanding them
// (big.Rat would spend ~50 ms on 1e999999, a value a client may store and
// then test against as often as a body holds test operations): each is
// read as sign, significant digits and exponent.
func numbersEqual(a, b string) bool {
	if a == b {
		return true
	}
	sa, da, ea, oka := decimalParts(a)
	sb, db, eb, okb := decimalParts(b)
	return oka && okb && sa == sb && da == db && ea == eb
}

// decimalParts reads a JSON number as sign, digits without leading or
// trailing zeros, and the exponent of the last digit; zero is "0" with
// sign and exponent 0.
func decimalParts(n string) (neg bool, digits string, exp int64, ok bool) {
	if strings.HasPrefix(n, "-") {
		neg, n = true, n[1:]
	}
	mant, e, hasExp := strings.Cut(strings.ToLower(n), "e")
	if strings.Trim(mant, "0.") == "" {
		return false, "0", 0, true // zero, whatever its exponent
	}
	if hasExp {
		var err error
		if exp, err = strconv.ParseInt(e, 10, 64); err != nil || exp > 1<<40 || exp < -(1<<40) {
			return false, "", 0, false
		}
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits = intPart + frac
	exp -= int64(len(frac))
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	digits = strings.TrimLeft(trimmed, "0")
	if digits == "" {
		return false, "0", 0, true
	}
	return neg, digits, exp, true
}
