package interaction

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/store"
)

// Bulk import of FHIR NDJSON (one resource a line, as Bulk Data exports and
// Synthea write). Every line goes through the checks of a REST update
// (parseJSON, checkID, validateBody: the same 400/422 rules) and keeps its own
// id, so references between lines stay right. Lines are written in chunks,
// one store transaction each: a chunk commits whole or not at all.
//
// A chunk goes through four stages: validate (parallel), resolve
// conditional references (serial: it reads and extends what the run has
// seen), rewrite and extract index entries (parallel), commit (one
// transaction, in the background while the next chunk goes through the
// first three). Extraction is the expensive part of indexing; doing it
// before the transaction keeps the committing goroutine to bbolt's own
// work, and the two cores busy.

// DefaultImportChunk is how many resources one import transaction writes:
// large enough to amortize the commit, the fsync and bbolt's rebalancing,
// small enough to bound memory (a chunk holds its lines and their index
// entries).
const DefaultImportChunk = 1000

// ImportGCPercent is the GOGC an import process runs with (the command
// sets it; so does the benchmark): an import's live heap is a chunk or
// two, and collecting it less often costs ~20% less CPU than the default
// 100.
const ImportGCPercent = 400

// ImportMmapSize is the store's InitialMmapSize for an import process: an
// address-space reservation (not memory), so that the file growing under
// large transactions does not make bbolt remap and copy them (~8% of the
// CPU of the Synthea import).
const ImportMmapSize = 1 << 30

// maxDeferred bounds the lines kept in memory for the second pass (their
// conditional references matched nothing yet); beyond it they fail at once.
const maxDeferred = 200_000

// ImportOptions control an import.
type ImportOptions struct {
	// Strict stops at the first invalid line; the chunk in progress is not
	// committed.
	Strict bool
	// ChunkSize is the resources per transaction (DefaultImportChunk when 0).
	ChunkSize int
	// MaxLine is the longest line accepted, in bytes (longer: invalid);
	// 16 MiB when 0, the server's default body limit.
	MaxLine int
	// Report receives every invalid line as it is found.
	Report func(*LineError)
	// Progress is called after each committed chunk.
	Progress func(ImportStats)
}

// ImportStats count the lines of an import.
type ImportStats struct {
	Read      int // resource lines read (blank lines are not counted)
	Created   int
	Updated   int
	Unchanged int // the stored current version had the same content
	Failed    int
}

// LineError is an invalid line: file:line: reason.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ErrStrictStop is returned (wrapped, with the line) when Strict stopped an
// import.
var ErrStrictStop = errors.New("stopped at the first invalid line (strict)")

// Importer loads NDJSON into the store. Use one per run, from one
// goroutine: it remembers the identifiers of what the run has imported, so
// that conditional references resolve to resources of earlier lines before
// they are committed. Read each stream, then Finish.
type Importer struct {
	s     *Service
	p     auth.Principal
	opt   ImportOptions
	stats ImportStats

	chunk    []*importLine
	deferred []*importLine
	refs     *refResolver
	// seen holds a hash of the Type/id of each line committed in this run
	// (claim). A run takes each resource once: with two versions of one
	// resource in it, every rerun would write both again (the first
	// differs from the stored second), and "the same import twice adds
	// nothing" would fail. 8 bytes a line, not the id: a run of ten
	// million lines keeps ~200 MB, not a gigabyte; two ids that share a
	// hash (one run in ~10^12 at that size) fail the second as a
	// duplicate, reported like any failed line.
	seen     map[uint64]struct{}
	seenSeed maphash.Seed
	// committing delivers the result of the chunk being committed in the
	// background while the next one is validated; nil when none is.
	committing chan commitResult
}

type commitResult struct {
	created, updated, unchanged int
	err                         error
}

// NewImporter starts an import run as principal p.
func (s *Service) NewImporter(p auth.Principal, opt ImportOptions) *Importer {
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = DefaultImportChunk
	}
	if opt.MaxLine <= 0 {
		opt.MaxLine = 16 << 20
	}
	return &Importer{s: s, p: p, opt: opt, refs: newRefResolver(s, p), seen: map[uint64]struct{}{}, seenSeed: maphash.MakeSeed()}
}

// Stats returns the counts so far.
func (im *Importer) Stats() ImportStats { return im.stats }

