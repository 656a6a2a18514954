package interaction

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"healthhub/auth"
	"healthhub/conformance"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/store"
)

// Conditional references in imported lines ("Practitioner?identifier=
// http://hl7.org/fhir/sid/us-npi|9999994392", as Synthea writes them) are
// resolved to Type/id before a line is stored: a stored reference must
// name one resource, now, not a search whose answer can change. Exactly one
// match resolves it; several make the line invalid; none defers the line to
// the second pass (Importer.Finish), by which time everything else of the
// run is committed, and makes it invalid there.
//
// What a reference can match is what the store held before the run plus
// what the run has accepted so far, including lines of the chunk not yet
// committed. For the types conditional references name in practice
// (runTracked), the common form, identifier=system|value, is answered from
// a map of the run's identifiers plus the store (its search index, or for
// a type without one, such as Location, its stored resources read once).
// Everything else goes through the search index alone, so its targets must
// be committed: the second pass sees them.

// runTracked are the types whose identifiers an import run keeps in memory
// (the directory resources and patients that clinical data points at):
// keeping every line's would cost memory in proportion to the whole
// import, and clinical resources are rarely the target of a conditional
// reference.
var runTracked = map[string]bool{
	"Organization": true, "Location": true, "Practitioner": true, "PractitionerRole": true,
	"Patient": true, "RelatedPerson": true, "Device": true, "Medication": true,
	"HealthcareService": true, "Endpoint": true, "Group": true, "Substance": true,
}

// condRef is one conditional reference in a line's body.
type condRef struct {
	member     string // the top-level member holding it
	typ, query string
	target     string // the resolved id
}

// refResolver resolves the conditional references of one import run.
type refResolver struct {
	s       *Service
	p       auth.Principal
	seen    map[string][]string // "Type|system|value" -> ids the run accepted (runTracked types)
	written map[string]bool     // "Type/id" the run accepted (runTracked types)
	stored  map[string][]string // "Type|system|value" -> ids in the store (a cache; runTracked types)
	// unindexed: per type without a search index, "system|value" -> ids
	// of its stored resources, read once.
	unindexed map[string]map[string][]string
}

func newRefResolver(s *Service, p auth.Principal) *refResolver {
	return &refResolver{s: s, p: p, seen: map[string][]string{}, written: map[string]bool{}, stored: map[string][]string{}, unindexed: map[string]map[string][]string{}}
}

// accept records a line as part of the run: later conditional references
// may resolve to it.
func (r *refResolver) accept(l *importLine) {
	if !runTracked[l.typ] {
		return
	}
	r.written[l.typ+"/"+l.id] = true
	for _, ident := range l.idents {
		key := l.typ + "|" + ident
		if !slices.Contains(r.seen[key], l.id) {
			r.seen[key] = append(r.seen[key], l.id)
		}
	}
}

// forget undoes accept: the line will not be committed in this flush.
func (r *refResolver) forget(l *importLine) {
	if !runTracked[l.typ] {
		return
	}
	delete(r.written, l.typ+"/"+l.id)
	for _, ident := range l.idents {
		key := l.typ + "|" + ident
		r.seen[key] = slices.DeleteFunc(r.seen[key], func(id string) bool { return id == l.id })
	}
}

// resolveChunk resolves the references of a chunk's valid lines, setting
// each line's targets, its err, or waits.
func (r *refResolver) resolveChunk(ctx context.Context, chunk []*importLine) error {
	return r.s.store.View(ctx, func(tx store.Tx) error {
		var waiting []*importLine
		for _, l := range chunk {
			switch {
			case l.err != nil:
			case len(l.refs) == 0:
				r.accept(l)
			default:
				waiting = append(waiting, l)
			}
		}
		// A line whose references resolve becomes a target for the others;
		// repeat while that helps, so lines of a chunk may refer to each
		// other in any order.
		for progress := true; progress && len(waiting) > 0; {
			progress = false
			rest := waiting[:0]
			for _, l := range waiting {
				done, err := r.resolveLine(ctx, tx, l)
				if err != nil {
					return err
				}
				if !done {
					rest = append(rest, l)
					continue
				}
				progress = true
				if l.err == nil {
					r.accept(l)
				}
			}
			waiting = rest
		}
		for _, l := range waiting {
			if !l.final {
				l.waits = true
				continue
			}
			for _, ref := range l.refs {
				if ref.target == "" {
					l.err = fhir.Errorf(fhir.Invalid, "not-found", "conditional reference %q matches no resource", ref.typ+"?"+ref.query)
					break
				}
			}
		}
		return nil
	})
}

// resolveLine tries every reference of l: done when all resolved or one
// failed (l.err). An error return is a store failure.
func (r *refResolver) resolveLine(ctx context.Context, tx store.Tx, l *importLine) (done bool, err error) {
	done = true
	for i := range l.refs {
		ref := &l.refs[i]
		ids, err := r.lookup(ctx, tx, ref)
		if err != nil {
			if fhir.KindOf(err) == fhir.Internal {
				return false, err
			}
			l.err = err
			return true, nil
		}
		switch len(ids) {
		case 0:
			done = false
		case 1:
			ref.target = ids[0]
		default:
			l.err = fhir.Errorf(fhir.Invalid, "multiple-matches", "conditional reference %q matches %d resources (%s/%s, %s/%s ...): it must match exactly one",
				ref.typ+"?"+ref.query, len(ids), ref.typ, ids[0], ref.typ, ids[1])
			return true, nil
		}
	}
	return done, nil
}

