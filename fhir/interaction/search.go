package interaction

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/store"
)

// SearchPage is one page of a search.
type SearchPage struct {
	Query    *search.Query
	Matches  []*fhir.Resource // this page, in order
	Included []*fhir.Resource // _include / _revinclude results for this page
	Total    int              // every match; -1 when not reported (_total=none)
	Offset   int              // of Matches[0] in the whole result
	// Snapshot names the frozen result list the paging links walk; empty
	// when everything fits this page, or when the search is keyset-paged.
	Snapshot string
	// NextCursor is the _cursor of the next page of a keyset-paged search
	// (keyset.go); empty on the last page.
	NextCursor string
	Next       bool // a later page exists
}

// Search runs a type-level search, or a system-level one when typ is ""
// (over the types in _type, with the parameters they share). params is the
// query string (or the POST _search form); strict is Prefer: handling=strict.
func (s *Service) Search(ctx context.Context, p auth.Principal, typ string, params url.Values, strict bool) (*SearchPage, error) {
	if typ != "" {
		if err := CheckType(typ); err != nil {
			return nil, err
		}
		if !s.registry.Searchable(typ) {
			return nil, fhir.Errorf(fhir.NotFound, "not-supported", "search is not supported on %s: searchable types are %s", typ, strings.Join(search.SearchTypes, ", "))
		}
	}
	q, err := search.ParseQuery(s.registry, typ, params, strict)
	if err != nil {
		return nil, err
	}
	s.localReferences(q)
	page := &SearchPage{Query: q, Total: -1}
	var ids []string
	if q.Cursor != "" && !isKeysetCursor(q.Cursor) {
		snap, offset, ok := s.pages.get(q.Cursor, snapshotScope(p, snapshotBase(typ, q)))
		if !ok {
			return nil, unknownCursor(q.Cursor)
		}
		ids, page.Offset, page.Snapshot = snap, offset, strings.SplitN(q.Cursor, ".", 2)[0]
	}
	err = s.store.View(ctx, func(tx store.Tx) error {
		if ids == nil {
			sc, keyset, err := s.keysetScan(tx, p, q)
			if err != nil {
				return err
			}
			if keyset {
				return s.keysetPage(ctx, p, tx, q, sc, page)
			}
			if q.Cursor != "" {
				return unknownCursor(q.Cursor) // a keyset cursor, for another query
			}
			if ids, err = s.matchAll(ctx, p, tx, q); err != nil {
				return err
			}
		}
		if q.Total != search.TotalNone || q.CountOnly() {
			page.Total = len(ids)
		}
		if q.CountOnly() {
			return nil
		}
		if err := s.loadPage(tx, p, typ, ids, page, q.Count); err != nil {
			return err
		}
		inc, err := s.includes(ctx, p, tx, q, page.Matches)
		page.Included = inc
		return err
	})
	if err != nil {
		return nil, err
	}
	if page.Next && page.Snapshot == "" && page.NextCursor == "" {
		page.Snapshot = s.pages.put(snapshotScope(p, snapshotBase(typ, q)), ids)
	}
	return page, nil
}

// snapshotBase names the search a snapshot holds the result of: the type
// and the parameters that choose and order the matches, so that a cursor
// put on another search answers 410 instead of serving this one's matches.
// What only shapes a page (_count, _format, _pretty, _elements, _summary,
// _total, _include, _revinclude) may change from page to page.
func snapshotBase(typ string, q *search.Query) string {
	v := url.Values{}
	for k, vs := range q.SelfParams {
		switch k {
		case "_cursor", "_count", "_format", "_pretty", "_elements", "_summary", "_total":
			continue
		}
		if strings.HasPrefix(k, "_include") || strings.HasPrefix(k, "_revinclude") {
			continue
		}
		v[k] = vs
	}
	return typ + "?" + v.Encode()
}

