package interaction

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/store"
)

// This file is the engine under conditional interactions, PATCH and
// Bundles: a list of operations is resolved (conditional targets and
// references), prepared (references rewritten, patches applied, index
// entries extracted) and written in one store transaction.
//
// The expensive preparation runs before the write transaction, against a
// resolution made in a read transaction. Inside the write transaction the
// resolution is made again, as the truth; an operation whose resolution
// changed meanwhile (a concurrent writer created a match, moved the
// version a patch applies to ...) is prepared again there. Usually nothing
// changed and the write transaction only writes. An error found in the read
// transaction is final: the request wrote nothing, so answering it from
// that consistent snapshot is as correct as answering it from the next one.

// HTTP methods of operations.
const (
	methodGet    = "GET"
	methodPost   = "POST"
	methodPut    = "PUT"
	methodPatch  = "PATCH"
	methodDelete = "DELETE"
)

// op is one operation: a REST interaction or a Bundle entry.
type op struct {
	index   int    // Bundle entry; -1 outside a Bundle
	method  string // one of the method constants
	url     string // as requested, for messages
	typ, id string // id "" for a conditional or type-level target
	version string // GET Type/id/_history/version
	// criteria: the conditional target of PUT, PATCH and DELETE, the
	// If-None-Exist of POST, the search of a type-level GET.
	criteria *search.Query
	ifMatch  Precondition
	obj      *fhir.Object // POST and PUT: the validated resource; never modified
	bodyID   string       // conditional PUT: the id in the body, if any
	patch    jsonpatch.Patch
	fullURL  string   // Bundle.entry.fullUrl
	newID    string   // the id a created resource gets, made before any transaction
	refs     []string // urn: and conditional references in the resource or patch, and urn: links (links.go)
	// GET: a HEAD entry (its answer leaves the resource out), and the
	// conditions of a conditional read.
	head            bool
	ifNoneMatch     string
	ifModifiedSince time.Time
}

func (o *op) writes() bool {
	return o.method == methodPost || o.method == methodPut || o.method == methodPatch
}

// target is where an op lands, as resolved in one transaction.
type target struct {
	id      string
	cur     *fhir.Resource // the current version (maybe a tombstone); nil when none
	found   bool           // POST If-None-Exist matched cur: nothing is written
	deletes []string       // DELETE: the ids to delete
}

func (t *target) live() bool { return t.cur != nil && !t.cur.Deleted }

// writtenVersion is the version of the resource current after the op
// that writes t: the one found by a conditional create, else the next.
func (t *target) writtenVersion() uint64 {
	switch {
	case t.cur == nil:
		return 1
	case t.found:
		return t.cur.VersionID
	}
	return t.cur.VersionID + 1
}

// resolve is what ref, in the resource of an entry whose fullUrl has the
// RESTful base (restfulBase; "" for none), names after resolution: an
// entry's fullUrl or a conditional reference, exactly or as Type/id
// relative to that base. A version-specific reference (.../_history/n)
// stays one, to the version the entry leaves current (R4 http.html,
// transaction processing rules).
func (res *resolution) resolve(base, ref string) (string, bool) {
	head, versioned := ref, false
	if i := strings.LastIndex(ref, "/_history/"); i > 0 && fhir.ValidID(ref[i+len("/_history/"):]) {
		head, versioned = ref[:i], true
	}
	key := head
	if _, ok := res.refs[key]; !ok {
		if base == "" || !relativeTypeID(head) {
			return "", false
		}
		key = base + "/" + head
	}
	to, ok := res.refs[key]
	if !ok {
		return "", false
	}
	if versioned {
		v, ok := res.versions[key]
		if !ok {
			return "", false // a conditional reference has no version to keep
		}
		to += "/_history/" + strconv.FormatUint(v, 10)
	}
	return to, true
}