// checkCriteria reports the faults of a conditional reference's criteria
// that do not depend on what is stored: lookup would fail on them.
func (s *Service) checkCriteria(ref condRef) error {
	vals, err := url.ParseQuery(ref.query)
	if err != nil {
		return fhir.Errorf(fhir.Invalid, "invalid", "conditional reference %q: %v", ref.typ+"?"+ref.query, err)
	}
	if _, ok := identifierOnly(vals); ok && runTracked[ref.typ] || !s.registry.Searchable(ref.typ) {
		return nil // lookup's own answer
	}
	_, err = s.criteria(ref.typ, vals, "the conditional reference "+strconv.Quote(echo(ref.typ+"?"+ref.query)))
	return err
}

// lookup returns the ids of ref.typ the criteria match now.
func (r *refResolver) lookup(ctx context.Context, tx store.Tx, ref *condRef) ([]string, error) {
	if err := criteriaAllowed(r.p, ref.typ); err != nil {
		return nil, err
	}
	vals, err := url.ParseQuery(ref.query)
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "conditional reference %q: %v", ref.typ+"?"+ref.query, err)
	}
	if sysval, ok := identifierOnly(vals); ok && runTracked[ref.typ] {
		stored, err := r.storedByIdentifier(ctx, tx, ref.typ, sysval)
		if err != nil {
			return nil, err
		}
		ids := slices.Clone(r.seen[ref.typ+"|"+sysval])
		for _, id := range stored {
			// What the run wrote is in seen, with its new identifiers.
			if !r.written[ref.typ+"/"+id] && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		return ids, nil
	}
	if !r.s.registry.Searchable(ref.typ) {
		return nil, fhir.Errorf(fhir.Invalid, "not-supported", "conditional reference %q: %s has no search index here; conditional references resolve through the search index, or for %s by identifier=system|value", ref.typ+"?"+ref.query, ref.typ, trackedList())
	}
	// As a transaction's conditional reference: real criteria, or an error
	// (only _count or _format would match every resource of the type).
	q, err := r.s.criteria(ref.typ, vals, "the conditional reference "+strconv.Quote(echo(ref.typ+"?"+ref.query)))
	if err != nil {
		return nil, err
	}
	return r.s.matchIDs(ctx, r.p, tx, q)
}

func trackedList() string {
	types := slices.Sorted(maps.Keys(runTracked))
	return strings.Join(types, ", ")
}

// identifierOnly recognizes criteria that are one identifier=system|value
// without search escapes, the form the run's identifier map answers.
func identifierOnly(vals url.Values) (string, bool) {
	v := vals["identifier"]
	if len(vals) != 1 || len(v) != 1 || strings.ContainsAny(v[0], `\,$`) {
		return "", false
	}
	sys, val, ok := strings.Cut(v[0], "|")
	return v[0], ok && sys != "" && val != ""
}

// storedByIdentifier returns the ids of typ in the store with the
// identifier system|value, through the search index when typ has one.
func (r *refResolver) storedByIdentifier(ctx context.Context, tx store.Tx, typ, sysval string) ([]string, error) {
	key := typ + "|" + sysval
	if ids, ok := r.stored[key]; ok {
		return ids, nil
	}
	var ids []string
	if r.s.registry.Searchable(typ) {
		q, err := search.ParseQuery(r.s.registry, typ, url.Values{"identifier": {sysval}}, true)
		if err != nil {
			return nil, err
		}
		if ids, err = r.s.matchIDs(ctx, r.p, tx, q); err != nil {
			return nil, err
		}
	} else {
		byIdent, ok := r.unindexed[typ]
		if !ok {
			var err error
			if byIdent, err = storedIdentifiers(ctx, tx, typ); err != nil {
				return nil, err
			}
			r.unindexed[typ] = byIdent
		}
		ids = byIdent[sysval]
	}
	r.stored[key] = ids
	return ids, nil
}

// storedIdentifiers reads the identifiers of every current resource of a
// type that has no search index (once per run and type).
func storedIdentifiers(ctx context.Context, tx store.Tx, typ string) (map[string][]string, error) {
	out := map[string][]string{}
	var ids []string
	if err := tx.ScanIDs(ctx, typ, func(id string) bool { ids = append(ids, id); return true }); err != nil {
		return nil, err
	}
	for _, id := range ids {
		res, err := tx.Current(typ, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if res.Deleted {
			continue
		}
		obj, err := fhir.ParseObject(res.JSON)
		if err != nil {
			return nil, err
		}
		for _, ident := range identifiers(obj) {
			out[ident] = append(out[ident], id)
		}
	}
	return out, nil
}

// conditionalRefs finds the conditional references (Type?criteria) in b,
// the value of the top-level member named member.
func conditionalRefs(member string, b []byte) []condRef {
	var out []condRef
	w := refWalker{data: b, visit: func(_, _ int, ref string) {
		if typ, q, ok := strings.Cut(ref, "?"); ok && conformance.IsResourceType(typ) {
			out = append(out, condRef{member: member, typ: typ, query: q})
		}
	}}
	w.value(0)
	return out
}
