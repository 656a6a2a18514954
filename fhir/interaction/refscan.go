package interaction

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// eachReference calls fn with the value of every member named "reference"
// in b (Reference.reference wherever it is nested: contained resources,
// extensions), and the span of its JSON string literal, quotes included.
// b must be valid JSON. It is a scan over the string literals that decodes
// nothing else, much cheaper than search-parameter extraction when only
// the references are wanted.
func eachReference(b []byte, fn func(start, end int, ref string)) {
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		end := stringEnd(b, i)
		if end < 0 {
			return
		}
		// A string followed by ':' is a member name.
		if bytes.Equal(b[i+1:end], []byte("reference")) {
			if j := skipSpace(b, end+1); j < len(b) && b[j] == ':' {
				if j = skipSpace(b, j+1); j < len(b) && b[j] == '"' {
					vend := stringEnd(b, j)
					if vend < 0 {
						return
					}
					if lit := b[j+1 : vend]; bytes.IndexByte(lit, '\\') < 0 && utf8.Valid(lit) {
						fn(j, vend+1, string(lit))
					} else if ref := ""; json.Unmarshal(b[j:vend+1], &ref) == nil {
						fn(j, vend+1, ref)
					}
					i = vend
					continue
				}
			}
		}
		i = end
	}
}

// stringEnd returns the index of the quote closing the string that opens
// at b[start], or -1.
func stringEnd(b []byte, start int) int {
	for k := start + 1; k < len(b); k++ {
		switch b[k] {
		case '\\':
			k++
		case '"':
			return k
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
