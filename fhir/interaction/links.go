package interaction

import (
	"bytes"
	"encoding/json"
	"path"
	"strings"

	"healthhub/fhir/validate"
)

// A transaction replaces an entry's fullUrl with Type/id wherever the
// Bundle links to it: in Reference.reference (rewriteReferences), in
// elements of type url (a DocumentReference's attachment.url naming the
// Binary sent beside it) and in the narrative's a/@href and img/@src, for
// temporary (urn:uuid:, urn:oid:), RESTful and relative Type/id links
// alike. R4's transaction rules name elements of type uri, oid and uuid
// too; they keep their value here, because most are identities (code and
// identifier systems, canonical names, a ConceptMap's source,
// implicitRules) that a review found rewritten when they spelled an
// entry's fullUrl (validate.Links). So does a string of another type: an
// Identifier.value may be a urn:uuid: that is a business identifier.

// temporaryLink reports whether s is a fullUrl that a transaction
// replaces.
func temporaryLink(s string) bool {
	return strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:")
}

// linkTargets lists the temporary links in the url elements and
// narratives of raw, a resource of type typ that passed validation.
func linkTargets(v *validate.Validator, typ string, raw []byte) []string {
	if !bytes.Contains(raw, []byte("urn")) { // "urn:", or with its colon escaped
		return nil
	}
	var out []string
	visitLinks(v, typ, raw, func(link string) (string, bool) {
		if temporaryLink(link) {
			out = append(out, link)
		}
		return "", false
	})
	return out
}

// rewriteLinks replaces the links in the url elements and narratives of
// raw that resolve names, leaving every other byte as it is.
func rewriteLinks(v *validate.Validator, typ string, raw []byte, resolve func(string) (string, bool)) (out []byte, changed bool) {
	return visitLinks(v, typ, raw, resolve)
}

func visitLinks(v *validate.Validator, typ string, raw []byte, resolve func(string) (string, bool)) (out []byte, changed bool) {
	if v == nil {
		return raw, false
	}
	var splices []splice
	err := v.Links(typ, raw, func(start, end int, kind validate.LinkKind) {
		s, ok := decodeString(raw[start:end])
		if !ok {
			return
		}
		switch kind {
		case validate.LinkURL:
			if to, ok := resolveLink(s, resolve); ok {
				q, _ := json.Marshal(to)
				splices = append(splices, splice{start, end, q})
			}
		case validate.LinkNarrative:
			if div, ok := rewriteNarrativeLinks(s, resolve); ok {
				splices = append(splices, splice{start, end, quoteNoEscape(div)})
			}
		}
	})
	if err != nil {
		return raw, false
	}
	return applySplices(raw, splices)
}

// resolveLink resolves a temporary, http(s) or relative Type/id link.
func resolveLink(s string, resolve func(string) (string, bool)) (string, bool) {
	if !temporaryLink(s) && !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") && !relativeTypeID(s) {
		return "", false
	}
	to, ok := resolve(s)
	return to, ok && to != s
}

// rewriteNarrativeLinks replaces temporary links in the href and src
// attributes of the tags of an XHTML div.
func rewriteNarrativeLinks(div string, resolve func(string) (string, bool)) (string, bool) {
	var b strings.Builder
	changed := false
	done := 0 // div[:done] is in b
	for i := 0; i < len(div); i++ {
		if div[i] != '<' {
			continue
		}
		if strings.HasPrefix(div[i:], "<!--") { // a comment links nothing
			j := strings.Index(div[i:], "-->")
			if j < 0 {
				break
			}
			i += j + 2
			continue
		}
		end := tagEnd(div, i)
		for _, a := range linkAttributes(div[i:end]) {
			value := div[i+a.start : i+a.end]
			if to, ok := resolveLink(value, resolve); ok {
				b.WriteString(div[done : i+a.start])
				b.WriteString(to) // Type/id: nothing in it needs escaping in XHTML
				done, changed = i+a.end, true
			}
		}
		i = end - 1
	}
	if !changed {
		return div, false
	}
	b.WriteString(div[done:])
	return b.String(), true
}

// tagEnd returns the index after the tag that starts at i ('<'), skipping
// quoted attribute values.
func tagEnd(s string, i int) int {
	var quote byte
	for i++; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return i + 1
		}
	}
	return len(s)
}

type span struct{ start, end int }

// linkAttributes finds the values of the href and src attributes of one
// tag, in order.
func linkAttributes(tag string) []span {
	var out []span
	var quote byte
	for i := 1; i < len(tag); i++ {
		c := tag[i]
		if quote != 0 {
			if c == quote {
				quote = 0
			}
			continue
		}
		if c == '"' || c == '\'' {
			quote = c
			continue
		}
		if i > 0 && strings.IndexByte(" \t\n\r", tag[i-1]) < 0 {
			continue // an attribute name starts after white space
		}
		for _, name := range []string{"href=", "src="} {
			v := i + len(name)
			if strings.HasPrefix(tag[i:], name) && v < len(tag) && (tag[v] == '"' || tag[v] == '\'') {
				if end := strings.IndexByte(tag[v+1:], tag[v]); end >= 0 {
					out = append(out, span{v + 1, v + 1 + end})
					i = v + 1 + end // at the closing quote
				}
				break
			}
		}
	}
	return out
}

// quoteNoEscape encodes s as a JSON string without HTML escaping, so the
// narrative's markup keeps its bytes.
func quoteNoEscape(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// temporaryStrings lists the JSON strings in raw that are temporary links,
// wherever they sit (a JSON Patch's values).
func temporaryStrings(raw []byte) []string {
	var out []string
	for _, prefix := range []string{`"urn:uuid:`, `"urn:oid:`} {
		for rest := raw; ; {
			i := bytes.Index(rest, []byte(prefix))
			if i < 0 {
				break
			}
			end := bytes.IndexByte(rest[i+1:], '"')
			if end < 0 {
				break
			}
			if s, ok := decodeString(rest[i : i+end+2]); ok {
				out = append(out, s)
			}
			rest = rest[i+end+2:]
		}
	}
	return out
}

// restfulBase returns the base of fullUrl when it is an http(s) RESTful
// URL of a resource of typ, base/typ/id; "" otherwise.
func restfulBase(fullURL, typ string) string {
	if !strings.HasPrefix(fullURL, "http://") && !strings.HasPrefix(fullURL, "https://") {
		return ""
	}
	rest, id := path.Split(fullURL)
	if id == "" || !strings.HasSuffix(rest, "/"+typ+"/") {
		return ""
	}
	base := strings.TrimSuffix(rest, "/"+typ+"/")
	if strings.Count(base, "/") < 2 || strings.ContainsAny(fullURL, "?#") {
		return ""
	}
	return base
}

// relativeTypeID reports whether ref is a relative reference Type/id.
func relativeTypeID(ref string) bool {
	typ, id, ok := strings.Cut(ref, "/")
	return ok && typ != "" && id != "" && !strings.ContainsAny(ref, ":?#") && !strings.Contains(id, "/")
}
