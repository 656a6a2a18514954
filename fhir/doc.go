// Package fhir holds what every layer of healthhub shares about FHIR R4
// resources: the Resource value (raw JSON plus the server-owned identity and
// meta), the one error type with its closed set of kinds, id syntax, and the
// in-place stamping of id and meta into the client's bytes.
//
// # Raw JSON is the record of truth
//
// The typed models of github.com/samply/golang-fhir-models drop `contained`
// and primitive extensions, so this package never round-trips a resource
// through them. A resource is kept as the bytes the client sent (compacted);
// Stamp rewrites only `id` and `meta.versionId` / `meta.lastUpdated`, keeping
// every other member, its order and its exact number spelling.
//
// # Must not know
//
// HTTP and bbolt. Validation lives in fhir/validate, storage in store,
// handlers in fhir/rest.
package fhir
