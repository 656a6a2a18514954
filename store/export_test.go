package store

import "context"

// FoldIndexJournalChunk folds the next chunk of the index journal, as a
// write does when the journal is full, for tests and benchmarks.
func (s *Bolt) FoldIndexJournalChunk(ctx context.Context) error {
	return s.Update(ctx, func(t Tx) error { _, err := t.(*boltTx).foldJournal(s.foldChunk); return err })
}
