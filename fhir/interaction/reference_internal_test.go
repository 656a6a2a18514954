package interaction

import (
	"encoding/json"
	"testing"
)

// White-box: rewriteReferences works on raw bytes, which the black-box
// tests see only through whole transactions.
func TestRewriteReferences(t *testing.T) {
	refs := map[string]string{"urn:uuid:a": "Patient/1", "Patient?identifier=s|v": "Patient/2"}
	resolve := func(ref string) (string, bool) { to, ok := refs[ref]; return to, ok }
	cases := []struct{ name, in, want string }{
		{"top level", `{"reference":"urn:uuid:a"}`, `{"reference":"Patient/1"}`},
		{"deep in arrays and extensions", `{"a":[{"b":{"extension":[{"valueReference":{"reference":"urn:uuid:a","display":"x"}}]}}]}`, `{"a":[{"b":{"extension":[{"valueReference":{"reference":"Patient/1","display":"x"}}]}}]}`},
		{"conditional", `{"subject":{"reference":"Patient?identifier=s|v"}}`, `{"subject":{"reference":"Patient/2"}}`},
		{"unknown left alone", `{"reference":"urn:uuid:b"}`, `{"reference":"urn:uuid:b"}`},
		{"other members keep their bytes", `{"div":"<p>\u00e9 \"q\"</p>","n":1.50e0,"reference":"urn:uuid:a","t":true,"z":null}`, `{"div":"<p>\u00e9 \"q\"</p>","n":1.50e0,"reference":"Patient/1","t":true,"z":null}`},
		{"whitespace", "{ \"reference\" : \"urn:uuid:a\" , \"x\" : [ 1 , 2 ] }", "{ \"reference\" : \"Patient/1\" , \"x\" : [ 1 , 2 ] }"},
		{"escaped key", `{"refer\u0065nce":"urn:uuid:a"}`, `{"refer\u0065nce":"Patient/1"}`},
		{"escaped value", `{"reference":"urn:uuid:\u0061"}`, `{"reference":"Patient/1"}`},
		{"not a string", `{"reference":{"reference":"urn:uuid:a"}}`, `{"reference":{"reference":"Patient/1"}}`},
		{"a value, not a key", `{"display":"reference","x":"urn:uuid:a"}`, `{"display":"reference","x":"urn:uuid:a"}`},
		{"empty containers", `{"a":[],"b":{},"reference":"urn:uuid:a"}`, `{"a":[],"b":{},"reference":"Patient/1"}`},
	}
	for _, tc := range cases {
		got, changed := rewriteReferences([]byte(tc.in), resolve)
		if string(got) != tc.want || changed != (tc.in != tc.want) {
			t.Errorf("%s: rewriteReferences(%s) = %s, %v; want %s", tc.name, tc.in, got, changed, tc.want)
		}
	}
	if got := references([]byte(`{"a":{"reference":"urn:uuid:a"},"b":{"reference":"Patient/9"},"c":{"reference":"Patient?x=1"},"d":{"reference":"urn:oid:1.2"}}`)); len(got) != 3 {
		t.Errorf("references: %v, want the urn:uuid:, conditional and urn:oid: ones", got)
	}
}

// FuzzRewriteReferences: on any valid JSON, rewriting every reference
// keeps the JSON valid and leaves no "reference" string unrewritten; on
// any bytes at all, it terminates without a panic.
func FuzzRewriteReferences(f *testing.F) {
	for _, s := range []string{`{"reference":"a"}`, `[{"x":{"reference":"b"}},1,"s",null]`, `{"reference":{"reference":"c"},"y":[[],{}]}`, `{"refer\u0065nce":"\"q\""}`, `{`, `[,]`, `{"a":}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _ := rewriteReferences(data, func(string) (string, bool) { return "X/1", true })
		if !json.Valid(data) {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("rewriteReferences(%s) = %s: not JSON", data, out)
		}
		for _, ref := range references(out) {
			t.Errorf("rewriteReferences(%s) left %q", data, ref)
		}
	})
}
