package interaction

import (
	"errors"
	"testing"

	"healthhub/fhir"
)

// FuzzDecodeBundle: any body gives a Bundle skeleton or an error that
// becomes an OperationOutcome (a *fhir.Error), never a panic; and what
// decodes names each entry's request exactly as the body spells it.
func FuzzDecodeBundle(f *testing.F) {
	for _, seed := range []string{
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/1"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=a|b"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/1","Method":"DELETE"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","method":"DELETE"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[null,{"request":null},{"request":{"method":7}}]}`,
		`{"resourceType":"Bundle","entry":{}}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeBundle(body)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *fhir.Error", err)
			}
			return
		}
		obj, err := fhir.ParseObject(body)
		if err != nil {
			t.Fatalf("decodeBundle took a body ParseObject refuses: %v", err)
		}
		if typ, _ := obj.String("type"); typ != b.Type {
			t.Fatalf("type %q, the body says %q", b.Type, typ)
		}
	})
}
