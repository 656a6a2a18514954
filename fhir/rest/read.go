package rest

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
)

func (h *Handlers) read(c *gin.Context) {
	r, err := h.svc.Read(c.Request.Context(), h.principal(c), c.Param("type"), c.Param("id"))
	if err != nil {
		h.writeError(c, err)
		return
	}
	if notModified(c, r) {
		setVersionHeaders(c, r)
		c.Status(http.StatusNotModified)
		return
	}
	h.writeResource(c, http.StatusOK, r)
}

func (h *Handlers) vread(c *gin.Context) {
	r, err := h.svc.VRead(c.Request.Context(), h.principal(c), c.Param("type"), c.Param("id"), c.Param("vid"))
	if err != nil {
		h.writeError(c, err)
		return
	}
	h.writeResource(c, http.StatusOK, r)
}

// notModified answers a conditional read (If-None-Match, else
// If-Modified-Since, as RFC 9110 orders them).
func notModified(c *gin.Context, r *fhir.Resource) bool {
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		if inm == "*" {
			return true
		}
		v, ok := fhir.ParseVersionETag(inm)
		return ok && v == r.VersionID
	}
	if ims := c.GetHeader("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		return err == nil && !r.LastUpdated.Truncate(time.Second).After(t)
	}
	return false
}
