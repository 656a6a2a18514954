package interaction

import (
	"context"
	"net/url"
	"strings"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/store"
)

// criteria parses the search criteria of a conditional interaction (what
// says which, for messages). It is stricter than a search: an unknown or
// unsupported parameter is an error, never ignored, because ignoring it
// would widen the match; criteria that select nothing (no parameters, or
// only _count and the like) are an error too, never "every resource"; and
// result parameters (_sort, _include, _cursor ...) have no meaning here.
func (s *Service) criteria(typ string, params url.Values, what string) (*search.Query, error) {
	if err := CheckType(typ); err != nil {
		return nil, err
	}
	if !s.registry.Searchable(typ) {
		return nil, fhir.Errorf(fhir.Invalid, "not-supported", "%s needs search on %s, which this server does not index: searchable types are %s", what, typ, strings.Join(search.SearchTypes, ", "))
	}
	for k := range params {
		if k == "_format" || k == "_pretty" {
			delete(params, k) // response formatting, not criteria
		}
	}
	if len(params) == 0 {
		return nil, fhir.Errorf(fhir.Invalid, "required", "%s without search parameters would match every %s: give criteria such as identifier=system|value", what, typ)
	}
	q, err := search.ParseQuery(s.registry, typ, params, true)
	if err != nil {
		return nil, err
	}
	s.localReferences(q)
	switch {
	case len(q.Conditions)+len(q.Chains)+len(q.Has) == 0:
		return nil, fhir.Errorf(fhir.Invalid, "required", "%s has no search criteria, only result parameters: it would match every %s", what, typ)
	case len(q.Sort) > 0 || len(q.Include) > 0 || len(q.RevInclude) > 0 || q.Cursor != "" || q.Summary != "" || len(q.Elements) > 0:
		return nil, fhir.Errorf(fhir.Invalid, "not-supported", "%s takes search criteria only, not _sort, _include, _revinclude, _cursor, _summary or _elements", what)
	}
	return q, nil
}

// criteriaString parses criteria written as a query string, as in
// If-None-Exist and conditional references; a leading "Type?" or "?" is
// allowed.
func (s *Service) criteriaString(typ, raw, what string) (*search.Query, error) {
	raw = strings.TrimPrefix(strings.TrimPrefix(raw, typ), "?")
	params, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "value", "%s %q is not a query string: %v", what, echo(raw), err)
	}
	return s.criteria(typ, params, what)
}

// matchLive answers criteria inside tx: the ids of the current matches,
// leaving out those the same transaction deletes.
func (s *Service) matchLive(ctx context.Context, p auth.Principal, tx store.Tx, q *search.Query, deleting map[string]bool) ([]string, error) {
	if err := criteriaAllowed(p, q.Type); err != nil {
		return nil, err
	}
	ids, err := s.matchIDs(ctx, p, tx, q)
	if err != nil {
		return nil, err
	}
	out := ids[:0:0]
	for _, id := range ids {
		if !deleting[q.Type+"/"+id] {
			out = append(out, id)
		}
	}
	return out, nil
}

func severalMatch(what string, n int, typ string) error {
	return fhir.Errorf(fhir.PreconditionFailed, "multiple-matches", "%s matches %d %s resources: the criteria must select exactly one", what, n, typ)
}

// echo bounds how much of a client's value a message repeats.
func echo(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// criteriaAllowed checks that p may search typ, as conditional criteria
// (of a create, update, patch, delete or reference) do. Without the search
// scope, a conditional create would tell a caller that may only create
// whether a record matches, and hand back the one that does; or, where
// matches are filtered by the caller's scopes, find none and write a
// duplicate.
func criteriaAllowed(p auth.Principal, typ string) error {
	if p.Allows(typ, auth.PermSearch) {
		return nil
	}
	return fhir.Errorf(fhir.Forbidden, "forbidden", "conditional criteria on %s are a search: they need scope %s", typ, auth.Needed(typ, auth.PermSearch))
}
