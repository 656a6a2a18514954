package rest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
	"healthhub/fhir/interaction"
)

// history serves instance, type and system history (the route tells which
// by the parameters it has).
func (h *Handlers) history(c *gin.Context) {
	req, err := historyRequest(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	page, err := h.svc.History(c.Request.Context(), h.principal(c), req)
	if err != nil {
		h.writeError(c, err)
		return
	}
	b := bundle{ResourceType: "Bundle", Type: "history"}
	if page.Total >= 0 {
		b.Total = &page.Total
	}
	b.Link = append(b.Link, link{"self", h.historyURL(c, req, req.Cursor, req.AsOf)})
	if page.Next != 0 {
		b.Link = append(b.Link, link{"next", h.historyURL(c, req, page.Next, page.AsOf)})
	}
	for _, r := range page.Entries {
		b.Entry = append(b.Entry, h.historyEntry(r))
	}
	out, err := marshalBundle(b)
	if err != nil {
		h.internalError(c, err)
		return
	}
	h.writeJSON(c, http.StatusOK, out)
}

func historyRequest(c *gin.Context) (interaction.HistoryRequest, error) {
	req := interaction.HistoryRequest{Type: c.Param("type"), ID: c.Param("id")}
	var err error
	if req.Count, err = countParam(c); err != nil {
		return req, err
	}
	if req.Since, err = sinceParam(c); err != nil {
		return req, err
	}
	if s, ok := c.GetQuery("_at"); ok {
		d, err := fhir.ParseDateTime(s)
		if err != nil {
			return req, fhir.Errorf(fhir.Invalid, "value", "_at: %s", err)
		}
		req.At = &d
	}
	if s, ok := c.GetQuery("_cursor"); ok {
		if req.Cursor, req.AsOf, ok = parseHistoryCursor(s); !ok {
			return req, fhir.Errorf(fhir.Invalid, "value", "_cursor=%q is not a cursor this server gave", s)
		}
	}
	return req, nil
}

// A history cursor is where the next page starts, then, for _at, the
// snapshot the listing answers as of: "before" or "before.asOf" (cursors
// given before _at listings kept a snapshot have no asOf).
func parseHistoryCursor(s string) (before, asOf uint64, ok bool) {
	b, a, hasAsOf := strings.Cut(s, ".")
	before, err := strconv.ParseUint(b, 10, 64)
	if err != nil || before == 0 {
		return 0, 0, false
	}
	if hasAsOf {
		if asOf, err = strconv.ParseUint(a, 10, 64); err != nil || asOf == 0 {
			return 0, 0, false
		}
	}
	return before, asOf, true
}

// historyURL links a page: the same selection from cursor on, as of the
// listing's snapshot when _at needs one.
func (h *Handlers) historyURL(c *gin.Context, req interaction.HistoryRequest, cursor, asOf uint64) string {
	q := url.Values{}
	for _, k := range []string{"_since", "_at", "_count", "_format", "_pretty"} {
		if v, ok := c.GetQuery(k); ok {
			q.Set(k, v)
		}
	}
	if cursor != 0 {
		v := strconv.FormatUint(cursor, 10)
		if req.At != nil && asOf != 0 {
			v += "." + strconv.FormatUint(asOf, 10)
		}
		q.Set("_cursor", v)
	}
	path := "/_history"
	switch {
	case req.ID != "":
		path = "/" + req.Type + "/" + req.ID + "/_history"
	case req.Type != "":
		path = "/" + req.Type + "/_history"
	}
	if enc := q.Encode(); enc != "" {
		return h.base + path + "?" + enc
	}
	return h.base + path
}

func (h *Handlers) historyEntry(r *fhir.Resource) entry {
	e := entry{
		FullURL:  h.base + "/" + r.Path(),
		Response: &entryResponse{Status: "200 OK", Etag: r.ETag(), LastModified: r.LastUpdated.Format(fhir.InstantLayout)},
	}
	switch {
	case r.Deleted:
		e.Request = &entryRequest{Method: "DELETE", URL: r.Path()}
		e.Response.Status = "204 No Content"
	case r.CreatedByUpdate: // update as create, or re-created after a deletion
		e.Request = &entryRequest{Method: "PUT", URL: r.Path()}
		e.Response.Status = "201 Created"
		e.Resource = r.JSON
	case r.VersionID == 1:
		e.Request = &entryRequest{Method: "POST", URL: r.Type}
		e.Response.Status = "201 Created"
		e.Resource = r.JSON
	default:
		e.Request = &entryRequest{Method: "PUT", URL: r.Path()}
		e.Resource = r.JSON
	}
	return e
}

// marshalBundle writes b without HTML-escaping, so embedded resources keep
// the bytes they have on read (a narrative's "<div" stays "<div").
// Resources and outcomes are spliced in as they are: stored resources are
// compact, valid JSON (every write parses and compacts them), and going
// through encoding/json, which validates and compacts every
// json.RawMessage again, was half the CPU of a history Bundle
// (BENCHMARKS.md, "What limits the figures"). The rest, small, goes through
// encoding/json.
func marshalBundle(b bundle) ([]byte, error) {
	size := 256
	for _, e := range b.Entry {
		size += len(e.FullURL) + len(e.Resource) + 256
	}
	w := bundleWriter{out: make([]byte, 0, size)}
	w.enc = json.NewEncoder(&w.buf)
	w.enc.SetEscapeHTML(false)
	w.out = append(w.out, `{"resourceType":`...)
	w.value(b.ResourceType)
	w.out = append(w.out, `,"type":`...)
	w.value(b.Type)
	if b.Total != nil {
		w.out = append(w.out, `,"total":`...)
		w.out = strconv.AppendInt(w.out, int64(*b.Total), 10)
	}
	if len(b.Link) > 0 {
		w.out = append(w.out, `,"link":`...)
		w.value(b.Link)
	}
	if len(b.Entry) > 0 {
		w.out = append(w.out, `,"entry":[`...)
		for i, e := range b.Entry {
			if i > 0 {
				w.out = append(w.out, ',')
			}
			w.entry(e)
		}
		w.out = append(w.out, ']')
	}
	w.out = append(w.out, '}')
	return w.out, w.err
}

type bundleWriter struct {
	out []byte
	buf bytes.Buffer
	enc *json.Encoder
	err error
}

// value appends v as encoding/json writes it, without HTML escaping.
func (w *bundleWriter) value(v any) {
	w.buf.Reset()
	if err := w.enc.Encode(v); err != nil && w.err == nil {
		w.err = err
	}
	w.out = append(w.out, bytes.TrimRight(w.buf.Bytes(), "\n")...)
}

// entry appends e with the members, order and omissions of its struct
// tags.
func (w *bundleWriter) entry(e entry) {
	sep := byte('{')
	member := func(name string) {
		w.out = append(w.out, sep, '"')
		w.out = append(append(w.out, name...), '"', ':')
		sep = ','
	}
	if e.FullURL != "" {
		member("fullUrl")
		w.value(e.FullURL)
	}
	if len(e.Resource) > 0 {
		member("resource")
		w.out = append(w.out, e.Resource...)
	}
	if e.Search != nil {
		member("search")
		w.value(e.Search)
	}
	if e.Request != nil {
		member("request")
		w.value(e.Request)
	}
	if e.Response != nil {
		member("response")
		w.value(e.Response)
	}
	if sep == '{' {
		w.out = append(w.out, '{')
	}
	w.out = append(w.out, '}')
}

// Bundle JSON; resources are embedded as their stored bytes.
type bundle struct {
	ResourceType string  `json:"resourceType"`
	Type         string  `json:"type"`
	Total        *int    `json:"total,omitempty"`
	Link         []link  `json:"link,omitempty"`
	Entry        []entry `json:"entry,omitempty"`
}

type link struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type entry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *entrySearch    `json:"search,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	Response *entryResponse  `json:"response,omitempty"`
}

type entrySearch struct {
	Mode string `json:"mode"`
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// countParam reads _count of a history or $everything request: 0 when
// absent (the service's default).
func countParam(c *gin.Context) (int, error) { return countValue(c.Request.URL.Query()) }

// countValue is countParam reading params.
func countValue(params url.Values) (int, error) {
	if _, ok := params["_count"]; !ok {
		return 0, nil
	}
	s := params.Get("_count")
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fhir.Errorf(fhir.Invalid, "value", "_count=%q: expected a whole number of at least 1", s)
	}
	return n, nil
}

// sinceParam reads _since: the start of the instant or date given; zero
// when absent.
func sinceParam(c *gin.Context) (time.Time, error) { return sinceValue(c.Request.URL.Query()) }

// sinceValue is sinceParam reading params.
func sinceValue(params url.Values) (time.Time, error) {
	if _, ok := params["_since"]; !ok {
		return time.Time{}, nil
	}
	s := params.Get("_since")
	d, err := fhir.ParseDateTime(s)
	if err != nil {
		return time.Time{}, fhir.Errorf(fhir.Invalid, "value", "_since: %s", err)
	}
	return d.Start, nil
}
