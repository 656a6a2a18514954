package rest

import (
	"net/http"
	"testing"
	"time"
)

// setHeader stores names as given: they must be canonical, or a later
// Header().Get would not find them and a Set would add a second header.
func TestHeaderNamesAreCanonical(t *testing.T) {
	for _, name := range []string{headerReqID, headerETag, headerLastModified, headerContentLength, headerContentType, headerWarning} {
		if c := http.CanonicalHeaderKey(name); c != name {
			t.Errorf("header name %q is not canonical: %q", name, c)
		}
	}
}

func TestAppendHTTPTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 24, 20, 19, 57, 123_000_000, time.UTC),
		time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), // leap day, midnight
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2000, 1, 1, 9, 5, 3, 0, time.UTC),                        // one-digit fields
		time.Date(2026, 7, 4, 12, 0, 0, 0, time.FixedZone("EST", -5*3600)), // written in GMT
		time.UnixMilli(0).UTC(),
	} {
		if got, want := string(appendHTTPTime(nil, tm)), tm.UTC().Format(http.TimeFormat); got != want {
			t.Errorf("%v: %q, want %q", tm, got, want)
		}
	}
}
