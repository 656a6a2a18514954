package rest

import (
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
)

const mimeJSONPatch = "application/json-patch+json"

// patch serves PATCH [type]/[id] and, conditionally, PATCH [type]?criteria
// with a JSON Patch body.
func (h *Handlers) patch(c *gin.Context) {
	ifMatch, err := precondition(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	switch mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt {
	case mimeJSONPatch:
	case mimeFHIRJSON, mimeJSON:
		h.writeError(c, fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "FHIRPath Patch (a Parameters resource) is not supported yet: send a JSON Patch as %s", mimeJSONPatch))
		return
	default:
		h.writeError(c, fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "Content-Type %q is not supported for PATCH: send a JSON Patch as %s", c.GetHeader("Content-Type"), mimeJSONPatch))
		return
	}
	body, err := h.readRaw(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	var criteria map[string][]string
	if c.Param("id") == "" {
		criteria = h.criteria(c)
	}
	res, err := h.svc.Patch(c.Request.Context(), h.principal(c), c.Param("type"), c.Param("id"), criteria, body, ifMatch)
	if err != nil {
		h.writeError(c, err)
		return
	}
	h.writeWritten(c, http.StatusOK, res.Resource, "patched")
}