// importLine is one resource line on its way through a chunk.
type importLine struct {
	file string
	no   int
	body []byte
	// final: a conditional reference that matches nothing fails the line
	// (the second pass) instead of deferring it.
	final bool

	typ, id string
	obj     *fhir.Object
	idents  []string // "system|value" of each identifier
	refs    []condRef
	entries []store.IndexEntry
	err     error
	waits   bool // a conditional reference matched nothing yet: retry at the end
	claimed bool // it holds its Type/id in the run (claim)
}

func (im *Importer) read(ctx context.Context, name string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for no := 1; ; no++ {
		line, tooLong, err := readLine(br, im.opt.MaxLine)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s:%d: %w", name, no, err)
		}
		if no == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // a UTF-8 BOM
		}
		switch {
		case tooLong:
			im.stats.Read++
			if err := im.fail(&importLine{file: name, no: no}, fmt.Errorf("line longer than %d bytes", im.opt.MaxLine)); err != nil {
				return err
			}
		case len(bytes.TrimSpace(line)) > 0:
			im.stats.Read++
			im.chunk = append(im.chunk, &importLine{file: name, no: no, body: line})
			if len(im.chunk) >= im.opt.ChunkSize {
				if err := im.flush(ctx); err != nil {
					return err
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
	}
}

// Read imports the lines of one NDJSON stream named name (for messages).
// It returns an error only when the import must stop: the context ended,
// the store failed, or Strict met an invalid line. Chunks committed before
// stay committed.
func (im *Importer) Read(ctx context.Context, name string, r io.Reader) error {
	if err := im.read(ctx, name, r); err != nil {
		return errors.Join(err, im.settle())
	}
	return nil
}

// readLine returns the next line without its end of line; a line over max
// bytes is skipped whole and reported as tooLong.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		part, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(part) > max+2 { // +2: the \r\n
				tooLong, line = true, nil
			} else {
				line = append(line, part...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimRight(line, "\r\n")
		if !tooLong && len(line) > max { // the +2 above is for an end of line, not content
			tooLong, line = true, nil
		}
		return line, tooLong, err
	}
}

// Finish commits what is pending, then retries the lines whose conditional
// references matched nothing while they were first read (their targets may
// have come later), and returns the final counts.
func (im *Importer) Finish(ctx context.Context) (ImportStats, error) {
	err := im.finish(ctx)
	return im.stats, errors.Join(err, im.settle())
}

func (im *Importer) finish(ctx context.Context) error {
	for len(im.chunk) > 0 { // a flush may leave lines for the next (a repeat whose claimant failed)
		if err := im.flush(ctx); err != nil {
			return err
		}
	}
	// The retry resolves against everything: let the last commit land.
	if err := im.settle(); err != nil {
		return err
	}
	retry := im.deferred
	im.deferred = nil
	for start := 0; start < len(retry); start += im.opt.ChunkSize {
		for _, l := range retry[start:min(start+im.opt.ChunkSize, len(retry))] {
			im.chunk = append(im.chunk, &importLine{file: l.file, no: l.no, body: l.body, final: true})
		}
		if err := im.flush(ctx); err != nil {
			return err
		}
		if err := im.settle(); err != nil {
			return err
		}
	}
	return nil
}

// settle waits for the chunk being committed, if any, and counts it.
func (im *Importer) settle() error {
	if im.committing == nil {
		return nil
	}
	res := <-im.committing
	im.committing = nil
	if res.err != nil {
		return res.err
	}
	im.stats.Created += res.created
	im.stats.Updated += res.updated
	im.stats.Unchanged += res.unchanged
	if im.opt.Progress != nil {
		im.opt.Progress(im.stats)
	}
	return nil
}

// fail counts and reports an invalid line; under Strict it stops the run.
func (im *Importer) fail(l *importLine, err error) error {
	im.stats.Failed++
	if l.claimed { // it leaves its Type/id to the lines after it
		delete(im.seen, maphash.String(im.seenSeed, l.typ+"/"+l.id))
		l.claimed = false
	}
	le := &LineError{File: l.file, Line: l.no, Err: err}
	if im.opt.Report != nil {
		im.opt.Report(le)
	}
	if im.opt.Strict {
		return fmt.Errorf("%w: %w", ErrStrictStop, le)
	}
	return nil
}

