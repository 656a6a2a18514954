package validate

import (
	"fmt"
	"net/url"
	"strings"

	"healthhub/conformance"
	"healthhub/fhir"
)

// referenceProblem says what is wrong with the syntax of a
// Reference.reference, or "" when it is one of the forms R4 allows:
//
//	#id, #                      a contained resource, the container
//	Type/id[/_history/vid]      relative to the server base; Type a known type
//	Type?search                 a conditional reference (transactions, bulk
//	                            data): resolving it is the server's job
//	scheme://host/...           an absolute URL
//	urn:uuid:<uuid>, urn:oid:<oid>   Bundle-local identities
func referenceProblem(ref string) string {
	if strings.ContainsAny(ref, " \t\r\n") {
		return fmt.Sprintf("reference %q contains white space", short(ref))
	}
	switch {
	case strings.HasPrefix(ref, "#"):
		if id := ref[1:]; id != "" && !fhir.ValidID(id) {
			return fmt.Sprintf("local reference %q: %q is not a valid id", short(ref), id)
		}
		return ""
	case strings.HasPrefix(ref, "urn:uuid:"):
		if !isUUID(ref[len("urn:uuid:"):]) {
			return fmt.Sprintf("reference %q is not a urn:uuid: followed by a UUID", short(ref))
		}
		return ""
	case strings.HasPrefix(ref, "urn:oid:"):
		if !isOID(ref[len("urn:oid:"):]) {
			return fmt.Sprintf("reference %q is not a urn:oid: followed by an OID", short(ref))
		}
		return ""
	case strings.HasPrefix(ref, "urn:"):
		return fmt.Sprintf("reference %q: the only URNs a reference can hold are urn:uuid: and urn:oid:", short(ref))
	case isConditional(ref):
		// Checked before absolute URLs: the criteria may hold one
		// ("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|123").
		typ, query, _ := strings.Cut(ref, "?")
		switch {
		case !conformance.IsResourceType(typ):
			return fmt.Sprintf("conditional reference %q: %q is not an R4 resource type", short(ref), typ)
		case query == "":
			return fmt.Sprintf("conditional reference %q has no search criteria", short(ref))
		}
		return ""
	case strings.Contains(ref, "://"):
		u, err := url.Parse(ref)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Sprintf("reference %q is not a valid absolute URL", short(ref))
		}
		return ""
	}
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) != 2 && (len(parts) != 4 || parts[2] != "_history"):
		return fmt.Sprintf("reference %q is not Type/id, Type/id/_history/version, #id, an absolute URL, urn:uuid: or urn:oid:", short(ref))
	case !conformance.IsResourceType(parts[0]):
		return fmt.Sprintf("reference %q: %q is not an R4 resource type", short(ref), parts[0])
	case !fhir.ValidID(parts[1]):
		return fmt.Sprintf("reference %q: %q is not a valid id", short(ref), parts[1])
	case len(parts) == 4 && !fhir.ValidID(parts[3]):
		return fmt.Sprintf("reference %q: %q is not a valid version id", short(ref), parts[3])
	}
	return ""
}

// isUUID accepts the 8-4-4-4-12 hex form. Upper case is accepted although
// the FHIR uuid type writes lower case: a reference is a string, and
// RFC 4122 reads either.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// isOID accepts [0-2](\.(0|[1-9][0-9]*))+, the FHIR oid pattern.
func isOID(s string) bool {
	arcs := strings.Split(s, ".")
	if len(arcs) < 2 || len(arcs[0]) != 1 || arcs[0][0] < '0' || arcs[0][0] > '2' {
		return false
	}
	for _, a := range arcs[1:] {
		if a == "" || (len(a) > 1 && a[0] == '0') {
			return false
		}
		for i := 0; i < len(a); i++ {
			if a[i] < '0' || a[i] > '9' {
				return false
			}
		}
	}
	return true
}

func short(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// isConditional: Type?criteria, the part before "?" a plain name.
func isConditional(ref string) bool {
	typ, _, ok := strings.Cut(ref, "?")
	return ok && typ != "" && !strings.ContainsAny(typ, "/:")
}