type resolution struct {
	targets []target
	refs    map[string]string // fullUrl or conditional reference -> Type/id
	// versions: the fullUrl of an entry that writes -> the version it
	// leaves current, for version-specific references to it.
	versions map[string]uint64
}

// prepared is an op's resource ready to write, for one resolution: it holds
// while its id, the version a patch applied to, and what each reference it
// rewrote resolves to are the same (valid). The references that resolved to
// nothing need no check: a resolution's keys are the entries'
// fullUrls and the conditional references, the same in every resolution of
// a Bundle; only what they resolve to changes.
type prepared struct {
	id      string
	ver     uint64
	used    []string // ref, what it resolved to, ref, ...
	obj     *fhir.Object
	entries []store.IndexEntry
}

// patchedVersion is the version a patch op applies to; 0 for other ops.
func patchedVersion(o *op, t *target) uint64 {
	if o.method == methodPatch && t.cur != nil {
		return t.cur.VersionID
	}
	return 0
}

// valid reports whether pr still holds under resolution res. It costs the
// references pr rewrote: checking every fullUrl of the Bundle for every
// entry made a large transaction quadratic, inside the write transaction.
func (pr *prepared) valid(o *op, t *target, res *resolution) bool {
	if pr.id != t.id || pr.ver != patchedVersion(o, t) {
		return false
	}
	base := restfulBase(o.fullURL, o.typ)
	for i := 0; i < len(pr.used); i += 2 {
		if to, _ := res.resolve(base, pr.used[i]); to != pr.used[i+1] {
			return false
		}
	}
	return true
}

// Outcome says what an operation did.
type Outcome uint8

const (
	Created     Outcome = iota + 1
	Updated             // includes a PATCH
	Found               // If-None-Exist matched an existing resource; nothing written
	Deleted             // Result.Deleted holds what was deleted: none when nothing matched
	Read                // GET of one resource
	NotModified         // a conditional GET whose resource has not changed (304)
	Searched            // GET of a search
)

// Result is the outcome of one operation.
type Result struct {
	Outcome  Outcome
	Resource *fhir.Resource   // Created, Updated, Found, Read
	Deleted  []*fhir.Resource // Deleted: the tombstones
	Page     *SearchPage      // Searched
	Err      error            // in a batch: why this entry failed
	Head     bool             // a HEAD entry: the answer without its resource
}

// order is the R4 processing order of a transaction: DELETE, POST,
// PUT/PATCH, GET, each in Bundle order.
func order(ops []*op) []int {
	idx := make([]int, len(ops))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(methodRank[ops[a].method], methodRank[ops[b].method]) })
	return idx
}

// methodRank is the processing order of Bundle entries by method (R4
// http.html, transaction processing rules).
var methodRank = map[string]int{methodDelete: 0, methodPost: 1, methodPut: 2, methodPatch: 2, methodGet: 3}

