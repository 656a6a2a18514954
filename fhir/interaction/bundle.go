package interaction

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/search"
)

// BundleOptions are the server's limits and policies for Bundles.
type BundleOptions struct {
	MaxEntries      int  // more entries: TooLarge; 0: no limit
	MultipleDeletes bool // a conditional delete may delete several matches
}

// bundleJSON is what Bundle processing reads of a Bundle (decodeBundle).
type bundleJSON struct {
	ResourceType string
	Type         string
	Entry        []bundleEntry
}

type bundleEntry struct {
	FullURL  string
	Resource json.RawMessage
	Request  *bundleRequest
}

type bundleRequest struct {
	Method, URL, IfMatch, IfNoneExist, IfNoneMatch, IfModifiedSince string
}

// The elements of Bundle, Bundle.entry and Bundle.entry.request in R4, by
// their JSON names (a primitive's extensions ride on "_" and its name).
var (
	bundleElements  = elementNames("resourceType id meta implicitRules language identifier type timestamp total link entry signature")
	entryElements   = elementNames("id extension modifierExtension link fullUrl resource search request response")
	requestElements = elementNames("id extension modifierExtension method url ifNoneMatch ifModifiedSince ifMatch ifNoneExist")
)

func elementNames(names string) map[string]bool {
	set := map[string]bool{}
	for _, n := range strings.Fields(names) {
		set[n], set["_"+n] = true, true
	}
	return set
}

// decodeBundle reads the Bundle's skeleton as FHIR JSON is read: member
// names are case-sensitive, a name may not repeat, and an element R4 does
// not define is an error. encoding/json matches names in any case and lets
// the last of a repeated name win, so a batch entry of request.method "GET"
// with a "Method": "DELETE" beside it ran as a delete, and a transaction
// with a "TYPE": "batch" ran as a batch. A transaction's Bundle is then
// validated whole; a batch's entries each on their own.
func decodeBundle(body []byte) (bundleJSON, error) {
	var b bundleJSON
	o, err := fhir.ParseObject(body)
	if err != nil {
		return b, fhir.Errorf(fhir.Invalid, "structure", "the body is not a Bundle: %v", err)
	}
	if err := onlyElements(o, bundleElements, "Bundle"); err != nil {
		return b, err
	}
	if b.ResourceType, err = stringMember(o, "resourceType", "resourceType"); err != nil {
		return b, err
	}
	if b.Type, err = stringMember(o, "type", "Bundle.type"); err != nil {
		return b, err
	}
	raw, ok := o.Get("entry")
	if !ok {
		return b, nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return b, fhir.Errorf(fhir.Invalid, "structure", "Bundle.entry is not an array of entries").At("Bundle.entry")
	}
	b.Entry = make([]bundleEntry, len(entries))
	for i, raw := range entries {
		at := "Bundle.entry[" + strconv.Itoa(i) + "]"
		eo, err := fhir.ParseObject(raw)
		if err != nil {
			return b, fhir.Errorf(fhir.Invalid, "structure", "%s: %v", at, err).At(at)
		}
		if err := onlyElements(eo, entryElements, at); err != nil {
			return b, err
		}
		e := &b.Entry[i]
		if e.FullURL, err = stringMember(eo, "fullUrl", at+".fullUrl"); err != nil {
			return b, err
		}
		e.Resource, _ = eo.Get("resource")
		raw, ok := eo.Get("request")
		if !ok || string(raw) == "null" {
			continue
		}
		ro, err := fhir.ParseObject(raw)
		if err != nil {
			return b, fhir.Errorf(fhir.Invalid, "structure", "%s.request: %v", at, err).At(at + ".request")
		}
		if err := onlyElements(ro, requestElements, at+".request"); err != nil {
			return b, err
		}
		e.Request = &bundleRequest{}
		for _, f := range []struct {
			name string
			to   *string
		}{{"method", &e.Request.Method}, {"url", &e.Request.URL}, {"ifMatch", &e.Request.IfMatch}, {"ifNoneExist", &e.Request.IfNoneExist},
			{"ifNoneMatch", &e.Request.IfNoneMatch}, {"ifModifiedSince", &e.Request.IfModifiedSince}} {
			if *f.to, err = stringMember(ro, f.name, at+".request."+f.name); err != nil {
				return b, err
			}
		}
	}
	return b, nil
}

