package interaction

// White-box: eachReference and rewriteRefs are unexported.

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzEachReference: on any valid JSON, each span found holds a JSON string
// that decodes to the reported reference, and replacing every span by
// another string keeps the JSON valid and changes nothing else.
func FuzzEachReference(f *testing.F) {
	for _, s := range []string{
		`{"subject":{"reference":"Patient/1"}}`,
		`{"a":[{"reference":"Practitioner?identifier=http://x|1"},{"reference" : "Organization?identifier=s|\u0031"}]}`,
		`{"note":"\"reference\":\"Patient/x\"","reference":"#c"}`,
		`{"reference":1,"x":{"reference":null}}`,
		`["reference",":","reference"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before any
		if json.Unmarshal(data, &before) != nil {
			return
		}
		var refs []condRef
		eachReference(data, func(start, end int, ref string) {
			var got string
			if err := json.Unmarshal(data[start:end], &got); err != nil || got != ref {
				t.Fatalf("span %d:%d = %q decodes to %q (%v), reported %q", start, end, data[start:end], got, err, ref)
			}
			if len(refs) > 0 && start < refs[len(refs)-1].end {
				t.Fatalf("spans overlap or go backwards")
			}
			refs = append(refs, condRef{start: start, end: end, typ: "Basic", target: "x"})
		})
		out := rewriteRefs(data, refs)
		var after any
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("rewriting %d references broke the JSON: %v\n%s", len(refs), err, out)
		}
		if len(refs) == 0 && !reflect.DeepEqual(before, after) {
			t.Fatalf("nothing to rewrite, but the value changed")
		}
	})
}