// loadPage reads the resources of one page of a snapshot, ids[page.Offset:]
// up to count of them, into page.Matches, and sets page.Next. typ is the
// type of every id; "" when the ids are Type/id paths (system level).
// What was deleted since the snapshot was taken is left out, and so is
// what p may no longer see: for a principal confined to a patient, a
// resource refiled to another patient since (a compartment depends on the
// data, not only on the scopes the snapshot was taken for).
func (s *Service) loadPage(tx store.Tx, p auth.Principal, typ string, ids []string, page *SearchPage, count int) error {
	end := min(page.Offset+count, len(ids))
	for _, key := range ids[min(page.Offset, end):end] {
		rtyp, id := typ, key
		if typ == "" {
			rtyp, id, _ = strings.Cut(key, "/")
		}
		r, err := tx.Current(rtyp, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !r.Deleted && s.visible(tx, p, r) {
			page.Matches = append(page.Matches, r)
		}
	}
	page.Next = end < len(ids)
	return nil
}

// visible is where consent will decide, per resource, before paging and
// before the total is counted. For now it applies the scopes: a resource
// pulled in by _include or _revinclude, or from a type a system search
// spans, shows only to a caller with a read or search scope for its type;
// and to a caller confined to a patient's compartment for its type, only
// when it is in that compartment. A failure to decide hides the resource
// (deny by default).
func (s *Service) visible(tx store.Tx, p auth.Principal, r *fhir.Resource) bool {
	if !typeVisible(p, r.Type) {
		return false
	}
	ok, err := s.shown(tx, p, r)
	return err == nil && ok
}

// typeVisible is the scope half of visible, which depends on the type
// alone: callers that list a whole type from the index ($everything) ask it
// once per type.
func typeVisible(p auth.Principal, typ string) bool {
	return p.Allows(typ, auth.PermRead) || p.Allows(typ, auth.PermSearch)
}

// visibleAll reports that visible passes every resource of typ for p, so
// a search answered wholly by the index need not read each match. A
// principal confined to a compartment for typ turns it off; consent will
// too.
func (s *Service) visibleAll(p auth.Principal, typ string) bool { return !p.Confined(typ) }

// onlyThisPatient is the default of Service.linkedPatients: a reference to
// Patient/id stands for that patient alone.
func onlyThisPatient(_ store.Tx, id string) ([]string, error) { return []string{id}, nil }

// widenPatientReferences replaces each reference to a Patient in c by
// references to all of its linked patients (a copy; c is left alone).
func (s *Service) widenPatientReferences(tx store.Tx, c *search.Condition) (*search.Condition, error) {
	if c.Param.Type != search.Reference {
		return c, nil
	}
	var ops []search.Operand
	widened := false
	for _, op := range c.Operands {
		if op.Ref.Type != "Patient" || op.Ref.ID == "" || op.Ref.Version != "" {
			ops = append(ops, op)
			continue
		}
		ids, err := s.linkedPatients(tx, op.Ref.ID)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			w := op
			w.Ref.ID = id
			ops = append(ops, w)
		}
		widened = widened || len(ids) != 1 || ids[0] != op.Ref.ID
	}
	if !widened {
		return c, nil
	}
	wc := *c
	wc.Operands = ops
	return &wc, nil
}

// matchAll answers q: for a type-level search the ids of the matches, for
// a system-level one their Type/id paths, type by type.
func (s *Service) matchAll(ctx context.Context, p auth.Principal, tx store.Tx, q *search.Query) ([]string, error) {
	if q.Type != "" {
		return s.matchIDs(ctx, p, tx, q)
	}
	var all []hit
	for _, typ := range q.Types {
		hits, err := s.matchHits(ctx, p, tx, q.ForType(s.registry, typ))
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			h.id = typ + "/" + h.id
			all = append(all, h)
		}
	}
	if len(q.Sort) > 0 { // one order across the types, not type by type
		slices.SortStableFunc(all, compareHits(q))
	}
	out := make([]string, len(all))
	for i, h := range all {
		out[i] = h.id
	}
	return out, nil
}

// matchIDs answers the conditions of q: the ids of every visible current
// match, in result order.
func (s *Service) matchIDs(ctx context.Context, p auth.Principal, tx store.Tx, q *search.Query) ([]string, error) {
	hits, err := s.matchHits(ctx, p, tx, q)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.id
	}
	return ids, nil
}

