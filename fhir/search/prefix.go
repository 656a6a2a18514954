package search

import "fmt"

// Prefix is the comparator written before a number, date or quantity value
// (R4 search, "Prefixes"). A value written without one gets PrefixEq.
type Prefix string

const (
	PrefixEq Prefix = "eq" // the ranges overlap fully: target within the search value's range
	PrefixNe Prefix = "ne" // not eq
	PrefixGt Prefix = "gt" // target greater than the value
	PrefixLt Prefix = "lt" // target less than the value
	PrefixGe Prefix = "ge" // greater or equal
	PrefixLe Prefix = "le" // less or equal
	PrefixSa Prefix = "sa" // target starts after the value's range ends
	PrefixEb Prefix = "eb" // target ends before the value's range starts
	PrefixAp Prefix = "ap" // approximately (the server chooses: see the executor)
)

var knownPrefixes = map[Prefix]bool{
	PrefixEq: true, PrefixNe: true, PrefixGt: true, PrefixLt: true, PrefixGe: true,
	PrefixLe: true, PrefixSa: true, PrefixEb: true, PrefixAp: true,
}

// cutPrefix splits a prefix off s. Only number, date and quantity values
// take one: R4 defines no prefixes for the other types, where "ge..." is
// just text. Two leading lowercase letters are read as a prefix and must be
// one of the nine; no number or date starts with a letter otherwise, so
// "xx1980" is a bad prefix, not a bad date.
func cutPrefix(s string) (Prefix, string, error) {
	if len(s) >= 2 && isPrefixLetter(s[0]) && isPrefixLetter(s[1]) {
		p := Prefix(s[:2])
		if !knownPrefixes[p] {
			return "", "", fmt.Errorf("unknown prefix %q (one of eq, ne, gt, lt, ge, le, sa, eb, ap)", s[:2])
		}
		return p, s[2:], nil
	}
	return PrefixEq, s, nil
}

func isPrefixLetter(c byte) bool { return c >= 'a' && c <= 'z' }

// text is the prefix as written in a canonical value: nothing for eq.
func (p Prefix) text() string {
	if p == PrefixEq {
		return ""
	}
	return string(p)
}
