package search

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"healthhub/fhir"
)

// NormalizeString is the form string search compares: lower case, accents
// and other marks removed (Unicode compatibility decomposition, then
// nonspacing marks dropped), and the Latin letters that do not decompose
// folded (ß -> ss, ø -> o, ł -> l, æ -> ae ...), as is Greek's final
// sigma (ς -> σ). "Müller", "MULLER" and
// "muller" all become "muller". A query value goes through the same
// function before a prefix match.
func NormalizeString(s string) string {
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return normalizeUnicode(s)
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func normalizeUnicode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range norm.NFKD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		r = unicode.ToLower(r)
		if f, ok := letterFold[r]; ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// letterFold folds the lowercase letters that have no decomposition but
// match another letter or letters in search.
var letterFold = map[rune]string{
	'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'đ': "d", 'ð': "d", 'ł': "l",
	'ħ': "h", 'ı': "i", 'þ': "th", 'ŋ': "n", 'ŧ': "t", 'ĸ': "k", 'ƒ': "f",
	// Greek's word-final sigma is σ where it ends a word; ToLower turns
	// a capital Σ into σ wherever it stands, so ΟΔΥΣΣΕΥΣ must meet
	// Οδυσσεύς on σ.
	'ς': "σ",
}

// Decimal is fhir.Decimal: search values, number and quantity keys and
// FHIRPath comparisons use it.
type Decimal = fhir.Decimal
