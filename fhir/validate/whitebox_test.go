package validate

// White-box tests: the pieces a black-box test cannot reach directly (the
// fast pattern matchers against the schema's regular expressions, the
// schema index) and a benchmark of the stages of Validate.

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestPatternEquivalence holds every hand-written matcher to the regular
// expression it replaces, on generated strings around the edges of each
// pattern. FuzzValidate (with the cross-check on) covers the rest.
func TestPatternEquivalence(t *testing.T) {
	set, err := schemas()
	if err != nil {
		t.Fatal(err)
	}
	// Each fast matcher must stand for a pattern the schema really uses.
	used := make(map[string]bool)
	for _, d := range set.defs {
		for _, p := range d.props {
			if p.pattern != nil {
				used[p.pattern.re.String()] = true
			}
		}
	}
	for src := range fastMatchers {
		if !used[src] {
			t.Errorf("fast matcher for %q matches no pattern of the schema", src)
		}
	}

	pieces := []string{"", " ", "\t", "\n", "\r", "\f", "\v", "\u00a0", "a", "Z", "0", "9", "-", ".", "_", "é", "😀",
		"1970", "0000", "0001", "2024", "-01", "-12", "-13", "-00", "-02", "-29", "-30", "-31", "-32",
		"T00:00:00", "T23:59:60", "T24:00:00", "T12:60:00", ".5", ".", "Z", "+14:00", "+14:01", "-13:59", "+1400", "z"}
	var inputs []string
	for _, a := range pieces {
		for _, b := range pieces {
			inputs = append(inputs, a+b)
			for _, c := range pieces[:20] {
				inputs = append(inputs, a+b+c)
			}
		}
	}
	inputs = append(inputs, strings.Repeat("a", 64), strings.Repeat("a", 65), "2024-02-29T12:30:45.123+05:30",
		"2023-06-21", "2023-06", "2023", "2023-06-21T06:20:00Z", "2023-06-21T06:20Z", "a b", "a  b", " a", "a ", "a\fb")
	for src, fast := range fastMatchers {
		re := regexp.MustCompile(src)
		for _, in := range inputs {
			if got, want := fast(in), re.MatchString(in); got != want {
				t.Errorf("pattern %.30q, input %q: fast %v, regexp %v", src, in, got, want)
			}
		}
	}
}

// TestIndexResourceProperties: the properties that hold a whole resource
// come from the schema (ResourceList), not from a list kept by hand.
func TestIndexResourceProperties(t *testing.T) {
	set, err := schemas()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for name, d := range set.defs {
		for pname, p := range d.props {
			if p.kind == kindResource {
				got = append(got, name+"."+pname)
			}
		}
	}
	want := map[string]bool{"Bundle_Entry.resource": true, "Bundle_Response.outcome": true, "Parameters_Parameter.resource": true}
	contained := 0
	for _, g := range got {
		switch {
		case strings.HasSuffix(g, ".contained"):
			contained++
		case want[g]:
			delete(want, g)
		default:
			t.Errorf("unexpected resource-holding property %s", g)
		}
	}
	if len(want) > 0 {
		t.Errorf("resource-holding properties not found: %v", want)
	}
	if contained < 100 {
		t.Errorf("only %d contained properties found", contained)
	}
}

// BenchmarkStages splits Validate of the Synthea Patient into its stages,
// and shows what the schema library alone would cost.
func BenchmarkStages(b *testing.B) {
	body, err := os.ReadFile("testdata/synthea-patient.json")
	if err != nil {
		b.Fatal(err)
	}
	set, err := schemas()
	if err != nil {
		b.Fatal(err)
	}
	sch, err := set.schema("Patient")
	if err != nil {
		b.Fatal(err)
	}
	doc, err := decode(body)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = decode(body)
		}
	})
	b.Run("walk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w := &walker{set: set, path: append(make([]byte, 0, 128), "Patient"...)}
			w.resource(doc.(map[string]any), "Patient", -1, false)
		}
	})
	b.Run("jsonschema-library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = sch.Validate(doc)
		}
	})
}

// TestNarrativeBrowserParsingTricks: narratives that XML reads as harmless
// but an HTML parser (innerHTML, where clients show them) reads as an
// <img onerror>: CDATA (a bogus comment ending at the first ">") and
// comments starting with ">" or "->" (HTML ends <!--> and <!---> at once).
func TestNarrativeBrowserParsingTricks(t *testing.T) {
	const d = `<div xmlns="http://www.w3.org/1999/xhtml">`
	for _, div := range []string{
		d + `a<!--><img src="x" onerror="alert(1)"/>--></div>`,
		d + `a<!---><img src="x" onerror="alert(1)"/>--></div>`,
		d + `<![CDATA[><img src=x onerror=alert(1)>]]></div>`,
		d + `<p><![CDATA["]]>" href='x'>text</p></div>`,
	} {
		if narrativeProblem(div) == "" {
			t.Errorf("accepted: %s", div)
		}
	}
	if p := narrativeProblem(d + `a<!-- a comment --> b</div>`); p != "" {
		t.Errorf("an ordinary comment is refused: %s", p)
	}
}

// TestFullURLCharacters: a fullUrl holds only what a URI may (RFC 3986);
// it is spliced into narratives when a transaction rewrites links.
func TestFullURLCharacters(t *testing.T) {
	for _, u := range []string{"http://example.org/fhir/Patient/x<!--", `http://example.org/fhir/Patient/"x`, "http://example.org/a b", "http://example.org/a{b}"} {
		if absoluteURI(u) {
			t.Errorf("fullUrl %q accepted", u)
		}
	}
	for _, u := range []string{"https://hospital-a.example/fhir/Patient/p1", "http://example.org/fhir/Patient/p1?name=o'brien", "http://example.org:8080/a%20b"} {
		if !absoluteURI(u) {
			t.Errorf("fullUrl %q refused", u)
		}
	}
}
