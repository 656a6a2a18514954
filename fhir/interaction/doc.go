// Package interaction is the service layer: one method per FHIR interaction
// (read, vread, create, update, delete, history, search, Patient/$everything)
// and the bulk NDJSON import (Importer). Each takes the caller as an
// explicit auth.Principal, does the expensive work (parsing, validation)
// before opening a transaction, and reaches storage only through the
// store.Store interface, in one transaction per interaction.
//
// It knows nothing of HTTP: handlers in fhir/rest translate requests into
// these calls and map the *fhir.Error results to OperationOutcomes.
// Scope, consent and audit checks plug in here, around the transaction.
package interaction
