// Package interaction is the service layer: one method per FHIR interaction
// (read, vread, create, update, delete, history, search, conditional create,
// update and delete, patch, transaction and batch Bundles, Patient/$everything)
// and the bulk NDJSON import (Importer). Each takes the
// caller as an explicit auth.Principal, does the expensive work (parsing,
// validation, index extraction) before opening a transaction, and reaches
// storage only through the store.Store interface, in one transaction per
// interaction; a transaction Bundle is one transaction too.
//
// # Conditional interactions and Bundles
//
// Conditional interactions, PATCH and Bundle entries share one engine
// (engine.go): operations are resolved (conditional targets, urn: fullUrls,
// conditional references) in a read transaction, prepared against that
// resolution (references rewritten in the raw JSON, patches applied and
// validated, index entries extracted), then resolved again inside the write
// transaction, where whatever changed in between is prepared again. Matching
// conditional criteria inside the write transaction is what makes two racing
// conditional creates create one resource. The write function may run more
// than once (store group commit): it recomputes everything from the
// transaction and the ops, which it never modifies.
//
// It knows nothing of HTTP: handlers in fhir/rest translate requests into
// these calls and map the *fhir.Error results to OperationOutcomes.
// Scope, consent and audit checks plug in here, around the transaction.
package interaction
