package interaction

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/store"
)

// EverythingRequest is Patient/{id}/$everything.
type EverythingRequest struct {
	ID     string
	Since  time.Time // _since: only what was last updated at or after; zero: no bound
	Types  []string  // _type: only these types; nil: every type
	Count  int       // _count: the page size (DefaultEverythingCount when 0)
	Cursor string    // _cursor, from a next link
}

// Page sizes of $everything. The whole result has no cap: a client pages
// through it (an emergency department wants all of it). Pages are larger
// than search's because a client asking for everything wants few round
// trips.
const (
	DefaultEverythingCount = 100
	MaxEverythingCount     = 5000
)

// everythingIncludes are the types a compartment resource may refer to
// that $everything returns beside it (search mode include): shared
// directory resources, not patient data. References to the compartment's
// own types are left alone: what is the patient's is a match anyway, and
// what is another patient's must not come in.
var everythingIncludes = []string{"Organization", "Practitioner", "PractitionerRole", "Location", "Medication"}

// Everything returns one page of Patient/{id}/$everything: the patient
// (and the patients linked to it), every resource of the patient
// compartment among the indexed types, found through the reference index,
// and on each page the Organizations, Practitioners ... its resources refer
// to. The first page freezes the result list (like a search), so following
// next visits every resource once.
func (s *Service) Everything(ctx context.Context, p auth.Principal, req EverythingRequest) (*SearchPage, error) {
	if err := checkID("Patient", req.ID); err != nil {
		return nil, err
	}
	for _, t := range req.Types {
		if err := CheckType(t); err != nil {
			return nil, fhir.Errorf(fhir.Invalid, "value", "_type: %q is not an R4 resource type", t)
		}
	}
	if err := s.ownPatient(ctx, p, req.ID); err != nil {
		return nil, err
	}
	count := req.Count
	if count <= 0 {
		count = DefaultEverythingCount
	}
	count = min(count, MaxEverythingCount)
	// The page's query carries what the links repeat.
	q := &search.Query{Type: "Patient", Count: count, SelfParams: url.Values{}}
	if !req.Since.IsZero() {
		q.SelfParams.Set("_since", req.Since.UTC().Format(time.RFC3339Nano))
	}
	if len(req.Types) > 0 {
		q.SelfParams.Set("_type", strings.Join(req.Types, ","))
	}
	if req.Count > 0 {
		q.SelfParams.Set("_count", strconv.Itoa(count))
	}
	page := &SearchPage{Query: q}
	scope := snapshotScope(p, "Patient/"+req.ID+"/$everything") // a cursor serves this patient, for this principal
	var keys []string
	if req.Cursor != "" {
		snap, offset, ok := s.pages.get(req.Cursor, scope)
		if !ok {
			return nil, fhir.Errorf(fhir.Gone, "not-found", "the paging cursor %q has expired or is unknown: ask for $everything again", req.Cursor)
		}
		keys, page.Offset, page.Snapshot = snap, offset, strings.SplitN(req.Cursor, ".", 2)[0]
	}
	err := s.store.View(ctx, func(tx store.Tx) error {
		if keys == nil {
			var err error
			if keys, err = s.everythingKeys(ctx, p, tx, req); err != nil {
				return err
			}
		}
		page.Total = len(keys)
		if err := loadPage(tx, "", keys, page, count); err != nil {
			return err
		}
		var err error
		page.Included, err = s.everythingIncluded(p, tx, page.Matches, req.Types)
		return err
	})
	if err != nil {
		return nil, err
	}
	if page.Next && page.Snapshot == "" {
		page.Snapshot = s.pages.put(scope, keys)
	}
	return page, nil
}

// everythingKeys lists Type/id of every resource of the result, the
// patients first, then type by type in id order.
func (s *Service) everythingKeys(ctx context.Context, p auth.Principal, tx store.Tx, req EverythingRequest) ([]string, error) {
	pat, err := tx.Current("Patient", req.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound("Patient", req.ID)
	case err != nil:
		return nil, err
	case pat.Deleted:
		return nil, gone(pat)
	}
	wanted := func(typ string) bool { return req.Types == nil || slices.Contains(req.Types, typ) }
	// since filters on the record's own lastUpdated: cheaper than the
	// _lastUpdated index as a post-filter, which extracts every candidate.
	since := func(r *fhir.Resource) bool { return req.Since.IsZero() || !r.LastUpdated.Before(req.Since) }

	var keys []string
	if wanted("Patient") {
		linked, err := s.linkedPatients(tx, req.ID)
		if err != nil {
			return nil, err
		}
		for _, id := range linked {
			r, err := tx.Current("Patient", id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if !r.Deleted && since(r) && s.visible(tx, p, r) {
				keys = append(keys, r.Path())
			}
		}
	}
	for _, c := range patientCompartment {
		// matchIDs applies visible to each resource only when visibleAll is
		// off (a type the principal is confined for, later consent); the
		// scopes are decided here, per type.
		if !wanted(c.typ) || !s.registry.Searchable(c.typ) || !typeVisible(p, c.typ) {
			continue
		}
		var ids []string
		for _, param := range c.params {
			if _, ok := s.registry.Lookup(c.typ, param); !ok {
				continue
			}
			// Through matchIDs, so linkedPatients widens the patient and
			// visible applies, as in a search.
			q, err := search.ParseQuery(s.registry, c.typ, url.Values{param: {"Patient/" + req.ID}}, true)
			if err != nil {
				return nil, err
			}
			s.localReferences(q)
			found, err := s.matchIDs(ctx, p, tx, q)
			if err != nil {
				return nil, err
			}
			ids = append(ids, found...)
		}
		slices.Sort(ids)
		for i, id := range slices.Compact(ids) {
			if i%256 == 255 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			if !req.Since.IsZero() {
				r, err := tx.Current(c.typ, id)
				if err != nil || r.Deleted || !since(r) {
					continue
				}
			}
			keys = append(keys, c.typ+"/"+id)
		}
	}
	return keys, nil
}

// everythingIncluded returns the resources of everythingIncludes types
// (and of types, when given: _type limits every resource returned) that the
// page's resources refer to, each once.
func (s *Service) everythingIncluded(p auth.Principal, tx store.Tx, matches []*fhir.Resource, types []string) ([]*fhir.Resource, error) {
	seen := map[string]bool{}
	var out []*fhir.Resource
	var err error
	for _, m := range matches {
		w := refWalker{data: m.JSON, visit: func(_, _ int, ref string) {
			typ, id, ok := strings.Cut(ref, "/")
			if !ok || err != nil || seen[ref] || !slices.Contains(everythingIncludes, typ) || strings.Contains(id, "/") ||
				types != nil && !slices.Contains(types, typ) {
				return
			}
			seen[ref] = true
			r, e := tx.Current(typ, id)
			switch {
			case errors.Is(e, store.ErrNotFound):
			case e != nil:
				err = e
			case !r.Deleted && s.visible(tx, p, r):
				out = append(out, r)
			}
		}}
		w.value(0)
	}
	return out, err
}