// onlyElements fails on a member of o that is not one of the element
// names of the type at path.
func onlyElements(o *fhir.Object, names map[string]bool, path string) error {
	for _, k := range o.Keys() {
		if !names[k] {
			return fhir.Errorf(fhir.Invalid, "structure", "unknown element %q in %s (FHIR JSON names are case-sensitive)", echo(k), path).At(path + "." + k)
		}
	}
	return nil
}

// stringMember is o's member name as a string: "" when absent or null,
// an error when it is not a string.
func stringMember(o *fhir.Object, name, at string) (string, error) {
	raw, ok := o.Get(name)
	if !ok || string(raw) == "null" {
		return "", nil
	}
	v, ok := o.String(name)
	if !ok {
		return "", fhir.Errorf(fhir.Invalid, "structure", "%s must be a string", at).At(at)
	}
	return v, nil
}

// Bundle processes a transaction or batch Bundle (POST to the base). kind
// is its type; results are one per entry, in entry order.
//
// A transaction is all or nothing, in one store transaction: every entry
// is checked first, then they run in the R4 order (DELETE, POST, PUT and
// PATCH, GET), with urn:uuid: and urn:oid: fullUrls and conditional
// references (Type?criteria) resolved in every reference that names them.
// The first failing entry fails the whole Bundle with its error, which names
// the entry (Bundle.entry[i]). A conditional reference that matches nothing
// is NotFound (404: the thing referred to is not there), several matches
// PreconditionFailed (412), as for the other conditional interactions.
//
// A batch runs each entry on its own, in its own store transaction; an
// entry's failure is its Result.Err and does not touch the others. Batch
// entries may not depend on each other (R4), so their references are not
// resolved between entries.
func (s *Service) Bundle(ctx context.Context, p auth.Principal, body []byte, opt BundleOptions) (kind string, results []Result, err error) {
	if !utf8.Valid(body) {
		return "", nil, fhir.Errorf(fhir.Invalid, "structure", "malformed JSON: the body is not valid UTF-8")
	}
	b, err := decodeBundle(body)
	if err != nil {
		return "", nil, err
	}
	if b.ResourceType != "Bundle" {
		return "", nil, fhir.Errorf(fhir.Invalid, "invalid", "POST to the base takes a transaction or batch Bundle, not a %q", b.ResourceType).At("resourceType")
	}
	if b.Type != "transaction" && b.Type != "batch" {
		return "", nil, fhir.Errorf(fhir.Invalid, "invalid", "Bundle.type %q: POST to the base processes transaction and batch Bundles (store other Bundles with POST to [base]/Bundle)", b.Type).At("Bundle.type")
	}
	if opt.MaxEntries > 0 && len(b.Entry) > opt.MaxEntries {
		return "", nil, fhir.Errorf(fhir.TooLarge, "too-costly", "the Bundle has %d entries, over this server's limit of %d (serve --max-bundle-entries): split it", len(b.Entry), opt.MaxEntries).At("Bundle.entry")
	}
	if b.Type == "batch" {
		results, err = s.batch(ctx, p, b.Entry, opt)
		return b.Type, results, err
	}
	if err := s.validator.Validate("Bundle", withoutCreateIDs(body, b.Entry)); err != nil {
		return "", nil, bundleValidation(err)
	}
	ops := make([]*op, len(b.Entry))
	for i := range b.Entry {
		if ops[i], err = s.entryOp(i, &b.Entry[i], true); err != nil {
			return "", nil, err
		}
		if err := entryAllowed(p, ops[i]); err != nil {
			return "", nil, err // one entry out of scope fails the whole
		}
	}
	results, err = s.run(ctx, p, ops, opt.MultipleDeletes)
	return b.Type, results, err
}

