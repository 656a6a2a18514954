package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"healthhub/fhir"
)

// HistoryQuery selects versions for instance (Type and ID), type (Type) or
// system (neither) history.
type HistoryQuery struct {
	Type, ID string
	// Since keeps versions with lastUpdated >= Since (zero: no bound).
	Since time.Time
	// AtStart/AtEnd, when AtEnd is set, keep versions that were current at
	// some point of [AtStart, AtEnd) (_at, by the precision given).
	AtStart, AtEnd time.Time
	// Count is the page size (> 0).
	Count int
	// Before continues a listing: only entries older than this cursor (a
	// version for instance history, a log sequence otherwise). 0: newest.
	// Writes after the first page only add newer entries, so following
	// cursors visits every entry once.
	Before uint64
	// AsOf is the newest entry when the listing's first page was read
	// (HistoryPage.AsOf; 0: the newest entry now). With _at, a version
	// written after it does not end the currency of the version before
	// it: the listing answers as of its first page. Otherwise a resource
	// updated between two pages would drop out of an _at that reaches
	// now, since its new version is newer than the cursor and the
	// version the cursor reaches is no longer current.
	AsOf uint64
}

// HistoryPage is one page, newest first.
type HistoryPage struct {
	Entries []*fhir.Resource
	// Next is the cursor of the next page; 0 when this is the last page.
	Next uint64
	// Total counts every matching entry when it was cheap to know (instance
	// history without filters); -1 otherwise.
	Total int
	// AsOf is the listing's snapshot, for the next page's HistoryQuery.
	AsOf uint64
}

