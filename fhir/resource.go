package fhir

import (
	"strconv"
	"strings"
	"time"
)

// Resource is one version of a resource as the server holds it.
type Resource struct {
	Type        string
	ID          string
	VersionID   uint64
	LastUpdated time.Time // UTC, millisecond precision (what meta.lastUpdated says)
	Deleted     bool      // a deletion marker in history: JSON is nil
	// CreatedByUpdate: this version brought the resource into being by an
	// update (PUT): version 1 of an update as create (to the id the client
	// chose, or to one the server assigned when a conditional update
	// matched nothing), or the version after a deletion. A version 1
	// without it was a create (POST). History reports the interaction that
	// made each version, and its status: 201 for these.
	CreatedByUpdate bool
	JSON            []byte // compact, stamped with id and meta; the record of truth
}

// ETag is the weak entity tag of this version, as FHIR requires: W/"n".
func (r *Resource) ETag() string { return `W/"` + strconv.FormatUint(r.VersionID, 10) + `"` }

// Path is Type/id.
func (r *Resource) Path() string { return r.Type + "/" + r.ID }

// VersionPath is Type/id/_history/n.
func (r *Resource) VersionPath() string {
	return r.Path() + "/_history/" + strconv.FormatUint(r.VersionID, 10)
}

// ValidID reports whether id has the R4 id syntax: 1 to 64 of [A-Za-z0-9-.].
// A loop, not a regexp: it runs for every id and reference written (~3% of
// an import's CPU as a regexp).
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// InstantLayout formats meta.lastUpdated: UTC with milliseconds.
const InstantLayout = "2006-01-02T15:04:05.000Z07:00"

// Instant truncates t to the precision the server stores, in UTC.
func Instant(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// ParseVersionETag reads the version from an ETag or If-Match value: W/"3",
// "3" or 3. ok is false when it is not one.
func ParseVersionETag(s string) (v uint64, ok bool) {
	if len(s) >= 2 && (s[:2] == "W/" || s[:2] == "w/") {
		s = s[2:]
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && v > 0
}

// NotModified answers a conditional read of r (RFC 9110 13.1.2 and
// 13.1.4): with ifNoneMatch (a list of ETags, or *), whether one names r's
// version; else, with since, whether r was last modified no later than it
// (to the second, as HTTP dates go).
func NotModified(r *Resource, ifNoneMatch string, since time.Time) bool {
	if ifNoneMatch != "" {
		if strings.TrimSpace(ifNoneMatch) == "*" {
			return true
		}
		for _, tag := range strings.Split(ifNoneMatch, ",") {
			if v, ok := ParseVersionETag(strings.TrimSpace(tag)); ok && v == r.VersionID {
				return true
			}
		}
		return false
	}
	return !since.IsZero() && !r.LastUpdated.Truncate(time.Second).After(since)
}
