package store

import "context"

// FoldIndexJournalChunk folds the next chunk of the index journal, as a
// write does when the journal is full, for tests and benchmarks.
func (s *Bolt) FoldIndexJournalChunk(ctx context.Context) error {
	return s.Update(ctx, func(t Tx) error { _, err := t.(*boltTx).foldJournal(s.foldChunk); return err })
}

// PrepareIndexJournalFold computes the next chunk's fold from a snapshot,
// as the background folds do, and returns the write that applies it.
func (s *Bolt) PrepareIndexJournalFold(ctx context.Context) (apply func() error, err error) {
	plan, err := s.prepareFold(s.foldChunk)
	if err != nil {
		return nil, err
	}
	return func() error {
		return s.Update(ctx, func(t Tx) error { _, err := t.(*boltTx).fold(s.foldChunk, plan); return err })
	}, nil
}
