package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"healthhub/fhir"
	"healthhub/fhir/interaction"
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

// TestBundleEntryFailuresLogged: each entry that failed with a 500 is
// logged at ERROR with its index and cause (the request's own log line is
// at INFO, the Bundle having answered, and had room for one cause, the
// last entry's); the request's cause is left as it was.
func TestBundleEntryFailuresLogged(t *testing.T) {
	gin.SetMode(gin.TestMode)
	var logs bytes.Buffer
	h := &Handlers{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodPost, "/fhir", nil)
	state(c).id = "req-1"
	results := []interaction.Result{
		{Err: fhir.Errorf(fhir.Internal, "exception", "the entry failed: boom 0")},
		{Err: fhir.Errorf(fhir.Invalid, "value", "not a date")},
		{Err: errors.New("store: corrupt record 2")},
	}
	for i, r := range results {
		e, err := h.responseEntry(c, i, r, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"500 Internal Server Error", "400 Bad Request", "500 Internal Server Error"}[i]; e.Response.Status != want {
			t.Errorf("entry %d: %s, want %s", i, e.Response.Status, want)
		}
	}
	if state(c).cause != nil {
		t.Errorf("the request's cause: %v, want none: the entries' are logged on their own", state(c).cause)
	}
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("log lines: %d, want one for each entry that failed with a 500:\n%s", len(lines), logs.String())
	}
	for j, want := range []struct {
		entry float64
		cause string
	}{{0, "boom 0"}, {2, "corrupt record 2"}} {
		l := lines[j]
		if l["level"] != "ERROR" || l["request_id"] != "req-1" || l["entry"] != want.entry || !strings.Contains(fmt.Sprint(l["error"]), want.cause) {
			t.Errorf("log line %d: %v, want ERROR, req-1, entry %v, an error with %q", j, l, want.entry, want.cause)
		}
	}
}
