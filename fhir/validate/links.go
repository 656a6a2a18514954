package validate

import (
	"bytes"
	"encoding/json"
)

// LinkKind says what kind of string a link walk found.
type LinkKind uint8

const (
	// LinkURL is the value of an element of FHIR type url: a location
	// (Attachment.url, Endpoint.address).
	LinkURL LinkKind = iota + 1
	// LinkNarrative is a Narrative's div, whose a/@href and img/@src may
	// link to other resources.
	LinkNarrative
)

// Links calls fn with the byte range, quotes included, of every string in
// raw that locates another resource other than a Reference.reference
// (which callers find by its name alone): values of elements of type url,
// and Narrative divs, in the resource and in the resources it holds
// (contained, Bundle entries, Parameters). raw must be a resource of type
// typ that passed Validate: the walk follows the schema's definitions and
// does not check the JSON again. A transaction needs them to replace an
// entry's fullUrl where the Bundle links to it (R4 http.html, transaction
// processing). R4 names elements of type uri, oid and uuid too, but those
// are mostly identities (code and identifier systems, canonical names,
// ConceptMap sources, implicitRules), which keep their value even when it
// spells an entry's fullUrl; so are canonicals. A string such as
// Identifier.value, which may look the same, keeps it too.
func (v *Validator) Links(typ string, raw []byte, fn func(start, end int, kind LinkKind)) error {
	set, err := schemas()
	if err != nil {
		return err
	}
	def := set.defs[typ]
	if def == nil || !def.resource {
		return nil
	}
	w := linkWalker{set: set, data: raw, fn: fn}
	i := w.space(0)
	if i < len(raw) && raw[i] == '{' {
		w.object(i, def)
	}
	return nil
}

// linkWalker scans valid JSON, following the schema's definitions.
type linkWalker struct {
	set  *schemaSet
	data []byte
	fn   func(start, end int, kind LinkKind)
}

func (w *linkWalker) space(i int) int {
	for i < len(w.data) && (w.data[i] == ' ' || w.data[i] == '\t' || w.data[i] == '\n' || w.data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string literal that starts at i,
// and whether the literal is closed.
func (w *linkWalker) stringEnd(i int) int {
	end, _ := w.closedString(i)
	return end
}

func (w *linkWalker) closedString(i int) (end int, closed bool) {
	for i++; i < len(w.data); i++ {
		switch w.data[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return len(w.data), false
}

// skip returns the index after the value at i.
func (w *linkWalker) skip(i int) int {
	i = w.space(i)
	if i >= len(w.data) {
		return i
	}
	switch w.data[i] {
	case '"':
		return w.stringEnd(i)
	case '{', '[':
		depth := 0
		for ; i < len(w.data); i++ {
			switch w.data[i] {
			case '"':
				i = w.stringEnd(i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	start := i
	for i < len(w.data) && !bytes.ContainsRune([]byte(",]} \t\n\r"), rune(w.data[i])) {
		i++ // number, true, false, null
	}
	return max(i, start+1) // past anything, so that a walk over bytes that are not JSON ends
}

// members calls fn with each member's key and the index of its value, for
// the object at i ('{'); it returns the index after the object.
func (w *linkWalker) members(i int, fn func(key string, at int) (end int)) int {
	i++
	for {
		i = w.space(i)
		if i >= len(w.data) || w.data[i] == '}' {
			return i + 1
		}
		if w.data[i] == ',' {
			i++
			continue
		}
		if w.data[i] != '"' {
			return len(w.data) // not JSON: stop
		}
		keyEnd := w.stringEnd(i)
		key := w.data[i+1 : max(keyEnd-1, i+1)]
		var k string
		if bytes.IndexByte(key, '\\') < 0 {
			k = string(key)
		} else {
			_ = json.Unmarshal(w.data[i:keyEnd], &k)
		}
		i = w.space(keyEnd)
		i = w.space(i + 1) // ':'
		i = fn(k, i)
	}
}

func (w *linkWalker) object(i int, def *definition) int {
	return w.members(i, func(key string, at int) int {
		p := def.props[key]
		if p == nil {
			return w.skip(at)
		}
		if at < len(w.data) && w.data[at] == '[' {
			return w.array(at, p)
		}
		return w.value(at, p)
	})
}

func (w *linkWalker) array(i int, p *property) int {
	i = w.space(i + 1)
	for i < len(w.data) && w.data[i] != ']' {
		if w.data[i] == ',' {
			i = w.space(i + 1)
			continue
		}
		next := w.value(i, p)
		if next <= i {
			return len(w.data) // not JSON: stop
		}
		i = w.space(next)
	}
	return i + 1
}

func (w *linkWalker) value(i int, p *property) int {
	if i >= len(w.data) {
		return i
	}
	c := w.data[i]
	switch {
	case c == '"' && p.kind == kindPrimitive && p.prim == "url":
		end, closed := w.closedString(i)
		if closed {
			w.fn(i, end, LinkURL)
		}
		return end
	case c == '"' && p.kind == kindXHTML:
		end, closed := w.closedString(i)
		if closed {
			w.fn(i, end, LinkNarrative)
		}
		return end
	case c == '{' && (p.kind == kindComplex || p.kind == kindPrimExt) && p.def != nil:
		return w.object(i, p.def)
	case c == '{' && p.kind == kindResource:
		return w.resource(i)
	}
	return w.skip(i)
}

// resource walks a nested resource by its own type, wherever its
// resourceType member sits.
func (w *linkWalker) resource(i int) int {
	var typ string
	end := w.members(i, func(key string, at int) int {
		end := w.skip(at)
		if key == "resourceType" {
			_ = json.Unmarshal(w.data[at:end], &typ)
		}
		return end
	})
	if def := w.set.defs[typ]; def != nil && def.resource {
		w.object(i, def)
	}
	return end
}
