package search

import "testing"

// TestParseDocumentPanicDropsStack: a panic out of the decoder (here from
// want) leaves its stack out of the pool, since it may still refer to the
// input.
func TestParseDocumentPanicDropsStack(t *testing.T) {
	const doc = `{"a":"keep","b":{"x":"y","c":1}}`
	for range 20 {
		func() {
			defer func() { _ = recover() }()
			_, _ = parseDocument([]byte(doc), func(name string) bool {
				if name == "c" {
					panic("want")
				}
				return true
			})
		}()
		if st, ok := stackPool.Get().(*[]node); ok {
			for _, n := range (*st)[:cap(*st)] {
				if n.key != "" || n.str != "" || n.kids != nil {
					t.Fatalf("a pooled stack refers to the input: %+v", n)
				}
			}
		}
	}
}
