package validate_test

import (
	"testing"

	"healthhub/fhir/validate"
)

// TestFullURLSubDelimsAccepted: "'" is one of RFC 3986's sub-delims
// (RFC 3986 section 2.2), legal in a path or query as it is; a fullUrl
// holding it is an absolute URI and the Bundle is valid.
func TestFullURLSubDelimsAccepted(t *testing.T) {
	for _, full := range []string{
		"http://example.org/fhir/Patient/p1?name=o'brien",
		"http://example.org/fhir/Binary/b1?file='report'.pdf",
	} {
		body := []byte(`{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"` + full + `","resource":{"resourceType":"Patient","id":"p1"}}]}`)
		if full == "http://example.org/fhir/Binary/b1?file='report'.pdf" {
			body = []byte(`{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"` + full + `","resource":{"resourceType":"Binary","id":"b1","contentType":"text/plain"}}]}`)
		}
		if err := validate.New().Validate("Bundle", body); err != nil {
			t.Errorf("fullUrl %s refused: %v", full, err)
		}
	}
}
