package validate

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

const xhtmlNS = "http://www.w3.org/1999/xhtml"

// The XHTML a narrative may hold (R4 narrative.html, invariant txt-1): the
// basic formatting elements of HTML 4.0 chapters 7-11 and 12, links, images
// and inline styles. No script, form, object, iframe, head/body, no event
// attributes. The lists are the ones the HL7 reference validator applies.
var (
	narrativeElements = set("p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6", "a", "span", "b", "em", "i", "strong",
		"small", "big", "tt", "dfn", "q", "var", "abbr", "acronym", "cite", "blockquote", "hr", "address", "bdo", "kbd",
		"sub", "sup", "ul", "ol", "li", "dl", "dt", "dd", "pre", "table", "caption", "colgroup", "col", "thead", "tr",
		"tfoot", "tbody", "th", "td", "code", "samp", "img", "map", "area")
	narrativeAttributes = set("title", "style", "class", "id", "lang", "dir", "accesskey", "tabindex",
		"span", "width", "align", "valign", "char", "charoff", "abbr", "axis", "headers", "scope", "rowspan", "colspan")
	narrativeElementAttributes = set("a.href", "a.name", "img.src", "img.border", "blockquote.cite", "q.cite",
		"a.charset", "a.type", "a.hreflang", "a.rel", "a.rev", "a.shape", "a.coords", "img.alt", "img.longdesc",
		"img.height", "img.width", "img.usemap", "img.ismap", "map.name", "area.shape", "area.coords", "area.href",
		"area.nohref", "area.alt", "table.summary", "table.width", "table.border", "table.frame", "table.rules",
		"table.cellspacing", "table.cellpadding", "pre.space", "td.nowrap")
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// narrativeProblem says what is wrong with a Narrative.div, or "". The div
// is stored and later shown in browsers, so this is also where script and
// event handlers are kept out.
//
// It must be one well-formed XHTML div element in the XHTML namespace,
// using only the XML entities (&amp; &lt; &gt; &quot; &apos;) and numeric
// character references: HTML entities such as &reg; are not defined in XML.
// It holds only the elements and attributes of txt-1, no javascript: links,
// and some text or an image (txt-2).
func narrativeProblem(div string) string {
	if strings.Contains(div, "<![CDATA[") {
		// XML reads it as text; an HTML parser (innerHTML, where narratives
		// are shown) reads a bogus comment that ends at the first ">", and
		// what follows it as markup. A narrative needs no CDATA.
		return "narrative cannot hold a CDATA section (browsers read it differently from XML)"
	}
	d := xml.NewDecoder(strings.NewReader(div))
	d.Strict = true // unknown entities and unclosed tags are errors
	depth := 0
	seenRoot := false
	hasContent := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return "narrative is not well-formed XHTML: " + se.Msg
			}
			return "narrative is not well-formed XHTML: " + err.Error()
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if seenRoot {
					return "narrative has more than one root element; wrap it in one div"
				}
				seenRoot = true
				switch {
				case t.Name.Local != "div":
					return fmt.Sprintf("narrative must be one <div> element, not <%s>", t.Name.Local)
				case t.Name.Space != xhtmlNS:
					return `narrative div must be in the XHTML namespace: <div xmlns="` + xhtmlNS + `">`
				}
			}
			depth++
			if t.Name.Space != xhtmlNS {
				return fmt.Sprintf("element %s in the narrative is not in the XHTML namespace", qname(t.Name))
			}
			if !narrativeElements[t.Name.Local] {
				return fmt.Sprintf("element <%s> is not allowed in a narrative (txt-1)", t.Name.Local)
			}
			if t.Name.Local == "img" {
				hasContent = true
			}
			for _, a := range t.Attr {
				if problem := attributeProblem(t.Name.Local, a); problem != "" {
					return problem
				}
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				if strings.TrimSpace(string(t)) != "" {
					return "narrative has text outside its div element"
				}
				continue
			}
			if !hasContent && strings.IndexFunc(string(t), func(r rune) bool { return !unicode.IsSpace(r) }) >= 0 {
				hasContent = true
			}
		case xml.Comment:
			// HTML ends <!--> and <!---> at once, so the rest of an XML
			// comment that starts so would be markup in a browser.
			if c := string(t); strings.HasPrefix(c, ">") || strings.HasPrefix(c, "->") {
				return "narrative comment starts with \">\" or \"->\", which a browser reads as the comment's end"
			}
		case xml.Directive:
			return "narrative cannot hold a DOCTYPE or other <!...> declaration"
		case xml.ProcInst:
			return "narrative cannot hold a processing instruction <?" + t.Target + "?>"
		}
	}
	switch {
	case !seenRoot:
		return "narrative has no div element"
	case !hasContent:
		return "narrative has no text and no image (txt-2)"
	}
	return ""
}

func attributeProblem(elem string, a xml.Attr) string {
	switch {
	case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
		return "" // namespace declarations
	case a.Name.Space == "http://www.w3.org/XML/1998/namespace" && a.Name.Local == "lang":
		return "" // xml:lang
	case a.Name.Space != "":
		return fmt.Sprintf("attribute %s on <%s> is not allowed in a narrative (txt-1)", qname(a.Name), elem)
	case !narrativeAttributes[a.Name.Local] && !narrativeElementAttributes[elem+"."+a.Name.Local]:
		return fmt.Sprintf("attribute %s on <%s> is not allowed in a narrative (txt-1)", a.Name.Local, elem)
	}
	if a.Name.Local == "href" || a.Name.Local == "src" || a.Name.Local == "longdesc" || a.Name.Local == "cite" {
		v := strings.ToLower(strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				return -1 // browsers ignore these inside a scheme: "java\tscript:"
			}
			return r
		}, a.Value))
		if strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:") {
			return fmt.Sprintf("attribute %s on <%s> holds a script URL, which a narrative cannot have", a.Name.Local, elem)
		}
	}
	return ""
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return "{" + n.Space + "}" + n.Local
}