// hit is a match and its values for q's _sort keys.
type hit struct {
	id   string
	sort [][]byte
}

// compareHits orders hits by q's _sort keys, then by id.
func compareHits(q *search.Query) func(a, b hit) int {
	return func(a, b hit) int {
		for i, k := range q.Sort {
			if c := compareSortValues(a.sort[i], b.sort[i], k.Descending); c != 0 {
				return c
			}
		}
		return strings.Compare(a.id, b.id) // a stable tie-break
	}
}

// matchHits is matchIDs with each match's sort values.
func (s *Service) matchHits(ctx context.Context, p auth.Principal, tx store.Tx, q *search.Query) ([]hit, error) {
	if err := linksAllowed(p, q); err != nil {
		return nil, err
	}
	typ := q.Type
	conds := make([]*search.Condition, 0, len(q.Conditions))
	for i := range q.Conditions {
		c, err := s.widenPatientReferences(tx, &q.Conditions[i])
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	var sets [][]string          // candidate id sets from the index, each sorted
	var post []*search.Condition // to check on the resource itself
	var broad []*search.Condition
	for _, c := range conds {
		if ids, ok := c.IDs(); ok {
			existing, err := currentIDs(tx, typ, ids)
			if err != nil {
				return nil, err
			}
			sets = append(sets, existing)
			continue
		}
		scans, exact, all := c.Scans()
		if all {
			post = append(post, c)
			continue
		}
		ids, complete, err := scanUnionLimit(ctx, tx, typ, scans, driveLimit)
		if err != nil {
			return nil, err
		}
		if !complete {
			broad = append(broad, c) // too many to list: checked on the candidates instead
			continue
		}
		sets = append(sets, ids)
		if !exact {
			post = append(post, c)
		}
	}
	if len(sets) == 0 && len(broad) > 0 {
		// Nothing selective: list the first broad condition in full.
		c := broad[0]
		broad = broad[1:]
		scans, exact, _ := c.Scans()
		ids, err := scanUnion(ctx, tx, typ, scans)
		if err != nil {
			return nil, err
		}
		sets = append(sets, ids)
		if !exact {
			post = append(post, c)
		}
	}
	post = append(post, broad...)
	for _, ch := range q.Chains {
		ids, err := s.chainIDs(ctx, p, tx, typ, ch)
		if err != nil {
			return nil, err
		}
		sets = append(sets, ids)
	}
	for _, h := range q.Has {
		ids, err := s.chainIDs(ctx, p, tx, typ, h)
		if err != nil {
			return nil, err
		}
		sets = append(sets, ids)
	}

	var candidates []string
	if len(sets) == 0 {
		err := tx.ScanIDs(ctx, typ, func(id string) bool { candidates = append(candidates, id); return true })
		if err != nil {
			return nil, err
		}
	} else {
		// Start from the most selective set: intersection cost follows it.
		slices.SortFunc(sets, func(a, b []string) int { return len(a) - len(b) })
		candidates = sets[0]
		for _, set := range sets[1:] {
			candidates = intersectSorted(candidates, set)
		}
	}

	// Index answers are current (a delete removes a resource's entries), so
	// when nothing needs the resource itself, the ids are the answer.
	if len(sets) > 0 && len(post) == 0 && len(q.Sort) == 0 && s.visibleAll(p, typ) {
		hits := make([]hit, len(candidates))
		for i, id := range candidates {
			hits[i].id = id
		}
		return hits, nil
	}
	matchers := make([]func([]search.Entry) bool, len(post))
	for i, c := range post {
		matchers[i] = c.Matcher()
	}
	hits := make([]hit, 0, len(candidates))
	for i, id := range candidates {
		if i%256 == 255 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		r, err := tx.Current(typ, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if r.Deleted || !s.visible(tx, p, r) {
			continue
		}
		var entries []search.Entry
		if len(post) > 0 || len(q.Sort) > 0 {
			if entries, err = s.registry.Extract(typ, r.JSON); err != nil {
				return nil, err
			}
		}
		ok := true
		for _, m := range matchers {
			if !m(entries) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		h := hit{id: id}
		for _, k := range q.Sort {
			h.sort = append(h.sort, sortValue(entries, k, s.localRef))
		}
		hits = append(hits, h)
	}
	if len(q.Sort) > 0 {
		slices.SortStableFunc(hits, compareHits(q))
	}
	return hits, nil
}

// currentIDs returns, sorted and without duplicates, those of ids that
// name a current (not deleted) resource of typ.
func currentIDs(tx store.Tx, typ string, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		r, err := tx.Current(typ, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !r.Deleted {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// sortValue is the key a resource sorts by on one _sort key: its smallest
// value ascending, its largest descending; nil when it has none. A
// reference goes through local first, so that one to this server by its
// absolute URL sorts as the Type/id it means.
func sortValue(entries []search.Entry, k search.SortKey, local func(search.ReferenceValue) search.ReferenceValue) []byte {
	var best []byte
	for _, e := range entries {
		if e.Param != k.Param.Code {
			continue
		}
		v := e.Value.Key()
		if ref, ok := e.Value.(search.ReferenceValue); ok {
			v = local(ref).Key()
		}
		if best == nil || (!k.Descending && bytes.Compare(v, best) < 0) || (k.Descending && bytes.Compare(v, best) > 0) {
			best = v
		}
	}
	return best
}

// compareSortValues orders by value; resources without one come last in
// either direction.
func compareSortValues(a, b []byte, desc bool) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	if desc {
		return bytes.Compare(b, a)
	}
	return bytes.Compare(a, b)
}

// driveLimit: a condition matching more resources than this is not listed
// but checked on the candidates the others give.
const driveLimit = 2048

// scanUnion returns the sorted, distinct ids found by any of scans.
func scanUnion(ctx context.Context, tx store.Tx, typ string, scans []search.Scan) ([]string, error) {
	ids, _, err := scanUnionLimit(ctx, tx, typ, scans, -1)
	return ids, err
}

// scanUnionLimit is scanUnion stopping (complete false) after limit keys
// (-1: no limit).
func scanUnionLimit(ctx context.Context, tx store.Tx, typ string, scans []search.Scan, limit int) ([]string, bool, error) {
	var ids []string
	complete := true
	for _, sc := range scans {
		err := tx.ScanIndex(ctx, typ, sc.Param, sc.From, sc.To, func(_ []byte, id string) bool {
			if limit >= 0 && len(ids) >= limit {
				complete = false
				return false
			}
			ids = append(ids, id)
			return true
		})
		if err != nil {
			return nil, false, err
		}
		if !complete {
			return nil, false, nil
		}
	}
	if !slices.IsSorted(ids) { // one value's keys come in id order already
		slices.Sort(ids)
	}
	return slices.Compact(ids), true, nil
}

func intersectSorted(a, b []string) []string {
	out := a[:0:0]
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch c := strings.Compare(a[i], b[j]); {
		case c == 0:
			out = append(out, a[i])
			i++
			j++
		case c < 0:
			i++
		default:
			j++
		}
	}
	return out
}

// refScans are the index ranges of a reference parameter that point at
// any of the ids of type target. For a parameter narrowed to one type
// (search.Param.Within) that type is the target, and its Type/id keys in
// the wider index are exactly its values.
func (s *Service) refScans(param *search.Param, target string, ids []string) []search.Scan {
	if param.Within != nil && target != param.WithinType {
		return nil // patient points at Patients only, whatever subject holds
	}
	scans := make([]search.Scan, 0, len(ids))
	point := func(key []byte) {
		scans = append(scans, search.Scan{Param: param.IndexCode(), From: key, To: prefixEnd(key), Point: true})
	}
	for _, id := range ids {
		point(search.ReferenceValue{ResourceType: target, ID: id}.Keys()[0]) // the Type/id form
		if s.baseURL != "" {
			// and as an absolute URL to this server
			point(search.ParseReference(s.baseURL + "/" + target + "/" + id).Keys()[0])
		}
	}
	return scans
}

// localRef reads a reference extracted from a stored resource as this
// server reads it: an absolute URL under its base is Type/id.
func (s *Service) localRef(r search.ReferenceValue) search.ReferenceValue {
	if s.baseURL == "" {
		return r
	}
	return r.LocalTo(s.baseURL)
}

// prefixEnd is the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // all 0xff: no upper bound
}

// chainIDs answers a chain: param:Target.chained=value, _has:Type:param:
// chained=value, or a mix (subject:Patient._has:Observation:patient:code=x).
// It finds what matches the condition at the end, then walks the steps back
// to typ: through a forward step, the resources of the previous type that
// refer to the current ones; through a reverse step (_has), those the
// current ones refer to. Only resources p may see count, at every step (one
// p may not see is as if it were not there).
func (s *Service) chainIDs(ctx context.Context, p auth.Principal, tx store.Tx, typ string, ch search.Chain) ([]string, error) {
	last := ch.Steps[len(ch.Steps)-1]
	targets, err := s.conditionIDs(ctx, p, tx, last.Type, &ch.Condition)
	if err != nil {
		return nil, err
	}
	for i := len(ch.Steps) - 1; i >= 0; i-- {
		st := ch.Steps[i]
		source := typ
		if i > 0 {
			source = ch.Steps[i-1].Type
		}
		if st.Reverse {
			targets, err = s.referredBy(tx, source, st, targets)
		} else {
			targets, err = scanUnion(ctx, tx, source, s.refScans(st.Param, st.Type, targets))
		}
		if err == nil && i > 0 {
			targets, err = s.visibleIDs(tx, p, source, targets) // typ's are judged as matches
		}
		if err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// referredBy returns the sorted ids of typ that the resources ids of
// st.Type refer to with st.Param (a reverse step, _has).
func (s *Service) referredBy(tx store.Tx, typ string, st search.Step, ids []string) ([]string, error) {
	seen := map[string]struct{}{}
	for _, rid := range ids {
		r, err := tx.Current(st.Type, rid)
		if err != nil || r.Deleted {
			continue
		}
		entries, err := s.registry.Extract(st.Type, r.JSON)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if ref, ok := e.Value.(search.ReferenceValue); ok && e.Param == st.Param.Code {
				if ref = s.localRef(ref); ref.ResourceType != typ || !ref.Local() {
					continue
				}
				seen[ref.ID] = struct{}{}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	slices.Sort(out)
	return out, nil
}

// visibleIDs is ids less those of resources p may not see.
func (s *Service) visibleIDs(tx store.Tx, p auth.Principal, typ string, ids []string) ([]string, error) {
	if s.visibleAll(p, typ) && typeVisible(p, typ) {
		return ids, nil
	}
	out := ids[:0:0]
	for _, id := range ids {
		r, err := tx.Current(typ, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !r.Deleted && s.visible(tx, p, r) {
			out = append(out, id)
		}
	}
	return out, nil
}

// conditionIDs returns the sorted ids of typ matching one condition, of
// the resources p may see.
func (s *Service) conditionIDs(ctx context.Context, p auth.Principal, tx store.Tx, typ string, c *search.Condition) ([]string, error) {
	sub := &search.Query{Type: typ, Conditions: []search.Condition{*c}}
	ids, err := s.matchIDs(ctx, p, tx, sub)
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

// localReferences makes the reference operands of q that name a resource
// of this server by an absolute URL (<base>/Type/id) relative, and has
// every relative one match a stored reference written either way: the
// index holds references as written, relative or absolute.
func (s *Service) localReferences(q *search.Query) {
	if s.baseURL == "" {
		return
	}
	var operands func(ops []search.Operand)
	operands = func(ops []search.Operand) {
		for i := range ops {
			r := &ops[i].Ref
			if r.URL != "" && r.Type != "" && r.ID != "" {
				path := r.Type + "/" + r.ID
				if r.Version != "" {
					path += "/_history/" + r.Version
				}
				if r.URL == s.baseURL+"/"+path {
					r.URL = ""
				}
			}
			if r.URL == "" && r.ID != "" {
				r.Base = s.baseURL
			}
			operands(ops[i].Parts)
		}
	}
	for i := range q.Conditions {
		operands(q.Conditions[i].Operands)
	}
	for _, chains := range [][]search.Chain{q.Chains, q.Has} {
		for i := range chains {
			operands(chains[i].Condition.Operands)
		}
	}
}

// linksAllowed: a chained parameter or _has searches each type it goes
// through, so it needs the search scope on each, as a search of that type
// would (FHIR security.html: chained searches observe the restrictions on
// the user). Otherwise which resources come back would tell a client about
// resources of a type it may not search.
func linksAllowed(p auth.Principal, q *search.Query) error {
	for _, chains := range [][]search.Chain{q.Chains, q.Has} {
		for _, ch := range chains {
			for _, st := range ch.Steps {
				if !p.Allows(st.Type, auth.PermSearch) {
					return fhir.Errorf(fhir.Forbidden, "forbidden", "%s searches %s: it needs scope %s", ch.Key(), st.Type, auth.Needed(st.Type, auth.PermSearch))
				}
			}
		}
	}
	return nil
}

// maxIncludes bounds what one page may pull in with _include/_revinclude,
// and maxIncludeRounds how many steps :iterate follows from the matches
// (R4 lets a server limit iteration; documented in README).
const (
	maxIncludes      = 1000
	maxIncludeRounds = 4
)

// includes resolves _include and _revinclude for one page of matches.
func (s *Service) includes(ctx context.Context, p auth.Principal, tx store.Tx, q *search.Query, matches []*fhir.Resource) ([]*fhir.Resource, error) {
	if len(q.Include) == 0 && len(q.RevInclude) == 0 {
		return nil, nil
	}
	have := map[string]bool{}
	for _, r := range matches {
		have[r.Path()] = true
	}
	var out []*fhir.Resource
	add := func(r *fhir.Resource) {
		if len(out) < maxIncludes && !have[r.Path()] && !r.Deleted && s.visible(tx, p, r) {
			have[r.Path()] = true
			out = append(out, r)
		}
	}
	frontier := matches
	for round := 0; len(frontier) > 0 && round < maxIncludeRounds; round++ {
		var next []*fhir.Resource
		before := len(out)
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			for _, r := range frontier {
				if inc.Source != "" && inc.Source != r.Type || !s.registry.Searchable(r.Type) {
					continue
				}
				entries, err := s.registry.Extract(r.Type, r.JSON)
				if err != nil {
					return nil, err
				}
				for _, e := range entries {
					ref, ok := e.Value.(search.ReferenceValue)
					if ok {
						ref = s.localRef(ref)
					}
					if !ok || !ref.Local() || (inc.Param != nil && e.Param != inc.Param.Code) || (inc.Target != "" && ref.ResourceType != inc.Target) {
						continue
					}
					t, err := tx.Current(ref.ResourceType, ref.ID)
					if err == nil {
						add(t)
					}
				}
			}
		}
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			sources := []string{inc.Source}
			if inc.Source == "" {
				sources = search.SearchTypes
			}
			for _, src := range sources {
				params := []*search.Param{inc.Param}
				if inc.Param == nil {
					params = nil
					for _, sp := range s.registry.Params(src) {
						if sp.Type == search.Reference {
							params = append(params, sp)
						}
					}
				}
				for _, sp := range params {
					for _, r := range frontier {
						if inc.Target != "" && r.Type != inc.Target {
							continue // Source:param:Target refers to Targets only
						}
						ids, err := scanUnion(ctx, tx, src, s.refScans(sp, r.Type, []string{r.ID}))
						if err != nil {
							return nil, err
						}
						for _, id := range ids {
							if t, err := tx.Current(src, id); err == nil {
								add(t)
							}
						}
					}
				}
			}
		}
		next = append(next, out[before:]...)
		frontier = next
	}
	return out, nil
}

// cursorFor is the _cursor value of the page at offset in snapshot.
func cursorFor(snapshot string, offset int) string {
	return snapshot + "." + strconv.Itoa(offset)
}
