package interaction

import (
	"context"

	"healthhub/fhir"
	"healthhub/store"
)

// reindexChunk is how many resources one reindex transaction rewrites:
// small enough to keep a transaction's memory bounded, large enough to
// share its fsync.
const reindexChunk = 500

// Reindex rebuilds the search index of every current resource of the
// searchable types from its stored JSON (after a definition changed).
// progress, when set, is called after each chunk with the running count.
func (s *Service) Reindex(ctx context.Context, progress func(typ string, done int)) (int, error) {
	total := 0
	for _, typ := range s.registry.SearchTypes() {
		var ids []string
		err := s.store.View(ctx, func(tx store.Tx) error {
			return tx.ScanIDs(ctx, typ, func(id string) bool { ids = append(ids, id); return true })
		})
		if err != nil {
			return total, err
		}
		for start := 0; start < len(ids); start += reindexChunk {
			chunk := ids[start:min(start+reindexChunk, len(ids))]
			err := s.store.Update(ctx, func(tx store.Tx) error {
				for _, id := range chunk {
					if err := s.reindexOne(tx, typ, id); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += len(chunk)
			if progress != nil {
				progress(typ, start+len(chunk))
			}
		}
	}
	return total, nil
}

func (s *Service) reindexOne(tx store.Tx, typ, id string) error {
	r, err := tx.Current(typ, id)
	if err != nil {
		return err
	}
	if r.Deleted {
		return tx.SetIndex(typ, id, nil)
	}
	obj, err := fhir.ParseObject(r.JSON)
	if err != nil {
		return err
	}
	entries, err := s.indexEntries(typ, obj)
	if err != nil {
		return err
	}
	return tx.SetIndex(typ, id, append(entries, lastUpdatedEntries(r.LastUpdated)...))
}