// bundleValidation gives a transaction's validation failure its kind: 422
// when every problem is inside an entry's resource (as for a single
// resource), 400 when the Bundle itself is malformed.
func bundleValidation(err error) error {
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.Invalid {
		return err
	}
	for _, is := range fe.Issues {
		if len(is.Expression) == 0 {
			return err
		}
		for _, e := range is.Expression {
			if !strings.HasPrefix(e, "Bundle.entry[") || !strings.Contains(e, "].resource") {
				return err
			}
		}
	}
	fe.Kind = fhir.Unprocessable
	return err
}

// batch runs each entry alone (its own transaction), in processing order:
// the entries of one method (DELETE, POST, PUT and PATCH, GET) run at once,
// up to batchWorkers of them, so that their writes share group commits,
// except where one could depend on another: see batchClass.
func (s *Service) batch(ctx context.Context, p auth.Principal, entries []bundleEntry, opt BundleOptions) ([]Result, error) {
	results := make([]Result, len(entries))
	var ops []*op
	for i := range entries {
		o, err := s.entryOp(i, &entries[i], false)
		if err == nil {
			err = entryAllowed(p, o)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		ops = append(ops, o)
	}
	idx := order(ops)
	for start := 0; start < len(idx); {
		end := start + 1
		for end < len(idx) && methodRank[ops[idx[end]].method] == methodRank[ops[idx[start]].method] {
			end++
		}
		s.batchClass(ctx, p, ops, idx[start:end], results, opt)
		if err := ctx.Err(); err != nil {
			return nil, err // the client left: no one reads the rest
		}
		start = end
	}
	return results, nil
}

// batchWorkers bounds the entries of one batch that run at once: enough to
// fill group commits, few enough to leave the server to other clients.
const batchWorkers = 16

// batchClass runs the entries class (indexes into ops, in entry order) of
// one method. Entries run at once while each names a target no entry
// running names; an entry whose criteria decide its target (a conditional
// one), or that names a target an earlier entry names, waits for every
// entry before it and runs alone. So each entry sees the effects of those
// before it that it could depend on, as when every entry ran in order,
// also in a batch that breaks R4's rule of independent entries.
func (s *Service) batchClass(ctx context.Context, p auth.Principal, ops []*op, class []int, results []Result, opt BundleOptions) {
	run := func(o *op) {
		defer func() {
			// This goroutine may not be the request's: its panic would end
			// the process. The entry fails instead, as a handler's would.
			if v := recover(); v != nil {
				results[o.index] = Result{Err: fhir.Errorf(fhir.Internal, "exception", "the entry failed: %v", v)}
			}
		}()
		r, err := s.runOne(ctx, p, o, opt.MultipleDeletes)
		if err != nil {
			r = Result{Err: err}
		}
		results[o.index] = r
	}
	sem := make(chan struct{}, batchWorkers)
	var wg sync.WaitGroup
	running := map[string]bool{} // targets of the entries started since the last wait
	for _, k := range class {
		if ctx.Err() != nil {
			break
		}
		o := ops[k]
		key := batchTarget(o)
		if key == "" || running[key] {
			wg.Wait()
			clear(running)
			if key == "" {
				run(o)
				continue
			}
		}
		running[key] = true
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			run(o)
		}()
	}
	wg.Wait()
}

