package interaction

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"healthhub/fhir"
)

// rewriteReferences walks raw JSON (a valid value) and offers every string
// member named "reference" (Reference.reference, wherever it sits: deep in
// elements, in extensions, in contained resources) to resolve; where
// resolve gives a replacement, that string is replaced. Every other byte is
// kept as it was: the resource is the record of truth, so it is not
// decoded into Go values and re-encoded. changed reports a replacement.
func rewriteReferences(raw []byte, resolve func(ref string) (string, bool)) (out []byte, changed bool) {
	var splices []splice
	w := refWalker{data: raw, visit: func(start, end int, ref string) {
		if to, ok := resolve(ref); ok && to != ref {
			q, _ := json.Marshal(to)
			splices = append(splices, splice{start, end, q})
		}
	}}
	w.value(0)
	return applySplices(raw, splices)
}

// splice replaces raw[start:end] with with.
type splice struct {
	start, end int
	with       []byte
}

// applySplices returns raw with splices (in order, not overlapping)
// applied; changed is false, and raw returned, when there are none.
func applySplices(raw []byte, splices []splice) (out []byte, changed bool) {
	if len(splices) == 0 {
		return raw, false
	}
	out = make([]byte, 0, len(raw)+32*len(splices))
	prev := 0
	for _, s := range splices {
		out = append(append(out, raw[prev:s.start]...), s.with...)
		prev = s.end
	}
	return append(out, raw[prev:]...), true
}

// ownPart is obj, a resource of type typ, as far as a transaction resolves
// its references and links: all of it, except a Bundle's entries. A Bundle
// that a transaction stores (a document, a message) is a record of its
// own, whose entries refer to each other by its own fullUrls (R4
// bundle.html, resolving references in Bundles: in the Bundle that holds
// the reference), not by the transaction's, and it is stored as sent, as a
// plain create stores it. obj itself is returned when nothing is left out.
func ownPart(typ string, obj *fhir.Object) *fhir.Object {
	if typ != "Bundle" {
		return obj
	}
	if _, ok := obj.Get("entry"); !ok {
		return obj
	}
	c := copyObject(obj)
	c.Delete("entry")
	return c
}

// references lists the Reference.reference strings in raw that a
// transaction may have to resolve: urn:uuid:, urn:oid: and conditional
// (Type?criteria) references.
func references(raw []byte) []string {
	var refs []string
	w := refWalker{data: raw, visit: func(_, _ int, ref string) {
		if resolvable(ref) {
			refs = append(refs, ref)
		}
	}}
	w.value(0)
	return refs
}

func resolvable(ref string) bool {
	return strings.HasPrefix(ref, "urn:uuid:") || strings.HasPrefix(ref, "urn:oid:") || isConditionalReference(ref)
}

// isConditionalReference: Type?criteria, with no scheme or slash before
// the question mark.
func isConditionalReference(ref string) bool {
	typ, _, ok := strings.Cut(ref, "?")
	return ok && typ != "" && !strings.ContainsAny(typ, "/:#")
}

// refWalker scans valid JSON and calls visit with the byte range (quotes
// included) and the decoded value of each string member named "reference".
// The input has passed a JSON parser, so the scanner does not re-check the
// grammar; it only has to find where each value ends.
type refWalker struct {
	data  []byte
	visit func(start, end int, ref string)
}

func (w *refWalker) space(i int) int {
	for i < len(w.data) && (w.data[i] == ' ' || w.data[i] == '\t' || w.data[i] == '\n' || w.data[i] == '\r') {
		i++
	}
	return i
}

// value scans the value at i and returns the index after it.
func (w *refWalker) value(i int) int {
	i = w.space(i)
	if i >= len(w.data) {
		return i
	}
	switch w.data[i] {
	case '{':
		return w.object(i + 1)
	case '[':
		i = w.space(i + 1)
		if i < len(w.data) && w.data[i] == ']' {
			return i + 1
		}
		for i < len(w.data) {
			i = w.space(w.value(i))
			if i >= len(w.data) || w.data[i] == ']' {
				return i + 1
			}
			i++ // ','
		}
		return i
	case '"':
		return w.stringEnd(i)
	}
	for i < len(w.data) && !strings.ContainsRune(",]} \t\n\r", rune(w.data[i])) {
		i++ // number, true, false, null
	}
	return i
}

func (w *refWalker) object(i int) int {
	for {
		i = w.space(i)
		if i >= len(w.data) || w.data[i] == '}' {
			return i + 1
		}
		if w.data[i] == ',' {
			i++
			continue
		}
		keyStart := i
		keyEnd := w.stringEnd(i)
		i = w.space(keyEnd)
		i = w.space(i + 1) // ':'
		end := w.value(i)
		if i < len(w.data) && w.data[i] == '"' && w.isReferenceKey(keyStart, keyEnd) {
			if ref, ok := decodeString(w.data[i:end]); ok {
				w.visit(i, end, ref)
			}
		}
		i = end
	}
}

// decodeString decodes a JSON string literal. One without escapes (nearly
// every reference) is taken as it is: encoding/json's reflection per
// reference doubled the CPU of an import and of $everything.
func decodeString(lit []byte) (string, bool) {
	if n := len(lit); n >= 2 && lit[n-1] == '"' {
		if inner := lit[1 : n-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner), true
		}
	}
	var s string
	return s, json.Unmarshal(lit, &s) == nil
}

func (w *refWalker) isReferenceKey(start, end int) bool {
	key := w.data[start:end]
	if string(key) == `"reference"` {
		return true
	}
	// An escaped spelling of the same name; decodeString keeps the decoding
	// (whose result escapes to the heap) off the common path.
	if bytes.IndexByte(key, '\\') < 0 {
		return false
	}
	k, ok := decodeString(key)
	return ok && k == "reference"
}

// stringEnd returns the index after the string starting at i (a quote).
func (w *refWalker) stringEnd(i int) int {
	for i++; i < len(w.data); i++ {
		switch w.data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}
