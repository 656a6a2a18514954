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
// and the Organizations, Practitioners ... those resources refer to. The
// first page freezes the result list (like a search), the referenced
// resources after the compartment's, so following next visits every
// resource once. _type and _since select among all of them: _type=Organization
// answers the organizations the record refers to.
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
	page := &SearchPage{Query: q}
	// A cursor serves this patient, for this principal, with the same
	// _type and _since (they chose what the snapshot holds); _count may
	// change from page to page, as in search.
	scope := snapshotScope(p, "Patient/"+req.ID+"/$everything?"+q.SelfParams.Encode())
	if req.Count > 0 {
		q.SelfParams.Set("_count", strconv.Itoa(count))
	}
	var keys []string
	if req.Cursor != "" {
		snap, offset, ok := s.pages.get(req.Cursor, scope)
		if !ok {
			return nil, fhir.Errorf(fhir.Gone, "not-found", "the paging cursor %q has expired or is unknown: ask for $everything again", req.Cursor)
		}
		keys, page.Offset, page.Snapshot = snap, offset, strings.SplitN(req.Cursor, ".", 2)[0]
	}
	err := s.store.View(ctx, func(tx store.Tx) error {
		if keys != nil { // a later page: the record's patient must still be there
			switch pat, err := tx.Current("Patient", req.ID); {
			case errors.Is(err, store.ErrNotFound):
				return notFound("Patient", req.ID)
			case err != nil:
				return err
			case pat.Deleted:
				return gone(pat)
			}
		}
		if keys == nil {
			var err error
			if keys, err = s.everythingKeys(ctx, p, tx, req); err != nil {
				return err
			}
		}
		if err := s.loadEverythingPage(tx, p, keys, page, count); err != nil {
			return err
		}
		if !selective(req) {
			var err error
			page.Included, err = s.everythingIncluded(p, tx, page.Matches)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if page.Next && page.Snapshot == "" {
		page.Snapshot = s.pages.put(scope, keys)
	}
	return page, nil
}

// selective: _type or _since choose among the result, referenced
// resources included, so the result lists those too (everythingKeys).
// Without them, each page brings what its own matches refer to, which
// reads no resource twice.
func selective(req EverythingRequest) bool { return req.Types != nil || !req.Since.IsZero() }

// everythingKeys lists the result: Type/id of each match, the patients
// first, then type by type in id order; then, when the request is
// selective, marked includedKey, each resource they refer to of the
// everythingIncludes types (a version-specific reference as
// Type/id/_history/v), in reference order. _type and _since select among
// them; the references are those of the whole compartment.
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
	since := func(r *fhir.Resource) bool { return req.Since.IsZero() || !r.LastUpdated.Before(req.Since) }
	wantIncludes := selective(req) && slices.ContainsFunc(everythingIncludes, wanted)

	var keys, refs []string
	seenRef := map[string]bool{}
	// source: a resource of the record; its references are walked when an
	// included type is wanted.
	source := func(r *fhir.Resource) {
		if wanted(r.Type) && since(r) {
			keys = append(keys, r.Path())
		}
		if !wantIncludes {
			return
		}
		w := refWalker{data: r.JSON, visit: func(_, _ int, ref string) {
			if key, ok := s.includeKey(ref); ok && !seenRef[key] {
				seenRef[key] = true
				refs = append(refs, key)
			}
		}}
		w.value(0)
	}
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
		if !r.Deleted && s.visible(tx, p, r) {
			source(r)
		}
	}
	for _, c := range patientCompartment {
		// matchIDs applies visible to each resource only when visibleAll is
		// off (a type the principal is confined for, later consent); the
		// scopes are decided here, per type.
		if !(wanted(c.typ) || wantIncludes) || !s.registry.Searchable(c.typ) || !typeVisible(p, c.typ) {
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
			if req.Since.IsZero() && !wantIncludes {
				keys = append(keys, c.typ+"/"+id) // no need to read it
				continue
			}
			r, err := tx.Current(c.typ, id)
			if err != nil || r.Deleted {
				continue
			}
			source(r)
		}
	}
	versions := map[string]bool{} // Type/id@version read: Practitioner/x and Practitioner/x/_history/1 may be one
	for _, ref := range refs {
		typ, rest, _ := strings.Cut(ref, "/")
		if !wanted(typ) {
			continue
		}
		r, err := readRef(tx, typ, rest)
		if err != nil {
			return nil, err
		}
		if r != nil && !r.Deleted && since(r) && s.visible(tx, p, r) && !versions[versionKey(r)] {
			versions[versionKey(r)] = true
			keys = append(keys, includedKey+ref)
		}
	}
	return keys, nil
}

