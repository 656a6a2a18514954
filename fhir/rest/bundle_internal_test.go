package rest

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"healthhub/fhir"
)

// TestMarshalBundleAsEncodingJSON: the hand-made Bundle writer gives the
// bytes encoding/json gives (without HTML escaping) for the Bundles the
// handlers make, resources spliced in included.
func TestMarshalBundleAsEncodingJSON(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/synthea-patient.json")
	if err != nil {
		t.Fatal(err)
	}
	o, err := fhir.ParseObject(raw) // stored resources are compacted so
	if err != nil {
		t.Fatal(err)
	}
	patient := o.Bytes("resourceType", "id")
	narrative := []byte(`{"resourceType":"Basic","id":"n","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">a &amp; b \u2028 é</div>"}}`)
	total := 3
	zero := 0
	for name, b := range map[string]bundle{
		"empty searchset": {ResourceType: "Bundle", Type: "searchset", Total: &zero},
		"history": {ResourceType: "Bundle", Type: "history", Total: &total,
			Link: []link{{Relation: "self", URL: "http://h/fhir/Patient/_history?_count=2&_since=2020-01-01T00:00:00Z"}, {Relation: "next", URL: "http://h/fhir/Patient/_history?_cursor=<x>"}},
			Entry: []entry{
				{FullURL: "http://h/fhir/Patient/p1", Resource: patient, Request: &entryRequest{Method: "PUT", URL: "Patient/p1"}, Response: &entryResponse{Status: "200 OK", Etag: `W/"2"`, LastModified: "2026-11-24T10:00:00.000Z"}},
				{FullURL: "http://h/fhir/Patient/p2", Request: &entryRequest{Method: "DELETE", URL: "Patient/p2"}, Response: &entryResponse{Status: "204 No Content"}},
				{FullURL: "http://h/fhir/Basic/n", Resource: narrative, Search: &entrySearch{Mode: "match"}},
			}},
		"transaction-response": {ResourceType: "Bundle", Type: "transaction-response",
			Entry: []entry{
				{Response: &entryResponse{Status: "400 Bad Request", Outcome: json.RawMessage(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"a <b> & c"}]}`)}},
				{},
				{Response: &entryResponse{Status: "201 Created", Location: "Patient/x/_history/1"}},
			}},
	} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(b); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimRight(buf.Bytes(), "\n")
		got, err := marshalBundle(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\ngot  %s\nwant %s", name, got, want)
		}
	}
}
