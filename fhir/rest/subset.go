package rest

import (
	"encoding/json"

	"healthhub/fhir"
	"healthhub/fhir/search"
)

// subsettedTag marks a resource the server returned only part of, as R4
// requires for _summary and _elements.
var subsettedTag = json.RawMessage(`{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"subsetted"}`)

// subset applies _summary (true, data, text) and _elements to r. It returns
// the resource's own bytes when nothing is to be left out, and refuses
// _summary=true on a type without a summary table rather than answer the
// whole resource as if it were the summary.
func subset(r *fhir.Resource, q *search.Query) ([]byte, error) {
	var keep func(string) bool
	switch {
	case len(q.Elements) > 0:
		// R4 search.html#elements: "Servers SHOULD always return
		// mandatory elements whether they are requested or not".
		set := elementSet("resourceType id meta")
		for e := range mandatoryOf(r.Type) {
			set[e] = true
		}
		for _, e := range q.Elements {
			set[e] = true
		}
		keep = func(k string) bool { return namedIn(set, k) }
	case q.Summary == search.SummaryTrue:
		if keep = inSummary(r.Type); keep == nil {
			return nil, fhir.Errorf(fhir.Invalid, "not-supported", "_summary=true is not supported for %s: its summary elements are not known here; use _elements to name the elements wanted, or _summary=text, data or false", r.Type)
		}
	case q.Summary == search.SummaryText:
		keep = inSummaryText(r.Type)
	case q.Summary == search.SummaryData:
		keep = func(k string) bool { return k != "text" }
	}
	if keep == nil {
		return r.JSON, nil
	}
	o, err := fhir.ParseObject(r.JSON)
	if err != nil {
		return nil, err
	}
	changed := false
	for _, k := range o.Keys() {
		if !keep(k) {
			o.Delete(k)
			changed = true
		}
	}
	if !changed {
		return r.JSON, nil
	}
	meta := &fhir.Object{}
	if m, ok := o.Get("meta"); ok {
		if meta, err = fhir.ParseObject(m); err != nil {
			return nil, err
		}
	}
	var tags []json.RawMessage
	if t, ok := meta.Get("tag"); ok {
		_ = json.Unmarshal(t, &tags)
	}
	tags = append(tags, subsettedTag)
	tb, _ := json.Marshal(tags)
	meta.Set("tag", tb)
	o.Set("meta", meta.Bytes("versionId", "lastUpdated"))
	return o.Bytes("resourceType", "id", "meta"), nil
}
