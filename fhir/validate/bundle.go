package validate

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"healthhub/conformance"
)

// bundle checks the rules of a Bundle at w.path, after its entries have been
// walked (their references are then in w.entryScopes): the R4 invariants
// bdl-1 to bdl-12, the rules on fullUrl from Bundle.entry.fullUrl's
// definition, and that references between entries resolve unambiguously.
func (w *walker) bundle(obj map[string]any) {
	typ, _ := obj["type"].(string)
	entries, _ := obj["entry"].([]any)
	base := string(w.path)

	if _, ok := obj["total"]; ok && typ != "searchset" && typ != "history" {
		w.add("invariant", ".total", "total is only for a searchset or history Bundle, not %q (bdl-1)", typ)
	}
	if typ == "document" {
		ident, _ := obj["identifier"].(map[string]any)
		_, hasSystem := ident["system"]
		_, hasValue := ident["value"]
		if !hasSystem || !hasValue {
			w.add("invariant", ".identifier", "a document Bundle needs an identifier with a system and a value (bdl-9)")
		}
		if _, ok := obj["timestamp"]; !ok {
			w.add("invariant", ".timestamp", "a document Bundle needs a timestamp (bdl-10)")
		}
	}
	var first, rule string
	switch typ {
	case "document":
		first, rule = "Composition", "bdl-11"
	case "message":
		first, rule = "MessageHeader", "bdl-12"
	}
	if first != "" {
		var got string
		if len(entries) > 0 {
			e, _ := entries[0].(map[string]any)
			r, _ := e["resource"].(map[string]any)
			got, _ = r["resourceType"].(string)
		}
		if got != first {
			w.add("invariant", ".entry", "the first resource of a %s Bundle must be a %s (%s)", typ, first, rule)
		}
	}

	needsRequest := typ == "batch" || typ == "transaction" || typ == "history"
	needsResponse := typ == "batch-response" || typ == "transaction-response" || typ == "history"
	type seenEntry struct {
		index   int
		version string // meta.versionId of its resource
	}
	byFullURL := make(map[string][]seenEntry)
	for i, raw := range entries {
		e, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		at := base + ".entry[" + strconv.Itoa(i) + "]"
		_, hasResource := e["resource"]
		_, hasRequest := e["request"]
		_, hasResponse := e["response"]
		if _, ok := e["search"]; ok && typ != "searchset" {
			w.addAt("invariant", at+".search", "entry.search is only for a searchset Bundle (bdl-2)")
		}
		if hasRequest != needsRequest {
			if needsRequest {
				w.addAt("invariant", at, "each entry of a %s Bundle needs a request (bdl-3)", typ)
			} else {
				w.addAt("invariant", at+".request", "entry.request is only for a batch, transaction or history Bundle (bdl-3)")
			}
		}
		if hasResponse != needsResponse {
			if needsResponse {
				w.addAt("invariant", at, "each entry of a %s Bundle needs a response (bdl-4)", typ)
			} else {
				w.addAt("invariant", at+".response", "entry.response is only for a batch-response, transaction-response or history Bundle (bdl-4)")
			}
		}
		if !hasResource && !hasRequest && !hasResponse {
			w.addAt("invariant", at, "an entry needs a resource, a request or a response (bdl-5)")
		}

		full, ok := e["fullUrl"].(string)
		if !ok {
			continue
		}
		res, _ := e["resource"].(map[string]any)
		rtype, _ := res["resourceType"].(string)
		rid, _ := res["id"].(string)
		meta, _ := res["meta"].(map[string]any)
		version, _ := meta["versionId"].(string)
		if strings.Contains(full, "/_history/") {
			w.addAt("invariant", at+".fullUrl", "fullUrl %q is version specific; it must name the resource, not a version (bdl-8)", short(full))
		}
		if !absoluteURI(full) {
			w.addAt("value", at+".fullUrl", "fullUrl %q is not an absolute URL, urn:uuid: or urn:oid:", short(full))
			continue
		}
		if t, id, ok := restTail(full); ok && res != nil && (t != rtype || (rid != "" && id != rid)) {
			w.addAt("invariant", at+".fullUrl", "fullUrl %q looks like a RESTful URL, so it must end with the resource's type and id (%s/%s)",
				short(full), rtype, rid)
		}
		byFullURL[full] = append(byFullURL[full], seenEntry{i, version})
	}

	// bdl-7: a fullUrl appears once, or its entries differ in versionId.
	if typ != "history" {
		for full, es := range byFullURL {
			seen := make(map[string]bool, len(es))
			for _, e := range es {
				if seen[e.version] {
					w.addAt("invariant", base+".entry["+strconv.Itoa(e.index)+"].fullUrl",
						"fullUrl %q appears more than once with the same versionId (bdl-7)", short(full))
				}
				seen[e.version] = true
			}
		}
	}

	// References between entries. A reference that names an entry of this
	// Bundle must name exactly one (a version among several, or the only
	// one); a urn:uuid: or urn:oid: reference means an entry of this Bundle
	// and nothing else. Other references may point at a server and are not
	// followed. A history Bundle holds several versions of one resource by
	// design, and a searchset need not include what its entries refer to.
	if typ == "history" || typ == "searchset" {
		return
	}
	for i, raw := range entries {
		e, _ := raw.(map[string]any)
		sc := w.entryScopes[base+".entry["+strconv.Itoa(i)+"].resource"]
		if e == nil || sc == nil {
			continue
		}
		from, _ := e["fullUrl"].(string)
		for _, r := range sc.refs {
			target, version := resolveInBundle(r.value, from)
			if target == "" {
				continue
			}
			matches := byFullURL[target]
			urn := strings.HasPrefix(target, "urn:")
			switch {
			case len(matches) == 0 && urn:
				w.addAt("invalid", r.path, "%q is not the fullUrl of any entry in the Bundle", short(r.value))
			case len(matches) == 0:
			case version != "":
				found := false
				for _, m := range matches {
					found = found || m.version == version || m.version == ""
				}
				if !found {
					w.addAt("invalid", r.path, "the Bundle has %q, but not version %q of it", short(target), version)
				}
			case len(matches) > 1:
				w.addAt("invalid", r.path, "%q matches %d entries of the Bundle; name the version", short(r.value), len(matches))
			case urn && r.targets != nil:
				// The type a urn names is its entry's: the element must
				// allow it, as it must a Type/id's (walker.reference).
				e, _ := entries[matches[0].index].(map[string]any)
				res, _ := e["resource"].(map[string]any)
				if rt, _ := res["resourceType"].(string); rt != "" && !slices.Contains(r.targets, rt) {
					w.addAt("value", r.path, "%q is the Bundle's %s: %s refers to %s", short(r.value), rt, r.elem, orList(r.targets))
				}
			}
		}
	}
}

