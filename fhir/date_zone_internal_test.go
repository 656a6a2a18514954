package fhir

import (
	"strings"
	"testing"
	"unsafe"
)

// TestZoneCacheKeepsNoInput: the fixed-zone cache keeps its own copy of a
// zone's name, not a slice of the string parsed (often a whole resource
// body), which it would keep alive for good.
func TestZoneCacheKeepsNoInput(t *testing.T) {
	big := strings.Repeat(" ", 1<<20) + "2024-01-02T03:04:05+07:13"
	if _, err := ParseDateTime(big[1<<20:]); err != nil {
		t.Fatal(err)
	}
	from := uintptr(unsafe.Pointer(unsafe.StringData(big)))
	zones.Range(func(k, v any) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(k.(string))))
		if p >= from && p < from+uintptr(len(big)) {
			t.Errorf("cached zone %q points into the string parsed", k)
		}
		return true
	})
}
