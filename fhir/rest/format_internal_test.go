package rest

import (
	"net/http"
	"testing"
)

// setHeader stores names as given: they must be canonical, or a later
// Header().Get would not find them and a Set would add a second header.
func TestHeaderNamesAreCanonical(t *testing.T) {
	for _, name := range []string{headerReqID, headerETag, headerLastModified, headerContentLength, headerWarning} {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("header name %q is not canonical: %q", name, c)
		}
	}
}