// absoluteURI: a fullUrl is absolute (R4 Bundle.entry.fullUrl): a URL with
// a scheme and a host, or a urn:uuid: / urn:oid:.
func absoluteURI(s string) bool {
	switch {
	case strings.HasPrefix(s, "urn:uuid:"):
		return isUUID(s[len("urn:uuid:"):])
	case strings.HasPrefix(s, "urn:oid:"):
		return isOID(s[len("urn:oid:"):])
	}
	u, err := url.Parse(s)
	// Characters a URI cannot hold (RFC 3986; url.Parse lets them through).
	return err == nil && u.Scheme != "" && u.Host != "" && !strings.ContainsAny(s, " \t\r\n<>\"`{}|\\^")
}

// restTail splits a RESTful URL ".../Type/id" into Type and id, when the
// second-last segment is an R4 resource type.
func restTail(s string) (typ, id string, ok bool) {
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return "", "", false
	}
	s, _, _ = strings.Cut(s, "?")
	parts := strings.Split(s, "/")
	if len(parts) < 5 { // "http:", "", host, Type, id
		return "", "", false
	}
	typ, id = parts[len(parts)-2], parts[len(parts)-1]
	if !conformance.IsResourceType(typ) {
		return "", "", false
	}
	return typ, id, true
}

// resolveInBundle turns a reference made in an entry with fullUrl from into
// the fullUrl it would have in this Bundle, and the version it names. A
// relative reference resolves against the RESTful base of from; with no
// such base (from is a urn, or absent) it cannot be resolved here.
func resolveInBundle(ref, from string) (target, version string) {
	switch {
	case strings.HasPrefix(ref, "urn:uuid:"), strings.HasPrefix(ref, "urn:oid:"):
		return ref, ""
	case strings.HasPrefix(ref, "#"), strings.Contains(ref, "?"):
		return "", "" // contained, or conditional: not an entry's fullUrl
	}
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		if i := strings.Index(ref, "/_history/"); i >= 0 {
			return ref[:i], ref[i+len("/_history/"):]
		}
		return ref, ""
	}
	t, id, ok := restTail(from)
	if !ok {
		return "", ""
	}
	root := strings.TrimSuffix(from, "/"+t+"/"+id)
	parts := strings.Split(ref, "/")
	if len(parts) == 4 {
		return root + "/" + parts[0] + "/" + parts[1], parts[3]
	}
	return root + "/" + ref, ""
}