// batchTarget names what an entry of a batch acts on, when its request
// says: Type/id, or a new id for a create; "" for an entry that depends on
// what is stored: a conditional one, or one whose resource holds a
// conditional reference (Patient?identifier=...), which a Patient an
// earlier entry creates may answer.
func batchTarget(o *op) string {
	switch {
	case o.criteria != nil || slices.ContainsFunc(o.refs, isConditionalReference):
		return ""
	case o.method == methodPost:
		return "new:" + o.newID
	case o.method == methodGet && o.id == "":
		return "" // a search: read-only, but its criteria are others'
	}
	return o.typ + "/" + o.id
}

// entryAllowed checks an entry against the caller's scopes, as the same
// request on its own would be checked: the Bundle route itself needs none.
func entryAllowed(p auth.Principal, o *op) error {
	var perm auth.Perm
	switch o.method {
	case methodGet:
		perm = auth.PermRead
		if o.id == "" {
			perm = auth.PermSearch
		}
	case methodPost:
		perm = auth.PermCreate
	case methodPut, methodPatch:
		perm = auth.PermUpdate
	case methodDelete:
		perm = auth.PermDelete
	}
	if p.Allows(o.typ, perm) {
		return nil
	}
	return fhir.Errorf(fhir.Forbidden, "forbidden", "entry %d (%s %s) needs scope %s", o.index, o.method, echo(o.url), auth.Needed(o.typ, perm)).At("Bundle.entry[" + strconv.Itoa(o.index) + "].request")
}

// entryOp reads one Bundle entry into an op. validated: the Bundle passed
// the validator already (a transaction), so the resource is not checked
// again.
func (s *Service) entryOp(i int, e *bundleEntry, validated bool) (*op, error) {
	o := &op{index: i, fullURL: e.FullURL}
	at := "Bundle.entry[" + strconv.Itoa(i) + "]"
	if e.Request == nil {
		return nil, opError(o, fhir.Errorf(fhir.Invalid, "required", "the entry has no request").At(at+".request"))
	}
	o.method, o.url = e.Request.Method, e.Request.URL
	if o.method == "HEAD" { // R4's HTTPVerb has it: a GET whose answer leaves the resource out
		o.method, o.head = methodGet, true
	}
	o, err := s.readEntry(o, e, validated)
	if err != nil {
		return nil, opError(o, err)
	}
	return o, nil
}

