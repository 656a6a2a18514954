package rest

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
	"healthhub/fhir/search"
)

func (h *Handlers) read(c *gin.Context) {
	summary, err := readSummary(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
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
	h.writeSubset(c, r, &search.Query{Summary: summary})
}

func (h *Handlers) vread(c *gin.Context) {
	summary, err := readSummary(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	r, err := h.svc.VRead(c.Request.Context(), h.principal(c), c.Param("type"), c.Param("id"), c.Param("vid"))
	if err != nil {
		h.writeError(c, err)
		return
	}
	h.writeSubset(c, r, &search.Query{Summary: summary})
}

// readSummary takes _summary on a read or vread, as R4 allows (count is
// for search only); "" when not asked. _elements is served on search only.
func readSummary(c *gin.Context) (search.Summary, error) {
	if c.Request.URL.RawQuery == "" {
		return "", nil // the usual read: no query to parse
	}
	vals := slices.DeleteFunc(c.QueryArray("_summary"), func(v string) bool { return v == "" })
	switch {
	case len(vals) > 1:
		return "", fhir.Errorf(fhir.Invalid, "value", "_summary may be given once")
	case len(vals) == 1:
		switch s := search.Summary(vals[0]); s {
		case search.SummaryTrue, search.SummaryFalse, search.SummaryData, search.SummaryText:
			return s, nil
		default:
			return "", fhir.Errorf(fhir.Invalid, "value", "_summary on a read is true, false, data or text")
		}
	}
	return "", nil
}

// writeSubset writes r, or the part of it q asks for, with r's version
// headers.
func (h *Handlers) writeSubset(c *gin.Context, r *fhir.Resource, q *search.Query) {
	body, err := subset(r, q)
	if err != nil {
		h.writeError(c, err)
		return
	}
	setVersionHeaders(c, r)
	h.writeJSON(c, http.StatusOK, body)
}

// notModified answers a conditional read (If-None-Match, else
// If-Modified-Since, as RFC 9110 orders them).
func notModified(c *gin.Context, r *fhir.Resource) bool {
	var since time.Time
	if ims := c.GetHeader("If-Modified-Since"); ims != "" {
		since, _ = http.ParseTime(ims) // a date that does not parse is ignored (RFC 9110 13.1.3)
	}
	// A list may come as several header lines (RFC 9110 5.3).
	return fhir.NotModified(r, strings.Join(c.Request.Header.Values("If-None-Match"), ","), since)
}