// keep reports whether r is in the listing; writtenLater tells whether a
// version was written after the listing's snapshot (AsOf).
func (q HistoryQuery) keep(t *boltTx, r *fhir.Resource, writtenLater func(*fhir.Resource) (bool, error)) (bool, error) {
	if !q.Since.IsZero() && r.LastUpdated.Before(q.Since) {
		return false, nil
	}
	if q.AtEnd.IsZero() {
		return true, nil
	}
	if !r.LastUpdated.Before(q.AtEnd) {
		return false, nil
	}
	// Current until the next version was written (or still current, as
	// of the snapshot).
	next, err := t.Version(r.Type, r.ID, r.VersionID+1)
	if err == ErrNotFound {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if later, err := writtenLater(next); err != nil || later {
		return later, err
	}
	return next.LastUpdated.After(q.AtStart), nil
}

// loggedAfter reports whether version v was written after the change log
// entry asOf (0, or an entry the log does not have, as a cursor made up
// by a client names: never). The log does not say at which entry a
// version was written, but lastUpdated never goes backwards along it: a
// version newer than asOf's is later, an older one earlier, and one of
// the same millisecond is earlier if it is among the entries of that
// millisecond up to asOf.
type loggedAfter struct {
	t    *boltTx
	asOf uint64
	read bool      // asOf's entry was looked up (asOf is 0 if the log does not have it)
	at   time.Time // lastUpdated of asOf's version
	// upTo holds the versions logged at the millisecond at, up to asOf,
	// read once: a transaction writes thousands in one millisecond, and
	// reading them for each version checked made a page quadratic.
	upTo map[versionRef]struct{}
}

type versionRef struct {
	typ, id string
	version uint64
}

func (l *loggedAfter) check(v *fhir.Resource) (bool, error) {
	if l.asOf == 0 {
		return false, nil
	}
	c := l.t.btx.Bucket(bucketLog).Cursor()
	entryTime := func(e []byte) (time.Time, versionRef, error) {
		typ, id, version, err := decodeLogEntry(e)
		if err != nil {
			return time.Time{}, versionRef{}, err
		}
		r, err := l.t.Version(typ, id, version)
		if err != nil {
			return time.Time{}, versionRef{}, err
		}
		return r.LastUpdated, versionRef{typ, id, version}, nil
	}
	if !l.read {
		l.read = true
		k, e := c.Seek(u64(l.asOf))
		if k == nil || beUint64(k) != l.asOf {
			l.asOf = 0
			return false, nil
		}
		at, _, err := entryTime(e)
		if err != nil {
			return false, err
		}
		l.at = at
	}
	switch {
	case v.LastUpdated.After(l.at):
		return true, nil
	case v.LastUpdated.Before(l.at):
		return false, nil
	}
	if l.upTo == nil {
		l.upTo = map[versionRef]struct{}{}
		for k, e := c.Seek(u64(l.asOf)); k != nil; k, e = c.Prev() {
			at, ref, err := entryTime(e)
			if err != nil {
				l.upTo = nil
				return false, err
			}
			if at.Before(l.at) {
				break
			}
			l.upTo[ref] = struct{}{}
		}
	}
	_, earlier := l.upTo[versionRef{v.Type, v.ID, v.VersionID}]
	return !earlier, nil
}

const ctxCheckEvery = 256

func (t *boltTx) History(ctx context.Context, q HistoryQuery) (*HistoryPage, error) {
	page := &HistoryPage{Total: -1}
	if q.ID != "" {
		return page, t.instanceHistory(ctx, q, page)
	}
	var c *bolt.Cursor
	if q.Type != "" {
		b, err := t.sub(bucketTLog, q.Type, false)
		if err != nil || b == nil {
			return page, err
		}
		c = b.Cursor()
	} else {
		c = t.btx.Bucket(bucketLog).Cursor()
	}
	var k, v []byte
	page.AsOf = q.AsOf
	if page.AsOf == 0 { // the first page: the snapshot is the newest entry
		if lk, _ := t.btx.Bucket(bucketLog).Cursor().Last(); lk != nil {
			page.AsOf = beUint64(lk)
		}
	}
	later := &loggedAfter{t: t, asOf: page.AsOf}
	if q.Before == 0 {
		k, v = c.Last()
	} else {
		c.Seek(u64(q.Before))
		k, v = c.Prev() // Seek lands on Before (or after it, or nil at the end)
		if k == nil {
			if lk, lv := c.Last(); lk != nil && beUint64(lk) < q.Before {
				k, v = lk, lv
			}
		}
	}
	var lastSeq uint64
	for n := 0; k != nil; k, v = c.Prev() {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		typ, id, version, err := q.Type, "", uint64(0), error(nil)
		if q.Type != "" {
			id, version, err = decodeTypeLogEntry(v)
		} else {
			typ, id, version, err = decodeLogEntry(v)
		}
		if err != nil {
			return nil, err
		}
		r, err := t.Version(typ, id, version)
		if errors.Is(err, ErrNotFound) { // damage, which Check reports; not "no such resource"
			err = fmt.Errorf("%w: the change log names %s/%s version %d, which does not exist", errCorrupt, typ, id, version)
		}
		if err != nil {
			return nil, err
		}
		// lastUpdated never goes backwards along the log, so once older
		// than Since, every earlier entry is too.
		if !q.Since.IsZero() && r.LastUpdated.Before(q.Since) {
			break
		}
		ok, err := q.keep(t, r, later.check)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if len(page.Entries) == q.Count {
			page.Next = lastSeq
			break
		}
		page.Entries = append(page.Entries, r)
		lastSeq = beUint64(k)
	}
	return page, nil
}

func (t *boltTx) instanceHistory(ctx context.Context, q HistoryQuery, page *HistoryPage) error {
	cur, err := t.Current(q.Type, q.ID)
	if err != nil {
		return err
	}
	if q.Since.IsZero() && q.AtEnd.IsZero() {
		page.Total = int(cur.VersionID)
	}
	page.AsOf = q.AsOf
	if page.AsOf == 0 {
		page.AsOf = cur.VersionID
	}
	later := func(v *fhir.Resource) (bool, error) { return v.VersionID > page.AsOf, nil }
	top := cur.VersionID
	if q.Before != 0 && q.Before-1 < top {
		top = q.Before - 1
	}
	for v := top; v >= 1; v-- {
		if (top-v)%ctxCheckEvery == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r, err := t.Version(q.Type, q.ID, v)
		if errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("%w: %s/%s is at version %d but has no version %d", errCorrupt, q.Type, q.ID, cur.VersionID, v)
		}
		if err != nil {
			return err
		}
		if !q.Since.IsZero() && r.LastUpdated.Before(q.Since) {
			break
		}
		ok, err := q.keep(t, r, later)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if len(page.Entries) == q.Count {
			page.Next = v + 1
			break
		}
		page.Entries = append(page.Entries, r)
	}
	return nil
}