// flush takes the pending lines through validation, reference resolution,
// extraction and one commit.
func (im *Importer) flush(ctx context.Context) error {
	chunk := im.chunk
	im.chunk = nil
	if len(chunk) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	parallel(len(chunk), func(i int) { im.s.checkLine(chunk[i]) })
	// Claims are made before the references resolve: a refused duplicate
	// must not become a target of another line's conditional reference.
	// A repeat of a Type/id an earlier line of this chunk claims waits
	// until that line's fate is known: a claimant that fails gives the
	// Type/id to it, whatever the chunk size.
	claimant := map[string]*importLine{}
	var main, repeats []*importLine
	for _, l := range chunk {
		if l.err != nil || l.final { // a second-pass line claimed in the first
			main = append(main, l)
			continue
		}
		key := l.typ + "/" + l.id
		switch {
		case claimant[key] != nil:
			repeats = append(repeats, l)
			continue
		case !im.claim(l):
			l.err = duplicateLine(l)
		default:
			claimant[key] = l
		}
		main = append(main, l)
	}
	if err := im.refs.resolveChunk(ctx, main); err != nil {
		return err
	}
	parallel(len(main), func(i int) { im.s.prepareLine(main[i]) })
	// A repeat whose claimant stands (about to commit, or waiting for the
	// second pass) is a duplicate. One whose claimant failed takes the
	// Type/id, as it would in a chunk of its own: the chunk ends before
	// it, and it and the lines after it go to the next flush (fresh, their
	// claims given back), so that they see its identifiers. That is rare:
	// a chunk keeps its size otherwise.
	cut := -1
	for _, l := range repeats {
		if claimant[l.typ+"/"+l.id].err == nil {
			l.err = duplicateLine(l)
			continue
		}
		cut = slices.Index(chunk, l)
		break
	}
	if cut >= 0 {
		var rest []*importLine
		gone := map[string]bool{} // Type/id no longer accepted in this flush
		for _, l := range chunk[cut:] {
			if l.claimed { // a line of main: the only one of its Type/id in the run so far
				delete(im.seen, maphash.String(im.seenSeed, l.typ+"/"+l.id))
				im.refs.forget(l)
				gone[l.typ+"/"+l.id] = true
			}
			rest = append(rest, &importLine{file: l.file, no: l.no, body: l.body, final: l.final})
		}
		chunk = chunk[:cut]
		// A line before the cut whose reference resolved to one after it
		// waits for the second pass, as it would have had the chunk ended
		// there; and so, in turn, do the lines that resolved to it.
		for changed := true; changed; {
			changed = false
			for _, l := range chunk {
				if l.err != nil || l.waits || !slices.ContainsFunc(l.refs, func(r condRef) bool { return gone[r.typ+"/"+r.target] }) {
					continue
				}
				l.waits, changed = true, true
				im.refs.forget(l)
				gone[l.typ+"/"+l.id] = true
			}
		}
		defer func() { im.chunk = append(rest, im.chunk...) }()
	}

	var ok []*importLine
	for _, l := range chunk {
		switch {
		case l.err != nil:
			if err := im.fail(l, l.err); err != nil {
				return err
			}
		case l.waits:
			if len(im.deferred) >= maxDeferred {
				if err := im.fail(l, fmt.Errorf("a conditional reference matches nothing yet, and more than %d lines already wait for a second pass", maxDeferred)); err != nil {
					return err
				}
				continue
			}
			l.obj, l.entries, l.idents, l.refs = nil, nil, nil, nil // keep only what the retry needs
			im.deferred = append(im.deferred, l)
		default:
			ok = append(ok, l)
		}
	}
	// One chunk commits in the background while the next is validated:
	// the commit is serial, validation and extraction use every core.
	if err := im.settle(); err != nil {
		return err
	}
	done := make(chan commitResult, 1)
	im.committing = done
	go func() { done <- im.commit(ctx, ok) }()
	return nil
}

func duplicateLine(l *importLine) error {
	return fhir.Errorf(fhir.Invalid, "duplicate", "%s/%s came earlier in this import: an import takes each resource once (its current version)", l.typ, l.id)
}

// claim records that a valid line l has its Type/id in this run; false
// when an earlier line has it. The first valid line of a Type/id keeps it,
// also while it waits for the second pass, so a rerun keeps the same
// line whatever the store held before; a line that fails after claiming
// gives its Type/id back (fail), to the lines read after that.
func (im *Importer) claim(l *importLine) bool {
	h := maphash.String(im.seenSeed, l.typ+"/"+l.id)
	if _, dup := im.seen[h]; dup {
		return false
	}
	im.seen[h] = struct{}{}
	l.claimed = true
	return true
}

