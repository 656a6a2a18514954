package rest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
)

const (
	mimeFHIRJSON = "application/fhir+json"
	mimeJSON     = "application/json"

	contentTypeFHIRJSON = mimeFHIRJSON + "; charset=utf-8"
	contentTypeJSON     = mimeJSON + "; charset=utf-8"
)

// Response header names set on every response, in canonical form (ETag's
// is Etag) for setHeader.
const (
	headerETag          = "Etag"
	headerLastModified  = "Last-Modified"
	headerContentLength = "Content-Length"
	headerContentType   = "Content-Type"
	headerWarning       = "Warning"
)

// setHeader sets a response header whose name is already in canonical form
// (http.CanonicalHeaderKey; TestHeaderNamesAreCanonical checks the
// constants): Header().Set would canonicalize it again on every response.
func setHeader(c *gin.Context, canonicalName, value string) {
	c.Writer.Header()[canonicalName] = []string{value}
}

// negotiate decides the response format from _format and Accept. JSON is
// all we write; a request for XML or anything else we cannot produce is
// 406. It runs before the handler, so a refused request does no work.
func negotiate(c *gin.Context) error {
	if raw := c.Request.URL.RawQuery; strings.Contains(raw, ";") {
		// net/url drops a query pair with a raw ";" (no longer a separator):
		// a search would run without that parameter, wider than asked. Only
		// _format and _pretty may go (a client's
		// _format=application/fhir+json;fhirVersion=4.0 then means JSON).
		for _, pair := range strings.Split(raw, "&") {
			if key, _, _ := strings.Cut(pair, "="); strings.Contains(pair, ";") && key != "_format" && key != "_pretty" {
				if len(key) > 64 {
					key = key[:64] + "..."
				}
				return fhir.Errorf(fhir.Invalid, "structure", "the query string has an unencoded \";\" (in %s): encode it as %%3B", key)
			}
		}
	}
	if err := queryEncoding(c.Request.URL.RawQuery); err != nil {
		return err
	}
	if f, ok := queryValue(c, "_format"); ok {
		return formatParam(f)
	}
	accept := c.GetHeader("Accept")
	switch accept {
	case "", mimeFHIRJSON, mimeJSON, "*/*":
		return nil // what nearly every client sends, without parsing it
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if qZero(params) {
			continue
		}
		if !r4(params) {
			continue
		}
		switch mt {
		case mimeFHIRJSON, mimeJSON, "*/*", "application/*", "text/json":
			return nil
		}
	}
	return fhir.Errorf(fhir.NotAcceptable, "not-supported", "Accept: %s cannot be served: this server speaks FHIR R4 JSON (application/fhir+json; fhirVersion 4.0)", accept)
}

// formatParam refuses a _format we cannot write (406).
func formatParam(f string) error {
	// An unencoded "+" (_format=application/fhir+json) reaches us as a
	// space, which no media type holds before its parameters: it can
	// only be the "+" the client meant.
	typ, rest, _ := strings.Cut(f, ";")
	if strings.Contains(strings.TrimSpace(typ), " ") {
		f = strings.ReplaceAll(strings.TrimSpace(typ), " ", "+")
		if rest != "" {
			f += ";" + rest
		}
	}
	mt, params, err := mime.ParseMediaType(f)
	if err == nil && r4(params) {
		switch mt {
		case "json", mimeJSON, mimeFHIRJSON:
			return nil
		}
	}
	return fhir.Errorf(fhir.NotAcceptable, "not-supported", "_format=%s is not supported: this server speaks FHIR R4 JSON (json, application/fhir+json, application/json; fhirVersion 4.0)", f)
}

// qZero reports a media range's q=0, in any spelling (0, 0.0, 0.000): not
// acceptable (RFC 9110 12.4.2).
func qZero(params map[string]string) bool {
	q, ok := params["q"]
	if !ok {
		return false
	}
	w, err := strconv.ParseFloat(q, 64)
	return err == nil && w == 0
}

// r4 reports whether the parameters of a media type allow FHIR R4: no
// fhirVersion, or 4.0 (R4 http.html#version-parameter; the parameter
// applies to the entire interaction).
func r4(params map[string]string) bool {
	v, ok := params["fhirversion"] // mime lowercases parameter names
	return !ok || v == "4.0" || strings.HasPrefix(v, "4.0.")
}

// acceptsPlainJSON reports whether Accept asks for application/json
// rather than application/fhir+json (a generic client): the response is
// then labelled so. Anything else, unknown types included, gets the FHIR
// type, unless Accept refuses it (q=0) and takes plain JSON
// (application/json, */*, application/*).
func acceptsPlainJSON(accept string) bool {
	fhirNamed := strings.Contains(accept, mimeFHIRJSON)
	switch {
	case accept == mimeJSON:
		return true
	case accept == "" || !strings.Contains(accept, mimeJSON) && !fhirNamed:
		return false
	case fhirNamed && !strings.Contains(accept, "q=") && !strings.Contains(accept, "Q="):
		return false // acceptable, and the one preferred
	}
	var plain, plainRefused, fhirOK, fhirRefused, wild bool
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		zero := qZero(params)
		switch mt {
		case mimeJSON:
			plain, plainRefused = !zero, zero
		case mimeFHIRJSON:
			fhirOK, fhirRefused = !zero, zero
		case "*/*", "application/*":
			wild = wild || !zero
		}
	}
	return !fhirOK && (plain || fhirRefused && wild && !plainRefused)
}