func (s *Service) readEntry(o *op, e *bundleEntry, validated bool) (*op, error) {
	at := "Bundle.entry[" + strconv.Itoa(o.index) + "]"
	u, err := url.Parse(o.url)
	if err != nil || u.IsAbs() || u.Host != "" || o.url == "" {
		return o, fhir.Errorf(fhir.Invalid, "value", "request.url %q: give a URL relative to the base: Type, Type/id, Type?criteria or Type/id/_history/version", echo(o.url)).At(at + ".request.url")
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	o.typ = segs[0]
	if err := CheckType(o.typ); err != nil {
		return o, err
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// net/url would drop the pair (a broken %-escape, a raw ";"): the
		// search or conditional write would run wider than asked.
		return o, fhir.Errorf(fhir.Invalid, "value", "request.url %q: the query does not parse (%v); percent-encode it", echo(o.url), err).At(at + ".request.url")
	}
	conditional := len(segs) == 1 && u.RawQuery != ""
	if len(segs) == 2 {
		o.id = segs[1]
		if err := checkID(o.typ, o.id); err != nil {
			return o, err
		}
	}
	if e.Request.IfMatch != "" {
		v, ok := fhir.ParseVersionETag(strings.TrimSpace(e.Request.IfMatch))
		if !ok {
			return o, fhir.Errorf(fhir.Invalid, "value", "request.ifMatch %q is not a version ETag such as W/\"3\"", echo(e.Request.IfMatch)).At(at + ".request.ifMatch")
		}
		o.ifMatch = Precondition(v)
	}
	if r := e.Request; r.IfNoneMatch != "" || r.IfModifiedSince != "" {
		// A conditional read (R4 Bundle.entry.request.ifNoneMatch: "If the
		// ETag values match, return a 304 Not Modified status").
		if o.method != methodGet {
			return o, fhir.Errorf(fhir.Invalid, "not-supported", "request.ifNoneMatch and request.ifModifiedSince apply to a GET (a conditional read), not to %s", o.method).At(at + ".request")
		}
		o.ifNoneMatch = r.IfNoneMatch
		if r.IfModifiedSince != "" {
			// An instant (R4): to the second, with a zone, as RFC 3339 has it.
			t, err := time.Parse(time.RFC3339Nano, r.IfModifiedSince)
			if err != nil {
				return o, fhir.Errorf(fhir.Invalid, "value", "request.ifModifiedSince %q is not an instant (such as 2026-01-02T03:04:05Z)", echo(r.IfModifiedSince)).At(at + ".request.ifModifiedSince")
			}
			o.ifModifiedSince = t
		}
	}
	badURL := func(want string) error {
		return fhir.Errorf(fhir.Invalid, "value", "%s takes request.url %s, not %q", o.method, want, echo(o.url)).At(at + ".request.url")
	}
	switch o.method {
	case methodPost:
		if len(segs) != 1 || u.RawQuery != "" {
			return o, badURL("Type (criteria go in request.ifNoneExist)")
		}
		if e.Request.IfNoneExist != "" {
			if o.criteria, err = s.criteriaString(o.typ, e.Request.IfNoneExist, "ifNoneExist"); err != nil {
				return o, err
			}
		}
		o.newID = s.newID()
	case methodPut:
		switch {
		case conditional:
			if o.criteria, err = s.criteria(o.typ, query, "the conditional update"); err != nil {
				return o, err
			}
			o.newID = s.newID()
		case len(segs) != 2 || u.RawQuery != "":
			return o, badURL("Type/id or Type?criteria")
		}
	case methodDelete:
		switch {
		case conditional:
			if o.criteria, err = s.criteria(o.typ, query, "the conditional delete"); err != nil {
				return o, err
			}
		case len(segs) != 2 || u.RawQuery != "":
			return o, badURL("Type/id or Type?criteria")
		}
	case methodPatch:
		switch {
		case conditional:
			if o.criteria, err = s.criteria(o.typ, query, "the conditional patch"); err != nil {
				return o, err
			}
		case len(segs) != 2 || u.RawQuery != "":
			return o, badURL("Type/id or Type?criteria")
		}
		return o, s.entryPatch(o, e.Resource, at)
	case methodGet:
		switch {
		case len(segs) == 1:
			if o.criteria, err = search.ParseQuery(s.registry, o.typ, query, false); err != nil {
				return o, err
			}
			s.localReferences(o.criteria)
		case len(segs) == 4 && segs[2] == "_history":
			o.id, o.version = segs[1], segs[3]
			if err := checkID(o.typ, o.id); err != nil {
				return o, err
			}
		case len(segs) != 2 || u.RawQuery != "":
			return o, badURL("Type?criteria, Type/id or Type/id/_history/version")
		}
		return o, nil
	default:
		return o, fhir.Errorf(fhir.Invalid, "not-supported", "request.method %q: entries may be GET, POST, PUT, PATCH or DELETE", echo(o.method)).At(at + ".request.method")
	}
	if o.method == methodDelete {
		return o, nil
	}
	// POST and PUT carry the resource.
	if len(e.Resource) == 0 || string(e.Resource) == "null" {
		return o, fhir.Errorf(fhir.Invalid, "required", "a %s entry needs a resource", o.method).At(at + ".resource")
	}
	switch {
	case validated:
		o.obj, err = parseResource(o.typ, e.Resource)
	case o.method == methodPost:
		o.obj, err = s.parseCreateBody(o.typ, e.Resource)
	default:
		o.obj, err = s.parseBody(o.typ, e.Resource)
	}
	if err != nil {
		return o, err
	}
	bodyID, _ := o.obj.String("id")
	switch {
	case o.method == methodPut && o.criteria == nil && bodyID != o.id:
		return o, fhir.Errorf(fhir.Invalid, "invalid", "the resource's id %q differs from the id %q in request.url", bodyID, o.id).At(o.typ + ".id")
	case o.method == methodPut && bodyID != "":
		if err := checkID(o.typ, bodyID); err != nil {
			return o, err
		}
		o.bodyID = bodyID
	}
	raw := e.Resource
	if own := ownPart(o.typ, o.obj); own != o.obj {
		raw = own.Bytes()
	}
	o.refs = append(references(raw), linkTargets(s.validator, o.typ, raw)...)
	return o, nil
}

// entryPatch reads the patch of a PATCH entry: R4 carries a JSON Patch in a
// Binary resource (contentType application/json-patch+json, the patch
// base64 in data); a Parameters resource would be a FHIRPath Patch.
func (s *Service) entryPatch(o *op, raw json.RawMessage, at string) error {
	var bin struct{ ResourceType, ContentType, Data string }
	obj, err := fhir.ParseObject(raw) // names as FHIR JSON reads them, as decodeBundle
	if err == nil {
		if bin.ResourceType, err = stringMember(obj, "resourceType", at+".resource.resourceType"); err == nil {
			if bin.ContentType, err = stringMember(obj, "contentType", at+".resource.contentType"); err == nil {
				bin.Data, err = stringMember(obj, "data", at+".resource.data")
			}
		}
	}
	if err != nil {
		return fhir.Errorf(fhir.Invalid, "required", "a PATCH entry needs a Binary resource holding a JSON Patch").At(at + ".resource")
	}
	switch {
	case bin.ResourceType == "Parameters":
		return fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "FHIRPath Patch (a Parameters resource) is not supported yet: send a JSON Patch as a Binary with contentType application/json-patch+json").At(at + ".resource")
	case bin.ResourceType != "Binary" || bin.ContentType != "application/json-patch+json":
		return fhir.Errorf(fhir.Invalid, "value", "a PATCH entry needs a Binary resource with contentType application/json-patch+json").At(at + ".resource")
	}
	patch, err := base64.StdEncoding.DecodeString(bin.Data)
	if err != nil {
		return fhir.Errorf(fhir.Invalid, "value", "the Binary's data is not base64").At(at + ".resource.data")
	}
	if o.patch, err = decodePatch(patch); err != nil {
		return err
	}
	o.refs = patchReferences(patch)
	return nil
}