// commit writes a chunk's lines in one transaction; a line whose stored
// current version has the same content is left alone (no new version).
func (im *Importer) commit(ctx context.Context, ok []*importLine) commitResult {
	var created, updated, unchanged int
	err := im.s.store.Update(ctx, func(tx store.Tx) error {
		created, updated, unchanged = 0, 0, 0 // Update may run this again
		for _, l := range ok {
			cur, err := tx.Current(l.typ, l.id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			switch {
			case cur == nil || cur.Deleted:
				created++
			case sameContent(cur, l.obj):
				unchanged++
				continue
			default:
				updated++
			}
			if _, err := im.s.putIndexed(tx, im.p, l.typ, l.id, l.obj, l.entries, false); err != nil {
				return fmt.Errorf("%s:%d: %w", l.file, l.no, err)
			}
		}
		return nil
	})
	return commitResult{created, updated, unchanged, err}
}

// checkLine parses and validates a line as a REST update of its own
// Type/id would, and finds its identifiers and conditional references.
func (s *Service) checkLine(l *importLine) {
	obj, err := parseJSON(l.body)
	if err != nil {
		l.err = err
		return
	}
	typ, ok := obj.String("resourceType")
	if !ok {
		l.err = fhir.Errorf(fhir.Invalid, "required", "the line has no resourceType").At("resourceType")
		return
	}
	if err := CheckType(typ); err != nil {
		l.err = err
		return
	}
	id, ok := obj.String("id")
	if !ok {
		// Without its id a line could not be referred to by the others,
		// and a second run would duplicate it.
		l.err = fhir.Errorf(fhir.Invalid, "required", "the %s has no id: an import keeps the ids of its lines", typ).At(typ + ".id")
		return
	}
	if err := checkID(typ, id); err != nil {
		l.err = err
		return
	}
	if err := s.validateBody(typ, l.body); err != nil {
		l.err = err
		return
	}
	l.typ, l.id, l.obj = typ, id, obj
	if runTracked[typ] {
		l.idents = identifiers(obj)
	}
	for _, key := range obj.Keys() {
		if typ == "Bundle" && key == "entry" {
			continue // a stored Bundle's entries are its own record, kept as sent (ownPart)
		}
		raw, _ := obj.Get(key)
		if bytes.Contains(raw, []byte(`"reference":"`)) { // compact: no space
			l.refs = append(l.refs, conditionalRefs(key, raw)...)
		}
	}
	for _, ref := range l.refs { // criteria that can never resolve fail the line now, before it claims its id
		if err := s.checkCriteria(ref); err != nil {
			l.err = err
			return
		}
	}
}

// prepareLine puts the resolved references into their members and
// extracts the index entries.
func (s *Service) prepareLine(l *importLine) {
	if l.err != nil || l.waits {
		return
	}
	for refs := l.refs; len(refs) > 0; {
		n := 1
		for n < len(refs) && refs[n].member == refs[0].member {
			n++
		}
		member := refs[:n]
		raw, _ := l.obj.Get(member[0].member)
		out, _ := rewriteReferences(raw, func(ref string) (string, bool) {
			for _, r := range member {
				if ref == r.typ+"?"+r.query {
					return r.typ + "/" + r.target, true
				}
			}
			return "", false
		})
		l.obj.Set(member[0].member, out)
		refs = refs[n:]
	}
	l.entries, l.err = s.indexEntries(l.typ, l.obj)
}

// identifiers returns the system|value of each identifier of obj that has
// both: the form a conditional reference by identifier names.
func identifiers(obj *fhir.Object) []string {
	raw, ok := obj.Get("identifier")
	if !ok {
		return nil
	}
	var ids []struct{ System, Value string }
	if json.Unmarshal(raw, &ids) != nil {
		return nil
	}
	var out []string
	for _, i := range ids {
		if i.System != "" && i.Value != "" {
			out = append(out, i.System+"|"+i.Value)
		}
	}
	return out
}

// sameContent reports whether obj, stamped as cur was, says what cur says:
// the same bytes, or the same JSON value (member order aside).
func sameContent(cur *fhir.Resource, obj *fhir.Object) bool {
	js, err := fhir.Stamp(obj, cur.ID, cur.VersionID, cur.LastUpdated)
	if err != nil {
		return false
	}
	if bytes.Equal(js, cur.JSON) {
		return true
	}
	a, errA := decodeCanonical(js)
	b, errB := decodeCanonical(cur.JSON)
	return errA == nil && errB == nil && reflect.DeepEqual(a, b)
}

// decodeCanonical decodes JSON keeping numbers as written: 1.50 and 1.5
// differ in the record of truth.
func decodeCanonical(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	return v, d.Decode(&v)
}

// parallel runs fn(0..n-1) on GOMAXPROCS goroutines.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}