// queryValue is c.GetQuery without parsing (and allocating) an empty query
// string, as most requests have.
func queryValue(c *gin.Context, key string) (string, bool) {
	if c.Request.URL.RawQuery == "" {
		return "", false
	}
	return c.GetQuery(key)
}

// plainBody refuses a body sent with a content coding (gzip, ...): read as
// it is, it would be taken for malformed JSON, or worse, a form; RFC 9110
// 8.4.1 answers an unsupported coding with 415.
func plainBody(c *gin.Context) error {
	if ce := strings.TrimSpace(c.GetHeader("Content-Encoding")); ce != "" && !strings.EqualFold(ce, "identity") {
		return fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "Content-Encoding %q is not supported: send the body uncompressed", ce)
	}
	return nil
}

// readBody reads a request body of at most h.maxBody bytes whose media type
// is one we read.
func (h *Handlers) readBody(c *gin.Context) ([]byte, error) {
	if err := jsonContentType(c); err != nil {
		return nil, err
	}
	body, err := h.readRaw(c)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fhir.Errorf(fhir.Invalid, "required", "the body is empty: expected a %s resource", cmp.Or(c.Param("type"), "Bundle"))
	}
	return body, nil
}

// jsonContentType refuses a request body labelled other than FHIR R4 JSON
// (no label is read as JSON).
func jsonContentType(c *gin.Context) error {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || (mt != mimeFHIRJSON && mt != mimeJSON) || !r4(params) {
			return fhir.Errorf(fhir.UnsupportedMedia, "not-supported", "Content-Type %q is not supported: send application/fhir+json (FHIR R4, fhirVersion 4.0)", ct)
		}
	}
	return nil
}

// readRaw reads a request body of at most h.maxBody bytes.
func (h *Handlers) readRaw(c *gin.Context) ([]byte, error) {
	if err := plainBody(c); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, h.maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fhir.Errorf(fhir.TooLarge, "too-costly", "the body is over the limit of %d bytes", h.maxBody)
	}
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "could not read the body").Wrap(err)
	}
	return body, nil
}

// writeJSON writes a JSON body in the negotiated content type, indented
// when _pretty=true. It sets Content-Length: without it, net/http sends a
// body over 2 kB chunked, framing it and the end on the wire.
func (h *Handlers) writeJSON(c *gin.Context, status int, body []byte) {
	v, ok := queryValue(c, "_pretty")
	if !ok {
		// A POST _search may give it in its form body (nil elsewhere),
		// and its page links carry it from there.
		v = c.Request.PostForm.Get("_pretty")
	}
	if v == "true" {
		var b bytes.Buffer
		if json.Indent(&b, body, "", "  ") == nil {
			body = b.Bytes()
		}
	}
	ct := contentTypeFHIRJSON
	if acceptsPlainJSON(c.GetHeader("Accept")) {
		ct = contentTypeJSON
	}
	// What c.Data does, without boxing a render.Data and allocating its
	// content type's header slice.
	setHeader(c, headerContentType, ct)
	c.Status(status)
	if !bodyAllowed(status) {
		c.Writer.WriteHeaderNow()
		return
	}
	setHeader(c, headerContentLength, strconv.Itoa(len(body)))
	if _, err := c.Writer.Write(body); err != nil {
		_ = c.Error(err)
		c.Abort()
	}
}

// bodyAllowed reports whether a response of status has a body (RFC 9110
// 6.4.1); the others must not carry Content-Length.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func setVersionHeaders(c *gin.Context, r *fhir.Resource) {
	setHeader(c, headerETag, r.ETag())
	var b [len(http.TimeFormat)]byte
	setHeader(c, headerLastModified, string(appendHTTPTime(b[:0], r.LastUpdated)))
}

// appendHTTPTime appends t in http.TimeFormat (RFC 9110's IMF-fixdate), as
// net/http formats its Date header: several times faster than t.Format,
// on every read.
func appendHTTPTime(b []byte, t time.Time) []byte {
	const days = "SunMonTueWedThuFriSat"
	const months = "JanFebMarAprMayJunJulAugSepOctNovDec"
	t = t.UTC()
	yy, mm, dd := t.Date()
	hh, mn, ss := t.Clock()
	day := days[3*t.Weekday():]
	mon := months[3*(mm-1):]
	return append(b,
		day[0], day[1], day[2], ',', ' ',
		byte('0'+dd/10), byte('0'+dd%10), ' ',
		mon[0], mon[1], mon[2], ' ',
		byte('0'+yy/1000), byte('0'+(yy/100)%10), byte('0'+(yy/10)%10), byte('0'+yy%10), ' ',
		byte('0'+hh/10), byte('0'+hh%10), ':',
		byte('0'+mn/10), byte('0'+mn%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), ' ',
		'G', 'M', 'T')
}

// queryEncoding refuses a query pair whose percent-encoding is broken
// (%zz, a trailing %2): net/url drops such a pair, so a search or a
// conditional delete would run without that parameter, wider than asked.
func queryEncoding(raw string) error {
	if !strings.Contains(raw, "%") {
		return nil
	}
	for _, pair := range strings.Split(raw, "&") {
		key, value, _ := strings.Cut(pair, "=")
		_, kerr := url.QueryUnescape(key)
		_, verr := url.QueryUnescape(value)
		if kerr != nil || verr != nil {
			if len(key) > 64 {
				key = key[:64] + "..."
			}
			return fhir.Errorf(fhir.Invalid, "structure", "the query string has a malformed percent-encoding (in %s): a %% is followed by two hex digits", key)
		}
	}
	return nil
}
