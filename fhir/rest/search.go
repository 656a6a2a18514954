package rest

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
	"healthhub/fhir/interaction"
)

// search serves GET [type]?params and POST [type]/_search with a form body
// (the form's parameters and the URL's are taken together, as R4 says).
func (h *Handlers) search(c *gin.Context) {
	params := c.Request.URL.Query()
	// A POST with no body and no Content-Type (its parameters all in the
	// URL, as some clients send it) has no form to refuse.
	noBody := c.Request.ContentLength == 0 && c.GetHeader("Content-Type") == ""
	if c.Request.Method == http.MethodPost && !noBody {
		if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
			h.writeError(c, fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "POST _search takes a form body (application/x-www-form-urlencoded), not %q", c.GetHeader("Content-Type")))
			return
		}
		if err := plainBody(c); err != nil {
			h.writeError(c, err)
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, h.maxBody)
		if err := c.Request.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				h.writeError(c, fhir.Errorf(fhir.TooLarge, "too-costly", "the body is over the limit of %d bytes", h.maxBody))
				return
			}
			var esc url.EscapeError
			if errors.As(err, &esc) {
				// Not wrapped: the error quotes the broken part of a value,
				// and the log must not carry search values.
				h.writeError(c, fhir.Errorf(fhir.Invalid, "structure", "the form body has a malformed percent-encoding: a %% is followed by two hex digits"))
				return
			}
			h.writeError(c, fhir.Errorf(fhir.Invalid, "structure", "the form body does not parse").Wrap(err))
			return
		}
		for k, vs := range c.Request.PostForm {
			params[k] = append(params[k], vs...)
		}
		// The form's _format is the search's as the URL's is (the page
		// links carry it, as URL parameters): negotiate saw only the URL.
		if _, inURL := queryValue(c, "_format"); !inURL {
			if f, ok := c.Request.PostForm["_format"]; ok {
				if err := formatParam(f[0]); err != nil {
					h.writeError(c, err)
					return
				}
			}
		}
	}
	page, err := h.svc.Search(c.Request.Context(), h.principal(c), c.Param("type"), params, preferStrict(c))
	if err != nil {
		h.writeError(c, err)
		return
	}
	b, err := h.searchBundle(c.Param("type"), page)
	if err != nil {
		h.writeError(c, err) // a *fhir.Error from subset; anything else is a 500
		return
	}
	h.writeJSON(c, http.StatusOK, b)
}

// preferStrict reads Prefer: handling=strict (lenient is the default).
func preferStrict(c *gin.Context) bool {
	for _, p := range strings.Split(strings.Join(c.Request.Header.Values("Prefer"), ","), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "handling" && strings.Trim(strings.TrimSpace(v), `"`) == "strict" {
			return true
		}
	}
	return false
}

func (h *Handlers) searchBundle(typ string, page *interaction.SearchPage) ([]byte, error) {
	q := page.Query
	b := bundle{ResourceType: "Bundle", Type: "searchset"}
	if page.Total >= 0 {
		b.Total = &page.Total
	}
	// pageURL links a page: the understood parameters, plus the cursor.
	pageURL := func(cursor string) string {
		v := url.Values{}
		for k, vs := range q.SelfParams {
			if k != "_cursor" {
				v[k] = vs
			}
		}
		if cursor != "" {
			v.Set("_cursor", cursor)
		}
		u := h.base
		if typ != "" {
			u += "/" + typ
		}
		if enc := v.Encode(); enc != "" {
			return u + "?" + enc
		}
		return u
	}
	switch {
	case page.Snapshot != "": // a frozen list: pages by offset
		at := func(offset int) string { return pageURL(page.Snapshot + "." + strconv.Itoa(offset)) }
		b.Link = append(b.Link, link{"self", at(page.Offset)}, link{"first", at(0)})
		if page.Offset > 0 {
			b.Link = append(b.Link, link{"previous", at(max(0, page.Offset-q.Count))})
		}
		if page.Next {
			b.Link = append(b.Link, link{"next", at(page.Offset + q.Count)})
		}
	case page.NextCursor != "" || q.Cursor != "": // keyset: forward only
		b.Link = append(b.Link, link{"self", pageURL(q.Cursor)}, link{"first", pageURL("")})
		if page.NextCursor != "" {
			b.Link = append(b.Link, link{"next", pageURL(page.NextCursor)})
		}
	default:
		b.Link = append(b.Link, link{"self", pageURL("")})
	}
	for _, r := range page.Matches {
		res, err := subset(r, q)
		if err != nil {
			return nil, err
		}
		b.Entry = append(b.Entry, entry{FullURL: h.base + "/" + r.Path(), Resource: res, Search: &entrySearch{Mode: "match"}})
	}
	for _, r := range page.Included {
		b.Entry = append(b.Entry, entry{FullURL: h.base + "/" + r.Path(), Resource: r.JSON, Search: &entrySearch{Mode: "include"}})
	}
	if len(q.Ignored) > 0 {
		oo := outcomeJSON([]fhir.Issue{{Severity: "warning", Code: "not-supported",
			Diagnostics: "ignored search parameters (unknown or unsupported here): " + strings.Join(q.Ignored, ", ")}})
		b.Entry = append(b.Entry, entry{Resource: oo, Search: &entrySearch{Mode: "outcome"}})
	}
	return marshalBundle(b)
}
