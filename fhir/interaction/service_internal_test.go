package interaction

import (
	"testing"

	"healthhub/fhir/search"
	"healthhub/fhir/validate"
	"healthhub/store"
)

// newTestService is a Service over a fresh store, with the official search
// parameters, closed at the end of the test. The white-box tests use it to
// reach the seams (linkedPatients and the like); the black-box ones have
// their own in service_test.go.
func newTestService(t testing.TB) *Service {
	t.Helper()
	// A small index journal folds every few writes, so searches read
	// entries from the journal and the B+trees both (store/journal.go).
	// The store derives entries as serve's does, and checks every write
	// gives it the entries it would derive.
	reg, err := search.Load()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), store.Options{IndexJournalMax: 5, Indexer: NewIndexer(reg), VerifyIndexer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, validate.New(), reg)
}
