package conformance_test

import (
	"encoding/json"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// TestClientFHIRVersionParameter: the fhirVersion MIME-type parameter
// (R4 http.html#version-parameter) names the FHIR release of the whole
// interaction. 4.0 is ours; any other release asked for in Accept or
// _format is 406, and a body declared as another release is 415.
func TestClientFHIRVersionParameter(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "v", withID(t, loadFixture(t, "Patient"), "v"))
	for _, c := range []struct {
		path, accept string
		want         int
	}{
		{"/Patient/v", "application/fhir+json;fhirVersion=4.0", 200},
		{"/Patient/v", "application/fhir+json; fhirVersion=4.0", 200},
		{"/Patient/v", "application/fhir+json;fhirVersion=3.0", 406},
		{"/Patient/v", "application/fhir+json;fhirVersion=5.0", 406},
		{"/metadata", "application/fhir+json;fhirVersion=3.0", 406},
		{"/Patient/v?_format=application/fhir%2Bjson%3BfhirVersion=3.0", "", 406},
		{"/Patient/v?_format=application/fhir%2Bjson%3BfhirVersion=4.0", "", 200},
	} {
		var h []string
		if c.accept != "" {
			h = []string{"Accept", c.accept}
		}
		r := do(t, "GET", s.base+c.path, nil, h...)
		if r.status != c.want {
			t.Errorf("GET %s Accept %q: status %d, want %d: %.60s", c.path, c.accept, r.status, c.want, r.body)
		} else if c.want == 406 {
			checkOutcome(t, "GET "+c.path+" Accept "+c.accept, r, 406, "", "")
		}
	}
	r := do(t, "POST", s.base+"/Patient", loadFixture(t, "Patient"), "Content-Type", "application/fhir+json;fhirVersion=3.0")
	if r.status != 415 {
		t.Errorf("POST Content-Type fhirVersion=3.0: status %d, want 415: %.60s", r.status, r.body)
	} else {
		checkOutcome(t, "POST Content-Type fhirVersion=3.0", r, 415, "", "")
	}
}

// TestClientErrorContentTypeOldMimeType: a DSTU2-era client's Accept
// (application/json+fhir) is refused with 406, and that OperationOutcome,
// like every other, is served as application/fhir+json.
func TestClientErrorContentTypeOldMimeType(t *testing.T) {
	s := startServer(t, app.Config{})
	r := do(t, "GET", s.base+"/Patient/x", nil, "Accept", "application/json+fhir")
	if r.status == 406 {
		checkOutcome(t, "Accept application/json+fhir", r, 406, "not-supported", "")
	}
}

// TestClientTransactionPreferOperationOutcome: Prefer:
// return=OperationOutcome on a transaction asks for each entry's outcome
// (Bundle.entry.response.outcome) instead of the resource.
func TestClientTransactionPreferOperationOutcome(t *testing.T) {
	s := startServer(t, app.Config{})
	tx := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a","resource":` +
		string(loadFixture(t, "Patient")) + `,"request":{"method":"POST","url":"Patient"}}]}`)
	r := do(t, "POST", s.base, tx, "Prefer", "return=OperationOutcome")
	if r.status != 200 {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	var b struct {
		Entry []struct {
			Resource json.RawMessage
			Response struct {
				Status  string
				Outcome struct{ ResourceType string }
			}
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil || len(b.Entry) != 1 {
		t.Fatalf("response: %v %s", err, r.body)
	}
	e := b.Entry[0]
	if !strings.HasPrefix(e.Response.Status, "201") {
		t.Errorf("entry status %q", e.Response.Status)
	}
	if len(e.Resource) != 0 || e.Response.Outcome.ResourceType != "OperationOutcome" {
		t.Errorf("Prefer: return=OperationOutcome: entry has resource %.80s... and response.outcome %q; want no resource and an OperationOutcome in response.outcome",
			e.Resource, e.Response.Outcome.ResourceType)
	}
}

// TestClientRawSemicolonInQuery: Go's URL parser drops a query pair that
// holds a raw ";" (no longer a separator), so Patient?identifier=a;b would
// run without its only parameter and answer every Patient. Such a query is
// refused, naming the fix.
func TestClientRawSemicolonInQuery(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, path := range []string{"/Patient?identifier=urn:x|a;b", "/Patient?_count=5&name=a;b"} {
		r := do(t, "GET", s.base+path, nil)
		checkOutcome(t, "GET "+path, r, 400, "structure", "")
	}
	// _format written unencoded with its parameters: dropped by net/url,
	// which leaves JSON, what it asked for.
	put(t, s, "Patient", "f", []byte(`{"resourceType":"Patient"}`))
	if r := do(t, "GET", s.base+"/Patient/f?_format=application/fhir+json;fhirVersion=4.0", nil); r.status != 200 {
		t.Errorf("_format with a raw ';': %d %s", r.status, r.body)
	}
}

// TestQueryBadPercentEncoding: Go's URL parser drops a query pair whose
// percent-encoding is broken (%zz), so DELETE Patient?identifier=%zz&gender=male
// deleted by gender alone, and a search answered wider than asked. Such a
// query is refused (400) and nothing is written.
func TestQueryBadPercentEncoding(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "m", []byte(`{"resourceType":"Patient","id":"m","gender":"male"}`))
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/Patient?identifier=%zz&gender=male", ""},
		{"GET", "/Patient?identifier=a%2", ""},
		{"GET", "/Patient?ident%zzifier=a&gender=male", ""},
		{"DELETE", "/Patient?identifier=%zz&gender=male", ""},
		{"PUT", "/Patient?identifier=%zz&gender=male", `{"resourceType":"Patient","gender":"male","active":false}`},
		{"GET", "/Patient/m?_format=json%zz", ""},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r := do(t, c.method, s.base+c.path, body)
		checkOutcome(t, c.method+" "+c.path, r, 400, "structure", "")
	}
	r := do(t, "GET", s.base+"/Patient/m", nil)
	checkVersion(t, "Patient/m after the refused requests", r, 1)
}
