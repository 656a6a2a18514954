package interaction

import (
	"testing"

	"healthhub/fhir/validate"
)

func TestRewriteNarrativeLinks(t *testing.T) {
	refs := map[string]string{"urn:uuid:a": "Binary/1", "urn:oid:1.2": "Patient/p"}
	resolve := func(s string) (string, bool) { to, ok := refs[s]; return to, ok }
	cases := []struct{ in, want string }{
		{`<div><a href="urn:uuid:a">x</a></div>`, `<div><a href="Binary/1">x</a></div>`},
		{`<div><img src='urn:uuid:a'/><a  href="urn:oid:1.2">p</a></div>`, `<div><img src='Binary/1'/><a  href="Patient/p">p</a></div>`},
		{`<div><a data-href="urn:uuid:a" href="urn:uuid:other">x</a> href="urn:uuid:a"</div>`, ``}, // not attributes of ours, or not in the Bundle
		{`<div><a href="http://example.org/urn:uuid:a">x</a></div>`, ``},
	}
	for _, c := range cases {
		got, changed := rewriteNarrativeLinks(c.in, resolve)
		if c.want == "" {
			if changed {
				t.Errorf("%s: rewritten to %s, want unchanged", c.in, got)
			}
			continue
		}
		if !changed || got != c.want {
			t.Errorf("%s:\n got %s (changed %v)\nwant %s", c.in, got, changed, c.want)
		}
	}
}

// TestRewriteLinksKeepsOtherStrings: a URI element and the narrative take
// the entry's id; an Identifier.value with the same urn:uuid:, and every
// other byte, stay as they were.
func TestRewriteLinksKeepsOtherStrings(t *testing.T) {
	v := validate.New()
	in := `{"resourceType":"DocumentReference", "status":"current",` +
		`"masterIdentifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a"},` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a\">the document</a> &amp; more</div>"},` +
		`"content":[{"attachment":{"contentType":"text/plain","url":"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a"}}]}`
	if err := v.Validate("DocumentReference", []byte(in)); err != nil {
		t.Fatal(err)
	}
	resolve := func(s string) (string, bool) {
		return "Binary/b1", s == "urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a"
	}
	want := `{"resourceType":"DocumentReference", "status":"current",` +
		`"masterIdentifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:0b1e2f3a-0000-4000-8000-00000000000a"},` +
		`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"Binary/b1\">the document</a> &amp; more</div>"},` +
		`"content":[{"attachment":{"contentType":"text/plain","url":"Binary/b1"}}]}`
	got, changed := rewriteLinks(v, "DocumentReference", []byte(in), resolve)
	if !changed || string(got) != want {
		t.Errorf("rewriteLinks:\n got %s\nwant %s", got, want)
	}
	if targets := linkTargets(v, "DocumentReference", []byte(in)); len(targets) != 2 {
		t.Errorf("linkTargets = %q, want the attachment's url and the narrative's link", targets)
	}
}

func TestRestfulBase(t *testing.T) {
	cases := []struct{ fullURL, typ, want string }{
		{"https://a.example/fhir/Patient/1", "Patient", "https://a.example/fhir"},
		{"http://a.example/Patient/p-1", "Patient", "http://a.example"},
		{"https://a.example/fhir/Patient/1", "Observation", ""}, // not the entry's type
		{"https://a.example/fhir/Patient/", "Patient", ""},
		{"https://a.example/fhir/Patient/1?x=y", "Patient", ""},
		{"urn:uuid:0b1e2f3a-0000-4000-8000-000000000001", "Patient", ""},
		{"Patient/1", "Patient", ""},
		{"", "Patient", ""},
	}
	for _, c := range cases {
		if got := restfulBase(c.fullURL, c.typ); got != c.want {
			t.Errorf("restfulBase(%q, %q) = %q, want %q", c.fullURL, c.typ, got, c.want)
		}
	}
	for ref, want := range map[string]bool{
		"Patient/1": true, "Patient/1/_history/2": false, "Patient?identifier=x": false, "#c1": false,
		"http://a/Patient/1": false, "urn:uuid:x": false, "Patient": false, "/1": false,
	} {
		if got := relativeTypeID(ref); got != want {
			t.Errorf("relativeTypeID(%q) = %v, want %v", ref, got, want)
		}
	}
}

// TestResolveLink: temporary, RESTful and relative links resolve when the
// Bundle has their target; others do not.
func TestResolveLink(t *testing.T) {
	refs := map[string]string{"urn:uuid:a": "Binary/1", "https://h.example/fhir/Binary/7": "Binary/2", "https://h.example/fhir/Binary/8": "Binary/3"}
	base := "https://h.example/fhir"
	resolve := func(s string) (string, bool) {
		if to, ok := refs[s]; ok {
			return to, true
		}
		if relativeTypeID(s) {
			to, ok := refs[base+"/"+s]
			return to, ok
		}
		return "", false
	}
	for s, want := range map[string]string{
		"urn:uuid:a":                      "Binary/1",
		"https://h.example/fhir/Binary/7": "Binary/2",
		"Binary/8":                        "Binary/3",
		"urn:uuid:b":                      "",
		"Binary/9":                        "",
		"mailto:x@example.org":            "",
	} {
		got, ok := resolveLink(s, resolve)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("resolveLink(%q) = %q, want %q", s, got, want)
		}
	}
}
