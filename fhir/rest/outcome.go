package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
)

// This file is the only place that knows HTTP status codes for errors.

var kindStatus = map[fhir.Kind]int{
	fhir.Invalid:            http.StatusBadRequest,
	fhir.Unprocessable:      http.StatusUnprocessableEntity,
	fhir.NotFound:           http.StatusNotFound,
	fhir.Gone:               http.StatusGone,
	fhir.Conflict:           http.StatusConflict,
	fhir.PreconditionFailed: http.StatusPreconditionFailed,
	fhir.Unauthenticated:    http.StatusUnauthorized,
	fhir.Forbidden:          http.StatusForbidden,
	fhir.MethodNotAllowed:   http.StatusMethodNotAllowed,
	fhir.NotAcceptable:      http.StatusNotAcceptable,
	fhir.TooLarge:           http.StatusRequestEntityTooLarge,
	fhir.UnsupportedMedia:   http.StatusUnsupportedMediaType,
	fhir.Busy:               http.StatusServiceUnavailable,
	fhir.Internal:           http.StatusInternalServerError,
}

// OperationOutcome JSON shapes.
type outcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []outcomeIssue `json:"issue"`
}

type outcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

func outcomeJSON(issues []fhir.Issue) []byte {
	oo := outcome{ResourceType: "OperationOutcome"}
	for _, is := range issues {
		sev := is.Severity
		if sev == "" {
			sev = "error"
		}
		oo.Issue = append(oo.Issue, outcomeIssue{Severity: sev, Code: is.Code, Diagnostics: is.Diagnostics, Expression: is.Expression})
	}
	b, _ := json.Marshal(oo)
	return b
}

// writeError answers err as an OperationOutcome. A *fhir.Error's issues are
// shown; anything else is a 500 whose cause goes to the log only, with the
// request id in the diagnostics so an operator can find it.
func (h *Handlers) writeError(c *gin.Context, err error) {
	if errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil {
		// The client left; there is no one to answer.
		h.log.DebugContext(c.Request.Context(), "client went away", "request_id", requestID(c))
		c.Status(499)
		c.Abort()
		return
	}
	status, issues := h.errorOutcome(c, err)
	if status == http.StatusForbidden && h.auth != nil && c.Writer.Header().Get("WWW-Authenticate") == "" {
		// A scope found wanting deeper in (a chain, _has, a conditional
		// criterion, a transaction's entry, a compartment): RFC 6750 3.1,
		// the scope needed named in the OperationOutcome.
		c.Header("WWW-Authenticate", `Bearer realm="healthhub", error="insufficient_scope"`)
	}
	h.writeOutcome(c, status, issues)
}

// errorOutcome maps err to a status and the issues to show. The cause of
// an error is kept for the request logger, never shown; an error that is
// not a *fhir.Error is a 500 that shows only the request id.
func (h *Handlers) errorOutcome(c *gin.Context, err error) (int, []fhir.Issue) {
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind == fhir.Internal || len(fe.Issues) == 0 {
		state(c).cause = err
		return http.StatusInternalServerError, internalIssues(c)
	}
	status := kindStatus[fe.Kind]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if fe.Err != nil {
		state(c).cause = fe.Err // logged by the request logger
	}
	return status, fe.Issues
}

func (h *Handlers) internalError(c *gin.Context, err error) {
	state(c).cause = err
	h.writeOutcome(c, http.StatusInternalServerError, internalIssues(c))
}

func internalIssues(c *gin.Context) []fhir.Issue {
	return []fhir.Issue{{
		Severity:    "fatal",
		Code:        "exception",
		Diagnostics: "internal server error; request id " + requestID(c),
	}}
}

func (h *Handlers) writeOutcome(c *gin.Context, status int, issues []fhir.Issue) {
	h.writeJSON(c, status, outcomeJSON(issues))
	c.Abort()
}