// run carries out ops in one write transaction (all or nothing).
// multipleDeletes allows a conditional delete to delete several matches.
func (s *Service) run(ctx context.Context, p auth.Principal, ops []*op, multipleDeletes bool) ([]Result, error) {
	if len(ops) == 0 {
		return nil, nil // an empty transaction: nothing to commit
	}
	var first *resolution
	err := s.store.View(ctx, func(tx store.Tx) (err error) {
		first, err = s.resolve(ctx, p, tx, ops, multipleDeletes)
		return err
	})
	if err != nil {
		return nil, err
	}
	pre := make([]*prepared, len(ops))
	for i, o := range ops {
		t := &first.targets[i]
		if o.writes() && !t.found {
			if pre[i], err = s.prepare(o, t, first); err != nil {
				return nil, opError(o, err)
			}
			if t.live() { // what the store needs of the version it replaces
				s.store.PrepareReplace(ctx, o.typ, t.id)
			}
		}
		for _, id := range t.deletes {
			s.store.PrepareReplace(ctx, o.typ, id)
		}
	}
	var results []Result
	err = s.store.Update(ctx, func(tx store.Tx) error {
		results = make([]Result, len(ops)) // Update may run this again
		res, err := s.resolve(ctx, p, tx, ops, multipleDeletes)
		if err != nil {
			return err
		}
		written := map[string]int{} // Type/id -> the op that wrote it
		for _, i := range order(ops) {
			o, t := ops[i], &res.targets[i]
			if err := s.noNewMatch(ctx, p, tx, o, t, written); err != nil {
				return opError(o, err)
			}
			if err := s.apply(ctx, p, tx, o, t, res, pre[i], &results[i]); err != nil {
				return opError(o, err)
			}
			if o.writes() && !t.found {
				written[o.typ+"/"+t.id] = i
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// noNewMatch refuses a conditional write whose criteria, checked again
// after the transaction's earlier writes, now select a resource one of
// them wrote: the targets were resolved before any write, so it would
// otherwise create a second resource (or patch another) where R4 processing
// order would have found the first; and two entries may not touch one
// resource anyway.
func (s *Service) noNewMatch(ctx context.Context, p auth.Principal, tx store.Tx, o *op, t *target, written map[string]int) error {
	if o.criteria == nil || !o.writes() || len(written) == 0 {
		return nil
	}
	ids, err := s.matchIDs(ctx, p, tx, o.criteria)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if j, ok := written[o.typ+"/"+id]; ok && id != t.id {
			return fhir.Errorf(fhir.Invalid, "invalid", "the criteria of entry %d select %s/%s, which entry %d of this transaction writes: a transaction may change a resource only once", o.index, o.typ, id, j)
		}
	}
	return nil
}

// apply carries out one resolved op in tx. pre is its preparation from
// before the transaction (nil when none), used when still valid.
func (s *Service) apply(ctx context.Context, p auth.Principal, tx store.Tx, o *op, t *target, res *resolution, pre *prepared, r *Result) error {
	switch o.method {
	case methodDelete:
		r.Outcome = Deleted
		for _, id := range t.deletes {
			if err := s.mayWrite(tx, p, o.typ, id, nil); err != nil {
				return err
			}
			tomb, err := tx.Delete(o.typ, id)
			if err != nil {
				return err
			}
			if err := tx.SetIndex(o.typ, id, nil); err != nil { // a deleted resource matches no search
				return err
			}
			r.Deleted = append(r.Deleted, tomb)
		}
		return nil
	case methodGet:
		r.Head = o.head
		return s.get(ctx, p, tx, o, r)
	}
	if t.found {
		r.Outcome, r.Resource = Found, t.cur
		return nil
	}
	pr := pre
	if pr == nil || !pr.valid(o, t, res) {
		var err error
		if pr, err = s.prepare(o, t, res); err != nil {
			return err
		}
	}
	written, err := s.putIndexed(tx, p, o.typ, t.id, pr.obj, pr.entries, o.method == methodPost)
	if err != nil {
		return err
	}
	r.Outcome, r.Resource = Updated, written
	if !t.live() {
		r.Outcome = Created
	}
	return nil
}

// get answers a GET entry inside the transaction, after its writes.
func (s *Service) get(ctx context.Context, p auth.Principal, tx store.Tx, o *op, r *Result) error {
	if o.id == "" {
		q := o.criteria
		ids, err := s.matchIDs(ctx, p, tx, q)
		if err != nil {
			return err
		}
		page := &SearchPage{Query: q, Total: len(ids)}
		if q.Total == search.TotalNone && !q.CountOnly() {
			page.Total = -1
		}
		if !q.CountOnly() {
			for _, id := range ids[:min(q.Count, len(ids))] {
				cur, err := tx.Current(o.typ, id)
				if err != nil {
					return err
				}
				page.Matches = append(page.Matches, cur)
			}
			if page.Included, err = s.includes(ctx, p, tx, q, page.Matches); err != nil {
				return err
			}
		}
		r.Outcome, r.Page = Searched, page
		return nil
	}
	var cur *fhir.Resource
	var err error
	if o.version != "" {
		v, perr := strconv.ParseUint(o.version, 10, 64)
		if perr != nil || v == 0 {
			return fhir.Errorf(fhir.NotFound, "not-found", "%s/%s has no version %q", o.typ, o.id, o.version)
		}
		if err = s.hideUnknown(tx, p, o.typ, o.id); err == nil {
			cur, err = tx.Version(o.typ, o.id, v)
		}
	} else {
		cur, err = tx.Current(o.typ, o.id)
	}
	if err == nil {
		err = s.hideOutside(tx, p, cur)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(o.typ, o.id)
	case err != nil:
		return err
	case cur.Deleted:
		return gone(cur)
	}
	r.Outcome, r.Resource = Read, cur
	if fhir.NotModified(cur, o.ifNoneMatch, o.ifModifiedSince) {
		r.Outcome = NotModified
	}
	return nil
}

func current(tx store.Tx, typ, id string) (*fhir.Resource, error) {
	cur, err := tx.Current(typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return cur, err
}

// resolve decides, in tx, where each op lands, in processing order (so
// what the transaction deletes matches no later criteria), and what each
// urn: fullUrl and conditional reference stands for.
func (s *Service) resolve(ctx context.Context, p auth.Principal, tx store.Tx, ops []*op, multipleDeletes bool) (*resolution, error) {
	res := &resolution{targets: make([]target, len(ops)), refs: map[string]string{}, versions: map[string]uint64{}}
	touched := map[string]int{} // Type/id -> the op that changes it
	claim := func(i int, id string) error {
		key := ops[i].typ + "/" + id
		if j, ok := touched[key]; ok && j != i {
			return fhir.Errorf(fhir.Invalid, "invalid", "entries %d and %d both change %s: a transaction may change a resource only once", min(i, j), max(i, j), key)
		}
		touched[key] = i
		return nil
	}
	deleting := map[string]bool{}
	sameCriteria := map[string]int{} // Type?criteria of a conditional create or update -> its op
	for _, i := range order(ops) {
		o, t := ops[i], &res.targets[i]
		if o.criteria != nil && (o.method == methodPost || o.method == methodPut) {
			// Both would create (or both update) the same resource.
			key := o.typ + "?" + o.criteria.SelfParams.Encode()
			if j, ok := sameCriteria[key]; ok {
				return nil, opError(o, fhir.Errorf(fhir.Invalid, "invalid", "entries %d and %d have the same criteria %s: a transaction may change a resource only once", min(i, j), max(i, j), echo(key)))
			}
			sameCriteria[key] = i
		}
		if err := s.resolveOne(ctx, p, tx, o, t, deleting, multipleDeletes); err != nil {
			return nil, opError(o, err)
		}
		ids := t.deletes
		switch {
		case o.writes():
			// A conditional create that found its resource names it too: "a
			// resource can only appear in a transaction once" (R4 http.html,
			// transaction processing rules), another entry may not change it.
			ids = []string{t.id}
		case o.method == methodDelete && o.criteria == nil:
			ids = []string{o.id} // deleting what is absent still names it
		}
		for _, id := range ids {
			if err := claim(i, id); err != nil {
				return nil, opError(o, err)
			}
		}
		for _, id := range t.deletes {
			deleting[o.typ+"/"+id] = true
		}
		switch {
		case o.fullURL != "" && o.writes():
			switch {
			case temporaryLink(o.fullURL):
				res.refs[o.fullURL] = o.typ + "/" + t.id
			case restfulBase(o.fullURL, o.typ) != "":
				// A client's own URL for what it sends: references to it,
				// absolute or relative to the same base, name this entry
				// (R4 bundle.html, resolving references in Bundles).
				res.refs[o.fullURL] = o.typ + "/" + t.id
			}
			res.versions[o.fullURL] = t.writtenVersion()
		case o.fullURL != "" && o.id != "" && temporaryLink(o.fullURL):
			// A GET or DELETE of Type/id: its urn: fullUrl names that
			// resource, which a reference may name as well as a written one;
			// left as it was, the urn: would be stored, naming nothing.
			res.refs[o.fullURL] = o.typ + "/" + o.id
		}
	}
	// A urn: fullUrl of an entry that names no one resource (a conditional
	// DELETE, a search) resolves to nothing: a reference to it would be
	// stored as the urn:, naming nothing outside the Bundle.
	unresolvable := map[string]bool{}
	for _, o := range ops {
		if _, ok := res.refs[o.fullURL]; !ok && temporaryLink(o.fullURL) {
			unresolvable[o.fullURL] = true
		}
	}
	for _, o := range ops {
		for _, ref := range o.refs {
			if unresolvable[ref] {
				return nil, opError(o, fhir.Errorf(fhir.Unprocessable, "invalid", "%s is the fullUrl of an entry that names no one resource (a conditional DELETE or a search): a reference to it cannot be resolved", ref))
			}
			if _, done := res.refs[ref]; done || !isConditionalReference(ref) {
				continue
			}
			typ, query, _ := strings.Cut(ref, "?")
			q, err := s.criteriaString(typ, query, "the conditional reference "+strconv.Quote(echo(ref)))
			if err != nil {
				return nil, opError(o, err)
			}
			ids, err := s.matchLive(ctx, p, tx, q, deleting)
			if err != nil {
				return nil, opError(o, err)
			}
			switch {
			case len(ids) == 0:
				return nil, opError(o, fhir.Errorf(fhir.NotFound, "not-found", "the conditional reference %q matches no %s", echo(ref), typ))
			case len(ids) > 1:
				return nil, opError(o, severalMatch("the conditional reference "+strconv.Quote(echo(ref)), len(ids), typ))
			}
			res.refs[ref] = typ + "/" + ids[0]
		}
	}
	return res, nil
}

func (s *Service) resolveOne(ctx context.Context, p auth.Principal, tx store.Tx, o *op, t *target, deleting map[string]bool, multipleDeletes bool) error {
	var ids []string
	if o.criteria != nil && o.method != methodGet {
		skip := deleting
		if o.method == methodDelete {
			skip = nil // a second delete of the same resource is a clash, not a miss
		}
		var err error
		if ids, err = s.matchLive(ctx, p, tx, o.criteria, skip); err != nil {
			return err
		}
	}
	var err error
	switch o.method {
	case methodGet:
		return nil
	case methodDelete:
		if o.criteria == nil {
			if t.cur, err = current(tx, o.typ, o.id); err != nil {
				return err
			}
			if err := s.mayWrite(tx, p, o.typ, o.id, nil); err != nil {
				return err
			}
			if err := o.ifMatch.check(t.cur, o.typ, o.id); err != nil {
				return err
			}
			if t.live() {
				t.deletes = []string{o.id}
			}
			return nil
		}
		if len(ids) > 1 && !multipleDeletes {
			return fhir.Errorf(fhir.PreconditionFailed, "multiple-matches", "the conditional delete matches %d %s resources, and this server deletes only one at a time (serve --conditional-delete single): narrow the criteria", len(ids), o.typ)
		}
		if o.ifMatch != 0 && len(ids) != 1 {
			// A version precondition names one resource: with none
			// selected, or several, it cannot hold (RFC 9110 13.1.1).
			return fhir.Errorf(fhir.PreconditionFailed, "conflict", "If-Match: the conditional delete matches %d %s resources, and a version precondition needs exactly one", len(ids), o.typ)
		}
		if o.ifMatch != 0 {
			cur, err := current(tx, o.typ, ids[0])
			if err != nil {
				return err
			}
			if err := o.ifMatch.check(cur, o.typ, ids[0]); err != nil {
				return err
			}
		}
		t.deletes = ids
		return nil
	case methodPost:
		t.id = o.newID
		switch {
		case len(ids) == 1:
			t.id, t.found = ids[0], true
		case len(ids) > 1:
			return severalMatch("If-None-Exist", len(ids), o.typ)
		}
	case methodPut:
		t.id = o.id
		if o.criteria != nil {
			switch len(ids) {
			case 0:
				t.id = cmp.Or(o.bodyID, o.newID)
				if o.bodyID != "" {
					// The body's id would turn this create into an update
					// of a resource the criteria did not select.
					cur, err := current(tx, o.typ, o.bodyID)
					if err != nil {
						return err
					}
					if cur != nil && !cur.Deleted {
						return fhir.Errorf(fhir.Conflict, "conflict", "no %s matches the criteria, but %s/%s, named by the body's id, exists and does not match them: leave the id out to create a new resource", o.typ, o.typ, o.bodyID).At(o.typ + ".id")
					}
				}
			case 1:
				t.id = ids[0]
				if o.bodyID != "" && o.bodyID != t.id {
					return fhir.Errorf(fhir.Invalid, "invalid", "the body's id %q differs from the id %q of the resource the criteria select", o.bodyID, t.id).At(o.typ + ".id")
				}
			default:
				return severalMatch("the conditional update", len(ids), o.typ)
			}
		}
	case methodPatch:
		if !typeVisible(p, o.typ) {
			// A patch reads what it changes: its answer, a test operation,
			// a copy that validation quotes would all read it to the caller.
			return fhir.Errorf(fhir.Forbidden, "forbidden", "a PATCH of %s reads the resource it changes: it needs scope %s or %s besides %s", o.typ, auth.Needed(o.typ, auth.PermRead), auth.Needed(o.typ, auth.PermSearch), auth.Needed(o.typ, auth.PermUpdate))
		}
		t.id = o.id
		if o.criteria != nil {
			switch len(ids) {
			case 0:
				return fhir.Errorf(fhir.NotFound, "not-found", "the conditional patch matches no %s", o.typ)
			case 1:
				t.id = ids[0]
			default:
				return severalMatch("the conditional patch", len(ids), o.typ)
			}
		}
	}
	if t.found || o.method != methodPost {
		if t.cur, err = current(tx, o.typ, t.id); err != nil {
			return err
		}
	}
	if t.cur != nil && o.method != methodPost {
		if err := s.mayWrite(tx, p, o.typ, t.id, nil); err != nil {
			return err
		}
	}
	if o.method == methodPatch {
		switch {
		case t.cur == nil:
			return notFound(o.typ, t.id)
		case t.cur.Deleted:
			return gone(t.cur)
		}
	}
	if o.method != methodPost {
		return o.ifMatch.check(t.cur, o.typ, t.id)
	}
	return nil
}

// prepare builds the resource an op writes under resolution res: the
// patched or sent resource, its resolvable references rewritten, its id
// set; and its index entries.
func (s *Service) prepare(o *op, t *target, res *resolution) (*prepared, error) {
	var obj *fhir.Object
	if o.method == methodPatch {
		var err error
		if obj, err = s.applyPatch(o, t.cur); err != nil {
			return nil, err
		}
	} else {
		obj = copyObject(o.obj) // o.obj is shared by every run
	}
	base := restfulBase(o.fullURL, o.typ)
	var used []string
	resolve := func(ref string) (string, bool) {
		to, ok := res.resolve(base, ref)
		if ok {
			used = append(used, ref, to)
		}
		return to, ok
	}
	for _, k := range obj.Keys() {
		if k == "resourceType" || k == "id" || (o.typ == "Bundle" && k == "entry") {
			continue // meta too may hold references, in its extensions; a Bundle's entries: ownPart
		}
		v, _ := obj.Get(k)
		if nv, changed := rewriteReferences(v, resolve); changed {
			obj.Set(k, nv)
		}
	}
	if len(res.refs) > 0 { // something in the Bundle to link to
		own := ownPart(o.typ, obj)
		if raw, changed := rewriteLinks(s.validator, o.typ, own.Bytes(), resolve); changed {
			rewritten, err := fhir.ParseObject(raw)
			if err != nil {
				return nil, err
			}
			if own != obj { // a Bundle: its entries back, where they were
				for _, k := range rewritten.Keys() {
					v, _ := rewritten.Get(k)
					obj.Set(k, v)
				}
				raw, rewritten = obj.Bytes(), obj
			}
			// The rewritten narratives and links are checked again: the
			// scanner that rewrote them is not an XML parser, and what is
			// stored must pass the rules the client's version passed.
			if err := s.validateBody(o.typ, raw); err != nil {
				return nil, err
			}
			obj = rewritten
		}
	}
	if ref := unresolvedConditional(ownPart(o.typ, obj), t.cur); ref != "" {
		return nil, fhir.Errorf(fhir.Invalid, "processing", "the conditional reference %q was not resolved", echo(ref))
	}
	obj.Set("id", quoteJSON(t.id))
	entries, err := s.indexEntries(o.typ, obj)
	if err != nil {
		return nil, err
	}
	return &prepared{id: t.id, ver: patchedVersion(o, t), used: used, obj: obj, entries: entries}, nil
}

func copyObject(o *fhir.Object) *fhir.Object {
	c := &fhir.Object{}
	for _, k := range o.Keys() {
		v, _ := o.Get(k)
		c.Set(k, v)
	}
	return c
}

// opError names the Bundle entry an error belongs to: in the diagnostics,
// and in the expressions, which become paths from the Bundle
// (Patient.birthDate -> Bundle.entry[3].resource.birthDate). Outside a
// Bundle, err is returned as it is. err itself is not changed (a
// transaction function may run again).
func opError(o *op, err error) error {
	var fe *fhir.Error
	if o.index < 0 || !errors.As(err, &fe) || fe.Kind == fhir.Internal {
		return err
	}
	at := "Bundle.entry[" + strconv.Itoa(o.index) + "]"
	if len(fe.Issues) > 0 && strings.HasPrefix(fe.Issues[0].Diagnostics, at) {
		return err // named already
	}
	out := &fhir.Error{Kind: fe.Kind, Err: fe.Err}
	for _, is := range fe.Issues {
		is.Diagnostics = fmt.Sprintf("%s (%s %s): %s", at, o.method, echo(o.url), is.Diagnostics)
		exprs := make([]string, 0, len(is.Expression)+1)
		for _, e := range is.Expression {
			switch {
			case strings.HasPrefix(e, "Bundle.entry["):
			case e == o.typ:
				e = at + ".resource"
			case strings.HasPrefix(e, o.typ+"."):
				e = at + ".resource" + strings.TrimPrefix(e, o.typ)
			default:
				e = at + ".resource." + e
			}
			exprs = append(exprs, e)
		}
		if len(exprs) == 0 {
			exprs = append(exprs, at)
		}
		is.Expression = exprs
		out.Issues = append(out.Issues, is)
	}
	return out
}

// unresolvedConditional returns a conditional reference that obj holds and
// the current version cur did not: one the op brought in without listing
// it (a patch copying a search string into a reference), so nothing
// resolved it. What the current version held already (a resource stored
// by a plain create, a stored Bundle's entries) is the client's as it was.
func unresolvedConditional(obj *fhir.Object, cur *fhir.Resource) string {
	var had map[string]bool
	for _, ref := range references(obj.Bytes()) {
		if !isConditionalReference(ref) {
			continue
		}
		if had == nil {
			had = map[string]bool{}
			if cur != nil && !cur.Deleted {
				for _, r := range references(cur.JSON) {
					had[r] = true
				}
			}
		}
		if !had[ref] {
			return ref
		}
	}
	return ""
}
