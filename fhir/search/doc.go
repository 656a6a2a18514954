// Package search owns FHIR R4 search semantics that do not touch storage:
//
//   - param.go: the registry of official SearchParameter definitions for the
//     exchange's types, compiled at load.
//   - fhirpath.go, fhirpath_eval.go, document.go: a FHIRPath-subset compiler
//     and evaluator over a fast JSON document decoder.
//   - extract.go, values.go, normalize.go: index values per parameter type
//     and their byte-ordered keys (key forms in values.go).
//   - query.go, operand.go, prefix.go, modifier.go, result.go, querynum.go:
//     the parsing of a query string into typed conditions and result
//     controls.
//
// The store indexes the keys Extract returns; the service layer turns the
// conditions into key ranges. This package knows neither bbolt nor HTTP.
package search
