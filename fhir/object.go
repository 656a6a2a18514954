package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Object is a JSON object kept as its members' raw bytes, in the order the
// client sent them. It lets the server change a few members (id, meta) and
// leave every other byte of the record alone.
type Object struct {
	members []member
}

type member struct {
	key   string
	value json.RawMessage
}

// ParseObject reads a JSON object. The values stay raw (compacted). It fails
// on malformed JSON, on anything but an object, on duplicate member names and
// on trailing data.
//
// json.Compact checks the syntax (and rejects trailing data); the members
// are then split off the compacted bytes by a scan that only needs to know
// strings and nesting. That is several times cheaper than json.Decoder
// tokens, and every write (and every imported line) goes through here.
func ParseObject(data []byte) (*Object, error) {
	var compact bytes.Buffer
	compact.Grow(len(data))
	if err := json.Compact(&compact, data); err != nil {
		// Compact's errors carry no usable offset; Unmarshal's do.
		if uerr := json.Unmarshal(data, new(json.RawMessage)); uerr != nil {
			err = uerr
		}
		return nil, syntaxError(data, err)
	}
	b := compact.Bytes()
	if len(b) == 0 {
		return nil, syntaxError(data, io.ErrUnexpectedEOF)
	}
	if b[0] != '{' {
		return nil, errors.New("the body is not a JSON object")
	}
	o := &Object{}
	seen := make(map[string]bool)
	// b is valid, compact JSON: '{' (key ':' value (',' key ':' value)*)? '}'.
	for i := 1; b[i] != '}'; {
		kend := stringEnd(b, i)
		key, err := memberName(b[i : kend+1])
		if err != nil {
			return nil, syntaxError(data, err)
		}
		if seen[key] {
			return nil, errors.New("duplicate JSON member " + strconv.Quote(key))
		}
		seen[key] = true
		vstart := kend + 2 // past the ':'
		vend := valueEnd(b, vstart)
		// Capped, so that appending to one value cannot overwrite the next.
		o.members = append(o.members, member{key, json.RawMessage(b[vstart:vend:vend])})
		i = vend
		if b[i] == ',' {
			i++
		}
	}
	return o, nil
}

// memberName decodes a quoted member name; names without escapes (nearly
// all) are taken as they are.
func memberName(quoted []byte) (string, error) {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), nil
	}
	var s string
	err := json.Unmarshal(quoted, &s)
	return s, err
}

// stringEnd returns the index of the quote closing the string that opens at
// b[start] (b valid JSON).
func stringEnd(b []byte, start int) int {
	for k := start + 1; k < len(b); k++ {
		switch b[k] {
		case '\\':
			k++
		case '"':
			return k
		}
	}
	return len(b) - 1
}

// valueEnd returns the index just after the value that starts at b[start]
// (b valid, compact JSON).
func valueEnd(b []byte, start int) int {
	depth := 0
	for k := start; k < len(b); k++ {
		switch b[k] {
		case '"':
			k = stringEnd(b, k)
			if depth == 0 {
				return k + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return k // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return k + 1
			}
		case ',':
			if depth == 0 {
				return k
			}
		}
	}
	return len(b)
}

// syntaxError names the line and column of a JSON syntax error, so the
// client can find it; the offset is into the original body.
func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := 1, 1
		for i := int64(0); i < se.Offset-1 && i < int64(len(data)); i++ {
			if data[i] == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return errors.New("malformed JSON at line " + strconv.Itoa(line) + ", column " + strconv.Itoa(col) + ": " + se.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("malformed JSON: unexpected end of input")
	}
	return errors.New("malformed JSON: " + err.Error())
}

// Get returns the raw value of key.
func (o *Object) Get(key string) (json.RawMessage, bool) {
	for _, m := range o.members {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

// Keys lists the member names in order.
func (o *Object) Keys() []string {
	keys := make([]string, len(o.members))
	for i, m := range o.members {
		keys[i] = m.key
	}
	return keys
}

// String returns the value of key when it is a JSON string.
func (o *Object) String(key string) (string, bool) {
	raw, ok := o.Get(key)
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Set replaces key's value, or appends the member when absent.
func (o *Object) Set(key string, value json.RawMessage) {
	for i := range o.members {
		if o.members[i].key == key {
			o.members[i].value = value
			return
		}
	}
	o.members = append(o.members, member{key, value})
}

// Delete removes key.
func (o *Object) Delete(key string) {
	for i := range o.members {
		if o.members[i].key == key {
			o.members = append(o.members[:i], o.members[i+1:]...)
			return
		}
	}
}

// Bytes writes the object compactly. Members named in first come first, in
// that order; the rest keep their order.
func (o *Object) Bytes(first ...string) []byte {
	n := 2
	for _, m := range o.members {
		n += len(m.key) + len(m.value) + 4
	}
	b := make([]byte, 1, n)
	b[0] = '{'
	write := func(key string, value []byte) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendName(b, key)
		b = append(b, ':')
		b = append(b, value...)
	}
	for _, k := range first {
		if v, ok := o.Get(k); ok {
			write(k, v)
		}
	}
	for _, m := range o.members {
		if !slices.Contains(first, m.key) {
			write(m.key, m.value)
		}
	}
	return append(b, '}')
}

// appendName appends a quoted member name, as json.Marshal would write it;
// names that need no escaping (all FHIR names) are copied as they are.
func appendName(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(name)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"')
}

// Stamp sets the server-owned parts of a resource: id, meta.versionId and
// meta.lastUpdated. Every other member, including the rest of meta (profile,
// tag, security, source, extensions), is kept as sent.
func Stamp(o *Object, id string, version uint64, updated time.Time) ([]byte, error) {
	meta := &Object{}
	if raw, ok := o.Get("meta"); ok {
		m, err := ParseObject(raw)
		if err != nil {
			return nil, errors.New("meta is not a JSON object")
		}
		meta = m
	}
	meta.Set("versionId", quote(strconv.FormatUint(version, 10)))
	meta.Set("lastUpdated", quote(Instant(updated).Format(InstantLayout)))
	o.Set("id", quote(id))
	o.Set("meta", meta.Bytes("versionId", "lastUpdated"))
	return o.Bytes("resourceType", "id", "meta"), nil
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