// includedKey marks a key of the $everything result that is there because
// the record refers to it (search mode include).
const includedKey = "+"

// includeKey is the key a reference found in a record's resource stands
// for when it names a resource of an everythingIncludes type on this server:
// Type/id, or Type/id/_history/v for a version-specific one. An absolute
// reference under this server's base counts; others do not.
func (s *Service) includeKey(ref string) (string, bool) {
	r := s.localRef(search.ParseReference(ref))
	if !r.Local() || !slices.Contains(everythingIncludes, r.ResourceType) || !fhir.ValidID(r.ID) {
		return "", false
	}
	key := r.ResourceType + "/" + r.ID
	if r.Version != "" {
		key += "/_history/" + r.Version
	}
	return key, true
}

// everythingIncluded returns the resources of everythingIncludes types
// that the page's matches refer to, each once.
func (s *Service) everythingIncluded(p auth.Principal, tx store.Tx, matches []*fhir.Resource) ([]*fhir.Resource, error) {
	seen := map[string]bool{}     // references followed
	versions := map[string]bool{} // what they brought: one version once
	var out []*fhir.Resource
	var err error
	for _, m := range matches {
		w := refWalker{data: m.JSON, visit: func(_, _ int, ref string) {
			key, ok := s.includeKey(ref)
			if !ok || err != nil || seen[key] {
				return
			}
			seen[key] = true
			typ, rest, _ := strings.Cut(key, "/")
			r, e := readRef(tx, typ, rest)
			switch {
			case e != nil:
				err = e
			case r != nil && !r.Deleted && s.visible(tx, p, r) && !versions[versionKey(r)]:
				versions[versionKey(r)] = true
				out = append(out, r)
			}
		}}
		w.value(0)
	}
	return out, err
}

func versionKey(r *fhir.Resource) string { return r.Path() + "@" + strconv.FormatUint(r.VersionID, 10) }

// readRef reads id (or id/_history/v) of typ; nil when there is none.
func readRef(tx store.Tx, typ, idVersion string) (*fhir.Resource, error) {
	id, version, versioned := strings.Cut(idVersion, "/_history/")
	var r *fhir.Resource
	var err error
	if versioned {
		v, perr := strconv.ParseUint(version, 10, 64)
		if perr != nil || v == 0 {
			return nil, nil
		}
		r, err = tx.Version(typ, id, v)
	} else {
		r, err = tx.Current(typ, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return r, err
}

// loadEverythingPage reads one page of an $everything result: matches and,
// marked includedKey, included resources (by version when the key names
// one). What was deleted since the snapshot is left out. Total counts the
// matches only, as a searchset's does.
func (s *Service) loadEverythingPage(tx store.Tx, p auth.Principal, keys []string, page *SearchPage, count int) error {
	page.Total = 0
	for _, k := range keys {
		if !strings.HasPrefix(k, includedKey) {
			page.Total++
		}
	}
	end := min(page.Offset+count, len(keys))
	for _, key := range keys[min(page.Offset, end):end] {
		included := strings.HasPrefix(key, includedKey)
		typ, rest, _ := strings.Cut(strings.TrimPrefix(key, includedKey), "/")
		r, err := readRef(tx, typ, rest)
		if err != nil {
			return err
		}
		if r == nil || r.Deleted || !s.visible(tx, p, r) { // as loadPage: what p may see now
			continue
		}
		if included {
			page.Included = append(page.Included, r)
		} else {
			page.Matches = append(page.Matches, r)
		}
	}
	page.Next = end < len(keys)
	return nil
}
