package interaction

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/search"
	"healthhub/store"
)

// Keyset paging. A search whose only condition is one value of one index
// (Observation?code=sys|c, the broad searches that match a large part of a
// type, as well as Patient?identifier=sys|v) is paged by position in that
// value's range, not by a frozen list of every match: a page costs its own
// entries, however many matches there are, and its cursor names the last
// entry it returned. The index holds each (value, id) once, in value then id
// order, and one value's range holds a resource once (a wider range, such
// as a code system or a date range, holds it once per value within it, so
// those searches take the snapshot path), so following next visits every
// resource that matches from the first page to the last exactly once: a resource updated meanwhile keeps
// its place unless its matching value changed, and one created meanwhile
// shows up when it sorts after the cursor. The total is reported when the
// first page holds every match; counting more would cost what keyset
// paging saves, so a search that asks for _total takes the snapshot path.

// keysetCursorPrefix marks a keyset cursor; snapshot cursors are hex.
const keysetCursorPrefix = "k"

func isKeysetCursor(c string) bool { return len(c) > 0 && c[:1] == keysetCursorPrefix }

// keysetScan returns the one scan a keyset-paged search walks, when q is
// such a search.
func (s *Service) keysetScan(tx store.Tx, p auth.Principal, q *search.Query) (search.Scan, bool, error) {
	if q.Type == "" || len(q.Conditions) != 1 || len(q.Chains) > 0 || len(q.Has) > 0 || len(q.Sort) > 0 ||
		(q.Total != "" && q.Total != search.TotalNone) || q.CountOnly() || !s.visibleAll(p, q.Type) {
		return search.Scan{}, false, nil
	}
	c, err := s.widenPatientReferences(tx, &q.Conditions[0])
	if err != nil {
		return search.Scan{}, false, err
	}
	if _, ok := c.IDs(); ok {
		return search.Scan{}, false, nil
	}
	scans, exact, all := c.Scans()
	if all || !exact {
		return search.Scan{}, false, nil
	}
	if len(scans) > 1 && isKeysetCursor(q.Cursor) {
		// A later page keeps to the value the first one chose, though a
		// resource stored with another form of the value may have come
		// since: like any resource created meanwhile on the far side of
		// the cursor, it is not in this walk.
		if vk, _, ok := decodeKeysetCursor(q.Cursor); ok {
			for _, sc := range scans {
				if sc.Point && bytes.Compare(vk, sc.From) >= 0 && (sc.To == nil || bytes.Compare(vk, sc.To) < 0) {
					return sc, true, nil
				}
			}
		}
	}
	if len(scans) > 1 {
		// A reference names its resource relative or as an absolute URL to
		// this server (localReferences); the URL form is seldom stored.
		// Values with no entry drop out, so one value may remain.
		var err error
		if scans, err = nonEmpty(tx, q.Type, scans); err != nil {
			return search.Scan{}, false, err
		}
	}
	if len(scans) != 1 || !scans[0].Point {
		return search.Scan{}, false, nil
	}
	return scans[0], true, nil
}

// nonEmpty is scans less those of points with no entry; ranges stay.
func nonEmpty(tx store.Tx, typ string, scans []search.Scan) ([]search.Scan, error) {
	out := scans[:0:0]
	for _, sc := range scans {
		if sc.Point {
			found := false
			err := tx.ScanIndex(context.Background(), typ, sc.Param, sc.From, sc.To, func([]byte, string) bool { found = true; return false })
			if err != nil {
				return nil, err
			}
			if !found {
				continue
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// keysetPage fills page with the matches of sc after the cursor's entry (or
// from the start), and the cursor of the next page.
func (s *Service) keysetPage(ctx context.Context, p auth.Principal, tx store.Tx, q *search.Query, sc search.Scan, page *SearchPage) error {
	var (
		lastKey []byte
		lastID  string
		failed  error
	)
	visit := func(vk []byte, id string) bool {
		r, err := tx.Current(q.Type, id)
		if errors.Is(err, store.ErrNotFound) {
			return true
		}
		if err != nil {
			failed = err
			return false
		}
		if r.Deleted || !s.visible(tx, p, r) {
			return true
		}
		if len(page.Matches) == q.Count {
			page.Next = true
			return false
		}
		page.Matches = append(page.Matches, r)
		lastKey, lastID = bytes.Clone(vk), id
		return true
	}
	var err error
	if q.Cursor == "" {
		err = tx.ScanIndex(ctx, q.Type, sc.Param, sc.From, sc.To, visit)
	} else {
		vk, id, ok := decodeKeysetCursor(q.Cursor)
		if !ok || bytes.Compare(vk, sc.From) < 0 || (sc.To != nil && bytes.Compare(vk, sc.To) >= 0) {
			return unknownCursor(q.Cursor)
		}
		err = tx.ScanIndexAfter(ctx, q.Type, sc.Param, vk, id, sc.To, visit)
	}
	if err == nil {
		err = failed
	}
	if err != nil {
		return err
	}
	if page.Next {
		page.NextCursor = encodeKeysetCursor(lastKey, lastID)
	} else if q.Cursor == "" && q.Total != search.TotalNone {
		page.Total = len(page.Matches) // the first page holds them all
	}
	inc, err := s.includes(ctx, p, tx, q, page.Matches)
	page.Included = inc
	return err
}

// A keyset cursor is "k" and, base64url, the value key's length (uvarint),
// the value key and the id.
func encodeKeysetCursor(valueKey []byte, id string) string {
	b := binary.AppendUvarint(nil, uint64(len(valueKey)))
	b = append(append(b, valueKey...), id...)
	return keysetCursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeKeysetCursor(c string) (valueKey []byte, id string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(c[len(keysetCursorPrefix):])
	if err != nil {
		return nil, "", false
	}
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, "", false
	}
	valueKey, id = b[w:w+int(n)], string(b[w+int(n):])
	return valueKey, id, fhir.ValidID(id)
}

func unknownCursor(c string) error {
	return fhir.Errorf(fhir.Gone, "not-found", "the paging cursor %q has expired or is unknown: run the search again", c)
}
