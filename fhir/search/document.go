package search

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Document is a resource's JSON decoded for FHIRPath evaluation.
//
// It is a small read-only tree of its own rather than the map[string]any of
// encoding/json: a Synthea Patient decodes here in a few microseconds and a
// handful of allocations instead of ~85 µs and ~450 allocations, which is
// what keeps index maintenance cheap on every write. The tree keeps what
// json.Decoder with UseNumber keeps: numbers as their literal text (decimals
// stay exact), strings unescaped the same way (invalid UTF-8 and lone
// surrogates become U+FFFD), duplicate member names resolved last-wins. The
// differential fuzz test FuzzParseDocument holds it to encoding/json.
type Document struct {
	root node
}

// kind is the JSON kind of a node.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

// node is one JSON value. Object members carry their name in key.
type node struct {
	key  string
	kind kind
	str  string // string value, number literal, or "true"/"false"
	kids []node // object members or array elements, in document order
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// ParseDocument decodes a resource's JSON. The top level must be an object;
// anything after it other than white space is an error.
func ParseDocument(b []byte) (*Document, error) { return parseDocument(b, nil) }

// parseDocument decodes b, keeping only the object members that want
// accepts (all when want is nil). The others are still read and checked,
// so the same inputs fail, but cost no nodes and no allocations: Extract
// drops narrative, extensions, attachments and whatever else no search
// expression reaches.
func parseDocument(b []byte, want func(string) bool) (_ *Document, err error) {
	d := decoder{s: string(b), want: want}
	// The stack is scratch: reuse one. Finished containers move to the
	// slab and clear their part of it, so after a document read whole it
	// refers to nothing; after an error or a panic (in want) it may, and is
	// dropped. An outsized document's stack is not worth keeping either.
	if st, ok := stackPool.Get().(*[]node); ok {
		d.stack = (*st)[:0]
	}
	readWhole := false
	defer func() {
		if readWhole && cap(d.stack) <= 1024 {
			st := d.stack[:0]
			stackPool.Put(&st)
		}
	}()
	d.skipSpace()
	if d.pos >= len(d.s) || d.s[d.pos] != '{' {
		return nil, errors.New("search: resource JSON must be an object")
	}
	root, err := d.value()
	if err != nil {
		return nil, err
	}
	readWhole = true
	doc := &Document{root: root}
	d.skipSpace()
	if d.pos != len(d.s) {
		return nil, d.errorf("data after the top-level value")
	}
	return doc, nil
}

// ResourceType is the top-level resourceType, or "" when absent.
func (d *Document) ResourceType() string {
	if n := d.root.get("resourceType"); n != nil && n.kind == kindString {
		return n.str
	}
	return ""
}

// Root is the resource itself as a FHIRPath item.
func (d *Document) Root() Item { return Item{n: &d.root} }

// get returns the last member called name (last wins, as encoding/json).
func (n *node) get(name string) *node {
	if n == nil || n.kind != kindObject {
		return nil
	}
	for i := len(n.kids) - 1; i >= 0; i-- {
		if n.kids[i].key == name {
			return &n.kids[i]
		}
	}
	return nil
}

// getString is the string member called name, or "".
func (n *node) getString(name string) string {
	if m := n.get(name); m != nil && m.kind == kindString {
		return m.str
	}
	return ""
}

// fold calls fn(acc, m) for the member m called name, or for each element
// of it when it is an array (nulls skipped), threading acc through. fn is a
// plain function, not a closure, so nothing escapes to the heap.
func fold[T any](n *node, name string, acc T, fn func(T, *node) T) T {
	m := n.get(name)
	if m == nil {
		return acc
	}
	if m.kind != kindArray {
		if m.kind != kindNull {
			acc = fn(acc, m)
		}
		return acc
	}
	for i := range m.kids {
		if m.kids[i].kind != kindNull {
			acc = fn(acc, &m.kids[i])
		}
	}
	return acc
}

// appendJSON appends n as compact JSON.
func (n *node) appendJSON(b []byte) []byte {
	switch n.kind {
	case kindNull:
		return append(b, "null"...)
	case kindBool, kindNumber:
		return append(b, n.str...)
	case kindString:
		return appendQuoted(b, n.str)
	case kindArray:
		b = append(b, '[')
		for i := range n.kids {
			if i > 0 {
				b = append(b, ',')
			}
			b = n.kids[i].appendJSON(b)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i := range n.kids {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, n.kids[i].key)
			b = append(b, ':')
			b = n.kids[i].appendJSON(b)
		}
		return append(b, '}')
	}
}

// appendQuoted appends s as a JSON string (s is valid UTF-8 here).
func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

var stackPool sync.Pool // of *[]node, empty

type decoder struct {
	s       string
	pos     int
	depth   int
	want    func(key string) bool
	skip    int // > 0 while reading a value nobody wants: build nothing
	scratch []byte
	stack   []node // members of the containers being read
	slab    []node // storage handed out to finished containers
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("search: invalid JSON at offset %d: %s", d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// alloc hands out n nodes from a chunked slab: a few allocations a document
// instead of one per container. Earlier chunks stay valid when a new one
// starts.
func (d *decoder) alloc(n int) []node {
	if n == 0 {
		return nil
	}
	if cap(d.slab)-len(d.slab) < n {
		size := max(n, len(d.s)/24, 32)
		d.slab = make([]node, 0, size)
	}
	l := len(d.slab)
	d.slab = d.slab[:l+n]
	return d.slab[l : l+n : l+n]
}

// value reads one JSON value. Nodes travel by value: a pointer to a local
// would escape through the recursion and cost an allocation per value.
func (d *decoder) value() (node, error) {
	d.skipSpace()
	if d.pos >= len(d.s) {
		return node{}, d.errorf("unexpected end of input")
	}
	switch c := d.s[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, err := d.string()
		return node{kind: kindString, str: s}, err
	case c == 't':
		return d.literal("true", kindBool)
	case c == 'f':
		return d.literal("false", kindBool)
	case c == 'n':
		return d.literal("null", kindNull)
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	default:
		return node{}, d.errorf("unexpected character %q", c)
	}
}

func (d *decoder) literal(word string, k kind) (node, error) {
	if !strings.HasPrefix(d.s[d.pos:], word) {
		return node{}, d.errorf("invalid literal")
	}
	d.pos += len(word)
	if k == kindBool {
		return node{kind: k, str: word}, nil
	}
	return node{kind: k}, nil
}

func (d *decoder) number() (node, error) {
	start := d.pos
	s := d.s
	i := d.pos
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		d.pos = i
		return node{}, d.errorf("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			d.pos = i
			return node{}, d.errorf("invalid number: digits expected after the point")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			d.pos = i
			return node{}, d.errorf("invalid number: digits expected in the exponent")
		}
	}
	d.pos = i
	return node{kind: kindNumber, str: s[start:i]}, nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return d.errorf("nested too deeply")
	}
	return nil
}

func (d *decoder) object() (node, error) {
	if err := d.enter(); err != nil {
		return node{}, err
	}
	d.pos++ // {
	base := len(d.stack)
	d.skipSpace()
	if d.pos < len(d.s) && d.s[d.pos] == '}' {
		d.pos++
	} else {
		for {
			d.skipSpace()
			if d.pos >= len(d.s) || d.s[d.pos] != '"' {
				return node{}, d.errorf("expected a member name")
			}
			key, err := d.string()
			if err != nil {
				return node{}, err
			}
			d.skipSpace()
			if d.pos >= len(d.s) || d.s[d.pos] != ':' {
				return node{}, d.errorf("expected ':' after a member name")
			}
			d.pos++
			if d.skip > 0 || (d.want != nil && !d.want(key)) {
				d.skip++
				_, err := d.value()
				d.skip--
				if err != nil {
					return node{}, err
				}
			} else {
				v, err := d.value()
				if err != nil {
					return node{}, err
				}
				v.key = key
				d.stack = append(d.stack, v)
			}
			d.skipSpace()
			if d.pos >= len(d.s) {
				return node{}, d.errorf("unexpected end of input in an object")
			}
			if d.s[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.s[d.pos] == '}' {
				d.pos++
				break
			}
			return node{}, d.errorf("expected ',' or '}' in an object")
		}
	}
	out := node{kind: kindObject, kids: d.alloc(len(d.stack) - base)}
	copy(out.kids, d.stack[base:])
	clear(d.stack[base:])
	d.stack = d.stack[:base]
	d.depth--
	return out, nil
}

func (d *decoder) array() (node, error) {
	if err := d.enter(); err != nil {
		return node{}, err
	}
	d.pos++ // [
	base := len(d.stack)
	d.skipSpace()
	if d.pos < len(d.s) && d.s[d.pos] == ']' {
		d.pos++
	} else {
		for {
			v, err := d.value()
			if err != nil {
				return node{}, err
			}
			if d.skip == 0 {
				d.stack = append(d.stack, v)
			}
			d.skipSpace()
			if d.pos >= len(d.s) {
				return node{}, d.errorf("unexpected end of input in an array")
			}
			if d.s[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.s[d.pos] == ']' {
				d.pos++
				break
			}
			return node{}, d.errorf("expected ',' or ']' in an array")
		}
	}
	out := node{kind: kindArray, kids: d.alloc(len(d.stack) - base)}
	copy(out.kids, d.stack[base:])
	clear(d.stack[base:])
	d.stack = d.stack[:base]
	d.depth--
	return out, nil
}

// string reads a JSON string at d.pos (on the opening quote). Plain strings
// are substrings of the input, so they cost no allocation.
func (d *decoder) string() (string, error) {
	s := d.s
	i := d.pos + 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			out := s[d.pos+1 : i]
			d.pos = i + 1
			return out, nil
		case c == '\\':
			return d.stringSlow()
		case c < 0x20:
			d.pos = i
			return "", d.errorf("control character in a string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return d.stringSlow()
			}
			i += size
		default:
			i++
		}
	}
	d.pos = i
	return "", d.errorf("unterminated string")
}

// stringSlow unescapes a string with escapes or invalid UTF-8, as
// encoding/json does.
func (d *decoder) stringSlow() (string, error) {
	s := d.s
	i := d.pos + 1
	b := make([]byte, 0, 64)
	if d.skip > 0 { // only checking: reuse one buffer
		b = d.scratch[:0]
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			d.pos = i + 1
			if d.skip > 0 {
				d.scratch = b
				return "", nil
			}
			return string(b), nil
		case c < 0x20:
			d.pos = i
			return "", d.errorf("control character in a string")
		case c == '\\':
			if i+1 >= len(s) {
				d.pos = i
				return "", d.errorf("unterminated string")
			}
			switch e := s[i+1]; e {
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
				r, ok := hex4(s, i+2)
				if !ok {
					d.pos = i
					return "", d.errorf("invalid \\u escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2, ok := hex4(s, i+2); ok && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				d.pos = i
				return "", d.errorf("invalid escape \\%c", e)
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	d.pos = i
	return "", d.errorf("unterminated string")
}

// hex4 reads four hex digits at s[i:].
func hex4(s string, i int) (rune, bool) {
	if i < 0 || i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
