package validate

import (
	"cmp"
	"encoding/json"
	"strconv"
	"strings"
)

// The R4 invariants of error severity ("Rule" in the specification) on
// datatypes and resources that the schema cannot express, beyond ele-1,
// ext-1, per-1, ref-1, dom-2..5 and bdl-*, which are checked elsewhere. Each is checked
// by walker.object wherever its definition appears: a datatype inside any
// resource, a resource at the top, contained or in a Bundle entry.
//
// FHIRPath's exists() is true for a primitive that has only extensions
// ("_start": {"extension": [...]}), and such an element has no value to
// compare. Each check below refuses only what the expression refuses
// whichever way that is read: an element counts as absent when neither x
// nor _x is there, and as present, for a rule that forbids it, only when x
// has a value. In doubt, a body is accepted.

// present: x has a value or extensions (FHIRPath x.exists()).
func present(obj map[string]any, key string) bool {
	if _, ok := obj[key]; ok {
		return true
	}
	_, ok := obj["_"+key]
	return ok
}

// quantity checks qty-3 on a Quantity or one of its R4 profiles (Age,
// Count, Distance, Duration; SimpleQuantity and MoneyQuantity are plain
// Quantity in the JSON schema): code.empty() or system.exists().
func (w *walker) quantity(obj map[string]any, typ string) {
	code, ok := obj["code"].(string)
	if !ok || present(obj, "system") {
		return
	}
	w.add("invariant", "", "%s has the unit code %q but no system: a coded unit needs the system that defines it (qty-3)", typ, code)
}

// rangeOrder checks rng-2 on a Range: low.empty() or high.empty() or
// (low <= high). The values are compared exactly, as decimals, and only when
// both are plain numbers in the same unit: the same code and system, or no
// code on either and the same unit text and system (no units at all
// included). Quantities in different units are not converted, and a
// comparator (which a Range's SimpleQuantity may not carry) makes the
// comparison moot: both are accepted.
func (w *walker) rangeOrder(obj map[string]any) {
	low, _ := obj["low"].(map[string]any)
	high, _ := obj["high"].(map[string]any)
	if low == nil || high == nil {
		return
	}
	lv, ok1 := low["value"].(json.Number)
	hv, ok2 := high["value"].(json.Number)
	if !ok1 || !ok2 || present(low, "comparator") || present(high, "comparator") || !sameUnit(low, high) {
		return
	}
	if c, ok := compareDecimal(string(lv), string(hv)); ok && c > 0 {
		w.add("invariant", "", "low %s is above high %s: a Range's low is not above its high (rng-2)", lv, hv)
	}
}

// sameUnit reports whether two Quantities are certainly in the same unit.
func sameUnit(a, b map[string]any) bool {
	str := func(m map[string]any, k string) (string, bool) {
		if _, ok := m["_"+k]; ok {
			return "", false // extensions could say anything about it
		}
		v, present := m[k]
		s, isString := v.(string)
		return s, !present || isString
	}
	as, ok1 := str(a, "system")
	bs, ok2 := str(b, "system")
	ac, ok3 := str(a, "code")
	bc, ok4 := str(b, "code")
	au, ok5 := str(a, "unit")
	bu, ok6 := str(b, "unit")
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || as != bs || ac != bc {
		return false
	}
	return ac != "" || au == bu
}

// decimal is a JSON number as written, normalised: value = 0.digits ×
// 10^exp, digits without leading or trailing zeros ("" for zero).
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// parseDecimal reads a JSON number exactly. ok is false for anything else,
// and for an exponent of more than 15 digits, which no real value needs.
func parseDecimal(s string) (d decimal, ok bool) {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	i := 0
	if i < len(s) && s[i] == '-' {
		d.neg = true
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[start:i]
	if intPart == "" {
		return d, false
	}
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if frac = s[start:i]; frac == "" {
			return d, false
		}
	}
	var e int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		negExp := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			negExp = s[i] == '-'
			i++
		}
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		digits := strings.TrimLeft(s[start:i], "0")
		if i == start || len(digits) > 15 {
			return d, false
		}
		if digits != "" {
			e, _ = strconv.ParseInt(digits, 10, 64)
		}
		if negExp {
			e = -e
		}
	}
	if i != len(s) {
		return d, false
	}
	mant := intPart + frac
	d.exp = int64(len(intPart)) + e
	trimmed := strings.TrimLeft(mant, "0")
	d.exp -= int64(len(mant) - len(trimmed))
	d.digits = strings.TrimRight(trimmed, "0")
	if d.digits == "" {
		d = decimal{} // zero, -0 included
	}
	return d, true
}

// compareDecimal compares two JSON numbers exactly (-1, 0, +1); ok is false
// when either cannot be read (see parseDecimal).
func compareDecimal(a, b string) (int, bool) {
	x, ok1 := parseDecimal(a)
	y, ok2 := parseDecimal(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	sign := func(d decimal) int {
		switch {
		case d.digits == "":
			return 0
		case d.neg:
			return -1
		}
		return 1
	}
	sx, sy := sign(x), sign(y)
	if sx != sy || sx == 0 {
		return cmp.Compare(sx, sy), true
	}
	// Same sign, both non-zero: compare the magnitudes. With no leading
	// zeros, a larger exp is a larger magnitude; at equal exp the digit
	// strings compare as written (no trailing zeros: equal values, equal
	// strings; "19" < "2" as 0.19 < 0.2).
	c := cmp.Compare(x.exp, y.exp)
	if c == 0 {
		c = strings.Compare(x.digits, y.digits)
	}
	return c * sx, true
}

// contactPoint checks cpt-2: value.empty() or system.exists().
func (w *walker) contactPoint(obj map[string]any) {
	if _, ok := obj["value"]; ok && !present(obj, "system") {
		w.add("invariant", "", "a ContactPoint with a value needs a system (phone, email ...) (cpt-2)")
	}
}
