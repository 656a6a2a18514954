package fhir

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the closed set of error categories. fhir/rest maps each to an HTTP
// status and a default OperationOutcome issue code, in one place.
type Kind uint8

const (
	Invalid            Kind = iota + 1 // 400: unparsable or invalid content or request
	Unprocessable                      // 422: business rule
	NotFound                           // 404: unknown type or id
	Gone                               // 410: deleted
	Conflict                           // 409: version clash
	PreconditionFailed                 // 412: If-Match mismatch, ambiguous conditional
	Unauthenticated                    // 401
	Forbidden                          // 403
	MethodNotAllowed                   // 405
	NotAcceptable                      // 406: response format we cannot produce
	TooLarge                           // 413: body over the limit
	UnsupportedMedia                   // 415: request content type we do not read
	Busy                               // 503: transient
	Internal                           // 500: never shown to the client in detail
)

// Issue is one OperationOutcome.issue. Code is from the R4 IssueType value
// set (invalid, structure, required, value, not-found, deleted, conflict ...).
type Issue struct {
	Severity    string   // fatal | error | warning | information
	Code        string   // IssueType code
	Diagnostics string   // safe to show a client
	Expression  []string // FHIRPath of the element, e.g. "Patient.birthDate"
}

// Error is the one error type of the server. Diagnostics in Issues are shown
// to the client; Err is the cause, logged but never sent.
type Error struct {
	Kind   Kind
	Issues []Issue
	Err    error
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, is := range e.Issues {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(is.Diagnostics)
		if len(is.Expression) > 0 {
			fmt.Fprintf(&b, " (at %s)", strings.Join(is.Expression, ", "))
		}
	}
	if e.Err != nil {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a single issue of severity "error".
func Errorf(kind Kind, code string, format string, args ...any) *Error {
	return &Error{Kind: kind, Issues: []Issue{{Severity: "error", Code: code, Diagnostics: fmt.Sprintf(format, args...)}}}
}

// At sets the element expression of the error's first issue and returns e.
func (e *Error) At(expr ...string) *Error {
	if len(e.Issues) > 0 {
		e.Issues[0].Expression = expr
	}
	return e
}

// Wrap attaches a cause (logged, never sent) and returns e.
func (e *Error) Wrap(err error) *Error {
	e.Err = err
	return e
}

// KindOf returns the Kind of err if it is (or wraps) an *Error, else Internal.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Internal
}
