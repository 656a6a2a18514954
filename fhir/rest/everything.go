package rest

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
	"healthhub/fhir/interaction"
)

// everything serves GET Patient/{id}/$everything: a searchset Bundle of one
// page, its links walking the frozen result as a search's do.
func (h *Handlers) everything(c *gin.Context) {
	if typ := c.Param("type"); typ != "Patient" {
		h.writeError(c, fhir.Errorf(fhir.NotFound, "not-supported", "$everything is supported on Patient only, not on %s", typ))
		return
	}
	req, err := everythingRequest(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	// As in search: unknown parameters (start and end among them: care
	// dates are not supported) are reported, or refused when strict.
	var ignored []string
	for k := range c.Request.URL.Query() {
		if !slices.Contains(everythingParams, k) {
			ignored = append(ignored, k)
		}
	}
	slices.Sort(ignored)
	if len(ignored) > 0 && preferStrict(c) {
		h.writeError(c, fhir.Errorf(fhir.Invalid, "not-supported", "$everything does not support %s (Prefer: handling=strict)", strings.Join(ignored, ", ")))
		return
	}
	page, err := h.svc.Everything(c.Request.Context(), h.principal(c), req)
	if err != nil {
		h.writeError(c, err)
		return
	}
	page.Query.Ignored = ignored
	for _, k := range []string{"_format", "_pretty"} { // links keep the client's format
		if v, ok := c.GetQuery(k); ok {
			page.Query.SelfParams.Set(k, v)
		}
	}
	b, err := h.searchBundle("Patient/"+req.ID+"/$everything", page)
	if err != nil {
		h.internalError(c, err)
		return
	}
	h.writeJSON(c, http.StatusOK, b)
}

// everythingParams are the parameters $everything understands.
var everythingParams = []string{"_since", "_type", "_count", "_cursor", "_format", "_pretty"}

func everythingRequest(c *gin.Context) (interaction.EverythingRequest, error) {
	req := interaction.EverythingRequest{ID: c.Param("id"), Cursor: c.Query("_cursor")}
	var err error
	if req.Count, err = countParam(c); err != nil {
		return req, err
	}
	if req.Since, err = sinceParam(c); err != nil {
		return req, err
	}
	for _, list := range c.QueryArray("_type") {
		for _, t := range strings.Split(list, ",") {
			if t = strings.TrimSpace(t); t != "" {
				req.Types = append(req.Types, t)
			}
		}
	}
	return req, nil
}
