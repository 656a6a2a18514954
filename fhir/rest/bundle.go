package rest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
	"healthhub/fhir/interaction"
)

// bundle serves POST [base] with a transaction or batch Bundle and answers
// with its transaction-response or batch-response.
func (h *Handlers) bundle(c *gin.Context) {
	body, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	kind, results, err := h.svc.Bundle(c.Request.Context(), h.principal(c), body, h.bundleOpts)
	if err != nil {
		h.writeError(c, err)
		return
	}
	prefer := preferReturn(c)
	b := bundle{ResourceType: "Bundle", Type: kind + "-response", Entry: make([]entry, 0, len(results))}
	for i, r := range results {
		e, err := h.responseEntry(c, i, r, prefer)
		if err != nil {
			h.internalError(c, err)
			return
		}
		b.Entry = append(b.Entry, e)
	}
	out, err := marshalBundle(b)
	if err != nil {
		h.internalError(c, err)
		return
	}
	h.writeJSON(c, http.StatusOK, out)
}

func statusLine(code int) string { return strconv.Itoa(code) + " " + http.StatusText(code) }

// responseEntry is the response entry of one Bundle entry's result. A
// write's resource is left out for Prefer: return=minimal, and replaced by
// an informational response.outcome for return=OperationOutcome, as a
// write on its own answers (writeWritten).
//
// An entry's 500 is logged at once, at ERROR, with the entry's index: the
// request's own log line is at INFO when the Bundle as a whole answered,
// and has room for one cause, the request's own.
func (h *Handlers) responseEntry(c *gin.Context, index int, r interaction.Result, prefer string) (entry, error) {
	if r.Err != nil {
		st := state(c)
		requestCause := st.cause
		status, issues := h.errorOutcome(c, r.Err)
		if status >= http.StatusInternalServerError {
			h.log.ErrorContext(c.Request.Context(), "bundle entry failed", "request_id", st.id, "entry", index, "status", status, "error", fmt.Sprint(st.cause))
		}
		st.cause = requestCause
		return entry{Response: &entryResponse{Status: statusLine(status), Outcome: outcomeJSON(issues)}}, nil
	}
	var e entry
	status := http.StatusOK
	switch r.Outcome {
	case interaction.Deleted:
		e.Response = &entryResponse{Status: statusLine(http.StatusNoContent)}
		if len(r.Deleted) == 1 {
			e.Response.Etag = r.Deleted[0].ETag()
		}
		if prefer == "OperationOutcome" { // as a DELETE on its own answers
			paths := make([]string, len(r.Deleted))
			for i, d := range r.Deleted {
				paths[i] = d.Path()
			}
			msg := "nothing was deleted: no such resource, or already deleted"
			if len(paths) > 0 {
				msg = "deleted " + strings.Join(paths, ", ")
			}
			e.Response.Outcome = outcomeJSON([]fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: msg}})
		}
		return e, nil
	case interaction.Searched:
		e.Response = &entryResponse{Status: statusLine(status)}
		if !r.Head {
			page, err := h.searchBundle(r.Page.Query.Type, r.Page)
			if err != nil {
				return e, err
			}
			e.Resource = page
		}
		return e, nil
	case interaction.Created:
		status = http.StatusCreated
	case interaction.NotModified:
		status = http.StatusNotModified
	}
	res := r.Resource
	e.Response = &entryResponse{Status: statusLine(status), Etag: res.ETag(), LastModified: res.LastUpdated.Format(fhir.InstantLayout)}
	if r.Outcome == interaction.NotModified {
		return e, nil // the client has it
	}
	e.FullURL = h.base + "/" + res.Path()
	if r.Outcome == interaction.Created || r.Outcome == interaction.Updated {
		e.Response.Location = h.base + "/" + res.VersionPath()
	}
	write := r.Outcome != interaction.Read
	switch {
	case r.Head:
	case write && prefer == "minimal":
	case write && prefer == "OperationOutcome":
		verb := map[interaction.Outcome]string{interaction.Created: "created", interaction.Updated: "updated", interaction.Found: "found"}[r.Outcome]
		e.Response.Outcome = outcomeJSON([]fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: verb + " " + res.VersionPath()}})
	default:
		e.Resource = res.JSON
	}
	return e, nil
}
