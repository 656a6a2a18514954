package rest

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
	"healthhub/fhir/interaction"
)

func (h *Handlers) create(c *gin.Context) {
	if err := noIfNoneMatch(c); err != nil {
		h.writeError(c, err)
		return
	}
	body, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	if ine := c.GetHeader("If-None-Exist"); ine != "" {
		res, err := h.svc.ConditionalCreate(c.Request.Context(), h.principal(c), c.Param("type"), body, ine)
		if err != nil {
			h.writeError(c, err)
			return
		}
		if res.Outcome == interaction.Found {
			h.writeWritten(c, http.StatusOK, res.Resource, "found existing")
			return
		}
		h.writeWritten(c, http.StatusCreated, res.Resource, "created")
		return
	}
	r, err := h.svc.Create(c.Request.Context(), h.principal(c), c.Param("type"), body)
	if err != nil {
		h.writeError(c, err)
		return
	}
	h.writeWritten(c, http.StatusCreated, r, "created")
}

func (h *Handlers) update(c *gin.Context) {
	ifMatch, err := precondition(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	body, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	update := h.svc.Update
	switch inm := strings.TrimSpace(c.GetHeader("If-None-Match")); inm {
	case "":
	case "*": // create only: never overwrite (RFC 9110 13.1.2)
		update = h.svc.UpdateIfAbsent
	default:
		h.writeError(c, fhir.Errorf(fhir.Invalid, "not-supported", "If-None-Match %q on an update: only * (create only, never overwrite) is supported", inm))
		return
	}
	r, created, err := update(c.Request.Context(), h.principal(c), c.Param("type"), c.Param("id"), body, ifMatch)
	if err != nil {
		h.writeError(c, err)
		return
	}
	if created {
		h.writeWritten(c, http.StatusCreated, r, "created")
		return
	}
	h.writeWritten(c, http.StatusOK, r, "updated")
}

// conditionalUpdate serves PUT [type]?criteria.
func (h *Handlers) conditionalUpdate(c *gin.Context) {
	ifMatch, err := precondition(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	body, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	res, err := h.svc.ConditionalUpdate(c.Request.Context(), h.principal(c), c.Param("type"), h.criteria(c), body, ifMatch)
	if err != nil {
		h.writeError(c, err)
		return
	}
	if res.Outcome == interaction.Created {
		h.writeWritten(c, http.StatusCreated, res.Resource, "created")
		return
	}
	h.writeWritten(c, http.StatusOK, res.Resource, "updated")
}

// conditionalDelete serves DELETE [type]?criteria. Nothing matching is
// not an error: 200 with an OperationOutcome that says so.
func (h *Handlers) conditionalDelete(c *gin.Context) {
	ifMatch, err := precondition(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	res, err := h.svc.ConditionalDelete(c.Request.Context(), h.principal(c), c.Param("type"), h.criteria(c), ifMatch, h.bundleOpts.MultipleDeletes)
	if err != nil {
		h.writeError(c, err)
		return
	}
	if len(res.Deleted) == 0 {
		h.writeOutcome(c, http.StatusOK, []fhir.Issue{{Severity: "information", Code: "not-found", Diagnostics: "no " + c.Param("type") + " matched the criteria: nothing was deleted"}})
		return
	}
	if len(res.Deleted) == 1 {
		c.Header("ETag", res.Deleted[0].ETag())
	}
	if preferReturn(c) == "OperationOutcome" {
		paths := make([]string, len(res.Deleted))
		for i, r := range res.Deleted {
			paths[i] = r.Path()
		}
		h.writeOutcome(c, http.StatusOK, []fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: "deleted " + strings.Join(paths, ", ")}})
		return
	}
	c.Status(http.StatusNoContent)
}

// criteria are the search parameters of a conditional request (the
// service reads an absolute reference to this server as relative).
func (h *Handlers) criteria(c *gin.Context) url.Values {
	return c.Request.URL.Query()
}

func (h *Handlers) delete(c *gin.Context) {
	ifMatch, err := precondition(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	r, err := h.svc.Delete(c.Request.Context(), h.principal(c), c.Param("type"), c.Param("id"), ifMatch)
	if err != nil {
		h.writeError(c, err)
		return
	}
	if r != nil {
		c.Header("ETag", r.ETag())
	}
	if preferReturn(c) == "OperationOutcome" {
		msg := "deleted " + c.Param("type") + "/" + c.Param("id")
		if r == nil {
			msg = c.Param("type") + "/" + c.Param("id") + " was already deleted or never existed"
		}
		h.writeOutcome(c, http.StatusOK, []fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: msg}})
		return
	}
	c.Status(http.StatusNoContent)
}

// precondition reads If-Match.
func precondition(c *gin.Context) (interaction.Precondition, error) {
	if c.Request.Method != http.MethodPut || c.Param("id") == "" {
		// Only PUT [type]/[id] evaluates If-None-Match (update).
		if err := noIfNoneMatch(c); err != nil {
			return 0, err
		}
	}
	im := c.GetHeader("If-Match")
	if im == "" {
		return 0, nil
	}
	v, ok := fhir.ParseVersionETag(strings.TrimSpace(im))
	if !ok {
		return 0, fhir.Errorf(fhir.Invalid, "value", `If-Match %q is not a version ETag such as W/"3"`, im)
	}
	return interaction.Precondition(v), nil
}

// noIfNoneMatch refuses If-None-Match on a write that does not evaluate
// it: ignored, If-None-Match: * (only if nothing is there) would let the
// write change or delete what is there (RFC 9110 13.2.1), as
// Bundle.entry.request.ifNoneMatch on a write is refused.
func noIfNoneMatch(c *gin.Context) error {
	if inm := strings.TrimSpace(c.GetHeader("If-None-Match")); inm != "" {
		return fhir.Errorf(fhir.Invalid, "not-supported", "If-None-Match %q on a %s: only an update (PUT [type]/[id]) takes it, as * (create only)", inm, c.Request.Method)
	}
	return nil
}

// preferReturn is the return= preference: minimal, representation
// (the default) or OperationOutcome.
func preferReturn(c *gin.Context) string {
	for _, p := range strings.Split(strings.Join(c.Request.Header.Values("Prefer"), ","), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.TrimSpace(k) == "return" {
			switch v = strings.Trim(strings.TrimSpace(v), `"`); v {
			case "minimal", "representation", "OperationOutcome":
				return v
			}
		}
	}
	return "representation"
}

// writeWritten answers a write as Prefer asks; verb says what happened,
// for return=OperationOutcome.
func (h *Handlers) writeWritten(c *gin.Context, status int, r *fhir.Resource, verb string) {
	setVersionHeaders(c, r)
	if status == http.StatusCreated {
		c.Header("Location", h.base+"/"+r.VersionPath())
	}
	switch preferReturn(c) {
	case "minimal":
		c.Status(status)
	case "OperationOutcome":
		h.writeJSON(c, status, outcomeJSON([]fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: verb + " " + r.VersionPath()}}))
	default:
		h.writeJSON(c, status, r.JSON)
	}
}

func issue(code, diagnostics string) []fhir.Issue {
	return []fhir.Issue{{Severity: "error", Code: code, Diagnostics: diagnostics}}
}
