package validate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of a body. Real resources nest a few dozen
// levels (Questionnaire items); the bound keeps a hostile body of a million
// '[' from costing a deep recursion.
const maxDepth = 256

// WellFormed reports why data is not one JSON value as strict as a stored
// body must be (decode), for JSON the server reads but does not store (a
// JSON Patch).
func WellFormed(data []byte) error {
	_, err := decode(data)
	return err
}

// decode parses one JSON value into the shapes jsonschema expects
// (map[string]any, []any, string, json.Number, bool, nil).
//
// It is stricter than encoding/json, because what passes here is stored byte
// for byte and read by other parsers: a duplicate member name (where parsers
// disagree on which value wins), invalid UTF-8 and lone surrogate escapes
// (which encoding/json silently turns into U+FFFD) and trailing data are
// errors. Numbers stay json.Number, so a decimal keeps its exact spelling.
func decode(data []byte) (any, error) {
	// One copy of the whole body as a string: strings without escapes (all
	// member names, nearly all values) are then substrings of it, which
	// costs no allocation each.
	d := decoder{data: data, text: string(data)}
	d.skipSpace()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.errorf("data after the end of the JSON value")
	}
	return v, nil
}

type decoder struct {
	data []byte
	text string // data as a string
	pos  int
	buf  []byte // scratch for strings with escapes
}

// errorf reports a syntax error at the current position as line and column,
// which is what a client needs to find it in the body it sent.
func (d *decoder) errorf(format string, args ...any) error {
	line, col := 1, 1
	for i := 0; i < d.pos && i < len(d.data); i++ {
		if d.data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Errorf("malformed JSON at line %d, column %d: %s", line, col, fmt.Sprintf(format, args...))
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.errorf("nested deeper than %d levels", maxDepth)
	}
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		return d.string()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == 0xEF && d.pos == 0 && len(d.data) >= 3 && d.data[1] == 0xBB && d.data[2] == 0xBF:
		return nil, d.errorf("the body starts with a UTF-8 byte order mark; send JSON without one")
	default:
		return nil, d.errorf("unexpected character %q", rune(c))
	}
}

func (d *decoder) literal(word string) error {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return d.errorf("invalid literal, expected %s", word)
	}
	d.pos += len(word)
	return nil
}

func (d *decoder) object(depth int) (any, error) {
	d.pos++ // '{'
	m := make(map[string]any)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return m, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.errorf("expected a member name in double quotes")
		}
		start := d.pos
		key, err := d.string()
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			d.pos = start
			return nil, d.errorf("duplicate member name %s", strconv.Quote(key))
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errorf("expected ':' after a member name")
		}
		d.pos++
		d.skipSpace()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[key] = v
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input in an object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return m, nil
		default:
			return nil, d.errorf("expected ',' or '}' in an object")
		}
	}
}

func (d *decoder) array(depth int) (any, error) {
	d.pos++ // '['
	a := make([]any, 0, 4)
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return a, nil
	}
	for {
		d.skipSpace()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input in an array")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return a, nil
		default:
			return nil, d.errorf("expected ',' or ']' in an array")
		}
	}
}

func (d *decoder) number() (any, error) {
	start := d.pos
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		return nil, d.errorf("invalid number")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return nil, d.errorf("invalid number: no digits after the decimal point")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, d.errorf("invalid number: no digits in the exponent")
		}
	}
	return json.Number(d.text[start:d.pos]), nil
}

func (d *decoder) string() (string, error) {
	d.pos++ // opening quote
	start := d.pos
	// Fast path: no escapes, plain ASCII or valid UTF-8.
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			s := d.text[start:d.pos]
			d.pos++
			return s, nil
		case c == '\\':
			return d.slowString(start)
		case c < 0x20:
			return "", d.errorf("control character %#x in a string; escape it", c)
		case c < utf8.RuneSelf:
			d.pos++
		default:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", d.errorf("invalid UTF-8 in a string")
			}
			d.pos += size
		}
	}
	return "", d.errorf("unexpected end of input in a string")
}

func (d *decoder) slowString(start int) (string, error) {
	b := append(d.buf[:0], d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			d.buf = b
			return string(b), nil
		case c == '\\':
			if d.pos+1 >= len(d.data) {
				return "", d.errorf("unexpected end of input in a string")
			}
			e := d.data[d.pos+1]
			d.pos += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", d.errorf("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					// A high surrogate must be followed by an escaped low one.
					if d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
						d.pos += 2
						r2, ok := d.hex4()
						if ok {
							if rr := utf16.DecodeRune(r, r2); rr != utf8.RuneError {
								b = utf8.AppendRune(b, rr)
								continue
							}
						}
					}
					return "", d.errorf("unpaired UTF-16 surrogate in a \\u escape")
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", d.errorf("invalid escape \\%c", e)
			}
		case c < 0x20:
			return "", d.errorf("control character %#x in a string; escape it", c)
		case c < utf8.RuneSelf:
			b = append(b, c)
			d.pos++
		default:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", d.errorf("invalid UTF-8 in a string")
			}
			b = append(b, d.data[d.pos:d.pos+size]...)
			d.pos += size
		}
	}
	return "", d.errorf("unexpected end of input in a string")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.data)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}
