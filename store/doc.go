// Package store keeps resources, their versions and the change log in one
// bbolt file, behind the Store and Tx interfaces so that another backend
// (PostgreSQL) can sit behind the same service layer later.
//
// # Guarantees
//
// Every effect of one interaction commits in one bbolt transaction or not at
// all. Update groups concurrent writers into one transaction so that they
// share an fsync (batch.go: no timer, the writers that arrive during a commit
// form the next). Search-index changes commit in the same transaction, to
// an index journal that is folded into the index B+trees in large batches
// (journal.go). The
// function passed to Update may therefore run more than once and must
// recompute everything from what the Tx reads. Values returned by a Tx are
// copies and outlive the transaction.
//
// Versions count 1, 2, 3 ... per resource; lastUpdated never goes backwards
// across the whole store, so the change log is in time order and history
// with _since can stop at the first older entry.
//
// # Must not know
//
// HTTP. Callers validate before writing: the store trusts its input.
//
// # Layout
//
// schema.go lists every bucket and key encoding.
package store
