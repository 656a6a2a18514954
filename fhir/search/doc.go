// Package search owns FHIR R4 search semantics that do not touch storage:
// the registry of official SearchParameter definitions (param.go), the
// FHIRPath-subset evaluation that extracts index values from a resource's
// JSON (fhirpath.go, extract.go), and the parsing of a query string into
// typed conditions (query.go). The store indexes what Extract returns and
// answers the conditions; this package knows neither bbolt nor HTTP.
package search