// withoutCreateIDs is a transaction Bundle's body for validation: without
// the id of each POST entry's resource, which a create ignores (R4
// http.html#create; parseCreateBody). body itself when there is none.
func withoutCreateIDs(body []byte, entries []bundleEntry) []byte {
	posts := false
	for _, e := range entries {
		posts = posts || (e.Request != nil && e.Request.Method == methodPost && bytes.Contains(e.Resource, []byte(`"id"`)))
	}
	if !posts {
		return body
	}
	obj, err := fhir.ParseObject(body)
	if err != nil {
		return body
	}
	raw, _ := obj.Get("entry")
	var es []json.RawMessage
	if json.Unmarshal(raw, &es) != nil || len(es) != len(entries) {
		return body
	}
	for i, e := range entries {
		if e.Request == nil || e.Request.Method != methodPost {
			continue
		}
		eo, err := fhir.ParseObject(es[i])
		if err != nil {
			continue
		}
		res, _ := eo.Get("resource")
		ro, err := fhir.ParseObject(res)
		if err != nil {
			continue
		}
		if _, ok := ro.Get("id"); !ok {
			continue
		}
		ro.Delete("id")
		eo.Set("resource", ro.Bytes())
		es[i] = eo.Bytes()
	}
	out, err := json.Marshal(es)
	if err != nil {
		return body
	}
	obj.Set("entry", out)
	return obj.Bytes()
}
