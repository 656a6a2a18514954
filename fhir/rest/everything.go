package rest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
	h.serveEverything(c, c.Request.URL.Query())
}

// serveEverything answers $everything with the parameters in params.
func (h *Handlers) serveEverything(c *gin.Context, params url.Values) {
	req, err := everythingRequest(c.Param("id"), params)
	if err != nil {
		h.writeError(c, err)
		return
	}
	// As in search: unknown parameters (start and end among them: care
	// dates are not supported) are reported, or refused when strict.
	var ignored []string
	for k := range params {
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
		if v, ok := params[k]; ok && len(v) > 0 {
			page.Query.SelfParams.Set(k, v[0])
		}
	}
	b, err := h.searchBundle("Patient/"+req.ID+"/$everything", page)
	if err != nil {
		h.internalError(c, err)
		return
	}
	h.writeJSON(c, http.StatusOK, b)
}

// everythingPost serves POST Patient/{id}/$everything, the operation's
// base form (R4 operations.html): its parameters come in a Parameters
// body, and are read as the GET form's query parameters (the response's
// links are GETs).
func (h *Handlers) everythingPost(c *gin.Context) {
	raw, err := h.readRaw(c)
	if err != nil {
		h.writeError(c, err)
		return
	}
	q := c.Request.URL.Query()
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := jsonContentType(c); err != nil {
			h.writeError(c, err)
			return
		}
		params, err := operationParameters(raw)
		if err != nil {
			h.writeError(c, err)
			return
		}
		for k, vs := range params {
			q[k] = append(q[k], vs...)
		}
	}
	if typ := c.Param("type"); typ != "Patient" {
		h.writeError(c, fhir.Errorf(fhir.NotFound, "not-supported", "$everything is supported on Patient only, not on %s", typ))
		return
	}
	h.serveEverything(c, q)
}

// operationParameters reads a Parameters resource of primitive values:
// each parameter's name and its value[x], as text.
func operationParameters(raw []byte) (url.Values, error) {
	obj, err := fhir.ParseObject(raw)
	if err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "malformed JSON: %v", err)
	}
	if rt, _ := obj.String("resourceType"); rt != "Parameters" {
		return nil, fhir.Errorf(fhir.Invalid, "invalid", "the body of an operation is a Parameters resource, not %q", rt).At("resourceType")
	}
	var body struct {
		Parameter []map[string]json.RawMessage `json:"parameter"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "Parameters.parameter is not a list of parameters").At("Parameters.parameter")
	}
	out := url.Values{}
	for i, p := range body.Parameter {
		at := "Parameters.parameter[" + strconv.Itoa(i) + "]"
		var name string
		if json.Unmarshal(p["name"], &name) != nil || name == "" {
			return nil, fhir.Errorf(fhir.Invalid, "required", "%s has no name", at).At(at + ".name")
		}
		var value string
		for k, v := range p {
			if !strings.HasPrefix(k, "value") {
				continue
			}
			if json.Unmarshal(v, &value) != nil { // a number: as written
				value = string(v)
			}
		}
		if value == "" {
			return nil, fhir.Errorf(fhir.Invalid, "value", "%s (%s) has no primitive value: $everything takes _since, _type and _count as values", at, name).At(at)
		}
		out.Add(name, value)
	}
	return out, nil
}

// everythingParams are the parameters $everything understands.
var everythingParams = []string{"_since", "_type", "_count", "_cursor", "_format", "_pretty"}

func everythingRequest(id string, params url.Values) (interaction.EverythingRequest, error) {
	req := interaction.EverythingRequest{ID: id, Cursor: params.Get("_cursor")}
	var err error
	if req.Count, err = countValue(params); err != nil {
		return req, err
	}
	if req.Since, err = sinceValue(params); err != nil {
		return req, err
	}
	for _, list := range params["_type"] {
		for _, t := range strings.Split(list, ",") {
			if t = strings.TrimSpace(t); t != "" {
				req.Types = append(req.Types, t)
			}
		}
	}
	return req, nil
}
