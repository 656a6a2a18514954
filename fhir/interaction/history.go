package interaction

import (
	"context"
	"errors"
	"time"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/store"
)

// HistoryRequest selects instance (Type and ID), type (Type) or system
// history.
type HistoryRequest struct {
	Type, ID string
	Since    time.Time       // zero: no bound
	At       *fhir.DateRange // nil: no _at
	Count    int
	Cursor   uint64 // from a previous page's Next; 0 for the first page
	AsOf     uint64 // from the first page's AsOf: what an _at listing answers as of (store.HistoryQuery)
}

// MaxHistoryCount caps _count; DefaultHistoryCount applies without one.
const (
	DefaultHistoryCount = 50
	MaxHistoryCount     = 1000
)

// History returns one page of versions, newest first.
func (s *Service) History(ctx context.Context, p auth.Principal, req HistoryRequest) (*store.HistoryPage, error) {
	if req.Type != "" {
		if err := CheckType(req.Type); err != nil {
			return nil, err
		}
	}
	if req.ID == "" {
		if err := refuseConfinedHistory(p, req.Type); err != nil {
			return nil, err
		}
	}
	if req.ID != "" {
		if err := checkID(req.Type, req.ID); err != nil {
			return nil, err
		}
	}
	q := store.HistoryQuery{Type: req.Type, ID: req.ID, Since: req.Since, Count: req.Count, Before: req.Cursor, AsOf: req.AsOf}
	if q.Count <= 0 {
		q.Count = DefaultHistoryCount
	}
	q.Count = min(q.Count, MaxHistoryCount)
	if req.At != nil {
		q.AtStart, q.AtEnd = req.At.Start, req.At.End
	}
	var page *store.HistoryPage
	err := s.store.View(ctx, func(tx store.Tx) (err error) {
		if req.ID != "" {
			// Then only its versions in the compartment are shown.
			if err := s.hideUnknown(tx, p, req.Type, req.ID); err != nil {
				return err
			}
		}
		if page, err = tx.History(ctx, q); err != nil || !p.Confined(req.Type) {
			return err
		}
		kept := page.Entries[:0]
		for _, r := range page.Entries {
			ok, err := s.shown(tx, p, r)
			if err != nil {
				return err
			}
			if ok {
				kept = append(kept, r)
			}
		}
		if len(kept) < len(page.Entries) {
			page.Total = -1 // counted before the versions outside were left out
		}
		page.Entries = kept
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(req.Type, req.ID)
	}
	return page, err
}
