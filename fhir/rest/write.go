package rest

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
	"healthhub/fhir/interaction"
)

func (h *Handlers) create(c *gin.Context) {
	body, err := h.readBody(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	r, err := h.svc.Create(c.Request.Context(), h.principal(c), c.Param("type"), body)
	if err != nil {
		h.writeError(c, err)
		return
	}
	h.writeWritten(c, http.StatusCreated, r)
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
	r, created, err := h.svc.Update(c.Request.Context(), h.principal(c), c.Param("type"), c.Param("id"), body, ifMatch)
	if err != nil {
		h.writeError(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	h.writeWritten(c, status, r)
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

// writeWritten answers a create or update as Prefer asks.
func (h *Handlers) writeWritten(c *gin.Context, status int, r *fhir.Resource) {
	setVersionHeaders(c, r)
	if status == http.StatusCreated {
		c.Header("Location", h.base+"/"+r.VersionPath())
	}
	switch preferReturn(c) {
	case "minimal":
		c.Status(status)
	case "OperationOutcome":
		verb := "updated"
		if status == http.StatusCreated {
			verb = "created"
		}
		h.writeJSON(c, status, outcomeJSON([]fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: verb + " " + r.VersionPath()}}))
	default:
		h.writeJSON(c, status, r.JSON)
	}
}

func issue(code, diagnostics string) []fhir.Issue {
	return []fhir.Issue{{Severity: "error", Code: code, Diagnostics: diagnostics}}
}
