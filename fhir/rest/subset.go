package rest

import (
	"encoding/json"

	"healthhub/fhir"
	"healthhub/fhir/search"
)

// subsettedTag marks a resource the server returned only part of, as R4
// requires for _summary and _elements.
var subsettedTag = json.RawMessage(`{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"subsetted"}`)

// subset applies _summary (data, text) and _elements to a match. It returns
// the resource's own bytes when nothing is to be left out.
func subset(raw []byte, q *search.Query) ([]byte, error) {
	var keep map[string]bool
	drop := ""
	switch {
	case len(q.Elements) > 0:
		keep = map[string]bool{"resourceType": true, "id": true, "meta": true}
		for _, e := range q.Elements {
			keep[e] = true
		}
	case q.Summary == search.SummaryText:
		keep = map[string]bool{"resourceType": true, "id": true, "meta": true, "text": true}
	case q.Summary == search.SummaryData:
		drop = "text"
	default:
		return raw, nil
	}
	o, err := fhir.ParseObject(raw)
	if err != nil {
		return nil, err
	}
	changed := false
	for _, k := range o.Keys() {
		if (keep != nil && !keep[k]) || k == drop {
			o.Delete(k)
			changed = true
		}
	}
	if !changed {
		return raw, nil
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
