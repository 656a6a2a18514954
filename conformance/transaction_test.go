package conformance_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// txEntry is one Bundle entry: method and url of the request, and the
// rest (fullUrl, resource, ifMatch, ifNoneExist) as raw JSON members.
type txEntry struct {
	method, url string
	fullURL     string
	resource    string // raw JSON; "" for none
	ifMatch     string
	ifNoneExist string
}

func txBundle(kind string, entries ...txEntry) []byte {
	type request struct {
		Method      string `json:"method"`
		URL         string `json:"url"`
		IfMatch     string `json:"ifMatch,omitempty"`
		IfNoneExist string `json:"ifNoneExist,omitempty"`
	}
	type entry struct {
		FullURL  string          `json:"fullUrl,omitempty"`
		Resource json.RawMessage `json:"resource,omitempty"`
		Request  request         `json:"request"`
	}
	b := struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{ResourceType: "Bundle", Type: kind}
	for _, e := range entries {
		var res json.RawMessage
		if e.resource != "" {
			res = json.RawMessage(e.resource)
		}
		b.Entry = append(b.Entry, entry{FullURL: e.fullURL, Resource: res, Request: request{e.method, e.url, e.ifMatch, e.ifNoneExist}})
	}
	out, err := json.Marshal(b)
	if err != nil {
		panic(err)
	}
	return out
}

// txResponse is a transaction-response or batch-response Bundle.
type txResponse struct {
	ResourceType, Type string
	Entry              []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Response struct {
			Status, Location, Etag, LastModified string
			Outcome                              json.RawMessage
		}
	}
}

func postBundle(t testing.TB, s *server, body []byte, headers ...string) (*response, *txResponse) {
	t.Helper()
	r := do(t, "POST", s.base, body, headers...)
	if r.status != http.StatusOK {
		return r, nil
	}
	var tr txResponse
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatalf("response is not a Bundle: %v\n%s", err, r.body)
	}
	return r, &tr
}

// mustTransaction posts a transaction and fails unless it is 200.
func mustTransaction(t testing.TB, s *server, entries ...txEntry) *txResponse {
	t.Helper()
	r, tr := postBundle(t, s, txBundle("transaction", entries...))
	if tr == nil {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	return tr
}

// idFrom is the id of a response entry's resource.
func idFrom(t testing.TB, tr *txResponse, i int) string {
	t.Helper()
	var m struct{ ID string }
	if err := json.Unmarshal(tr.Entry[i].Resource, &m); err != nil || m.ID == "" {
		t.Fatalf("entry %d has no resource with an id: %s", i, tr.Entry[i].Resource)
	}
	return m.ID
}

const (
	uuidA = "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"
	uuidB = "urn:uuid:bbbbbbbb-0000-4000-8000-000000000002"
	uuidC = "urn:uuid:cccccccc-0000-4000-8000-000000000003"
	oidD  = "urn:oid:1.2.3.4.5"
)

// TestTransactionReferences: urn:uuid: and urn:oid: fullUrls become the
// server's Type/id in every reference that names them, however deep: A
// (Observation) -> B (Encounter) -> C (Patient), in an extension, in a
// contained resource, and an Organization named by urn:oid:.
func TestTransactionReferences(t *testing.T) {
	s := startServer(t, app.Config{})
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"},
		"subject":{"reference":"` + uuidC + `"},"encounter":{"reference":"` + uuidB + `"},
		"extension":[{"url":"http://example.org/deep","extension":[{"url":"inner","valueReference":{"reference":"` + uuidB + `"}}]}],
		"contained":[{"resourceType":"Provenance","id":"prov","recorded":"2024-01-01T00:00:00Z","target":[{"reference":"` + uuidC + `"}],"agent":[{"who":{"reference":"` + oidD + `"}}]}],
		"performer":[{"reference":"` + oidD + `"}],"focus":[{"reference":"#prov"}]}`
	tr := mustTransaction(t, s,
		txEntry{method: "POST", url: "Observation", fullURL: uuidA, resource: obs},
		txEntry{method: "POST", url: "Encounter", fullURL: uuidB, resource: `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"` + uuidC + `"},"serviceProvider":{"reference":"` + oidD + `"}}`},
		txEntry{method: "POST", url: "Patient", fullURL: uuidC, resource: `{"resourceType":"Patient","managingOrganization":{"reference":"` + oidD + `"}}`},
		txEntry{method: "POST", url: "Organization", fullURL: oidD, resource: `{"resourceType":"Organization","name":"D"}`},
	)
	if tr.Type != "transaction-response" || len(tr.Entry) != 4 {
		t.Fatalf("response: %s %d entries", tr.Type, len(tr.Entry))
	}
	a, b, c, d := idFrom(t, tr, 0), idFrom(t, tr, 1), idFrom(t, tr, 2), idFrom(t, tr, 3)
	for i, e := range tr.Entry {
		r := e.Response
		if r.Status != "201 Created" || !strings.HasPrefix(r.Location, s.base+"/") || !strings.HasSuffix(r.Location, "/_history/1") || r.Etag != `W/"1"` || r.LastModified == "" {
			t.Errorf("entry %d response: %+v", i, r)
		}
	}
	stored := string(do(t, "GET", s.base+"/Observation/"+a, nil).body)
	for _, want := range []string{
		`"subject":{"reference":"Patient/` + c + `"}`,
		`"encounter":{"reference":"Encounter/` + b + `"}`,
		`"valueReference":{"reference":"Encounter/` + b + `"}`,
		`"target":[{"reference":"Patient/` + c + `"}]`,
		`"who":{"reference":"Organization/` + d + `"}`,
		`"performer":[{"reference":"Organization/` + d + `"}],"focus":[{"reference":"#prov"}]`,
	} {
		if !strings.Contains(stored, want) {
			t.Errorf("Observation lacks %s:\n%s", want, stored)
		}
	}
	if strings.Contains(stored, "urn:") {
		t.Errorf("an urn: reference is left: %s", stored)
	}
	// The index holds the resolved references.
	if ids := idsOf(t, s, "Observation?subject=Patient/"+c); len(ids) != 1 || ids[0] != a {
		t.Errorf("Observation?subject=Patient/%s: %v", c, ids)
	}
	if ids := idsOf(t, s, "Encounter?patient=Patient/"+c); len(ids) != 1 || ids[0] != b {
		t.Errorf("Encounter?patient=Patient/%s: %v", c, ids)
	}
	if ids := idsOf(t, s, "Patient?organization=Organization/"+d); len(ids) != 1 || ids[0] != c {
		t.Errorf("Patient?organization: %v", ids)
	}
}

// TestTransactionLinksInURIElements: a document submission as IHE MHD
// sends it, a DocumentReference whose attachment.url names the Binary
// beside it by urn:uuid:. R4's transaction rules replace the link in
// elements of type uri and url and in the narrative's href too, not only in
// references; an Identifier.value that spells the same urn:uuid: is a
// business identifier and keeps it.
func TestTransactionLinksInURIElements(t *testing.T) {
	s := startServer(t, app.Config{})
	doc := `{"resourceType":"DocumentReference","status":"current",
		"masterIdentifier":{"system":"urn:ietf:rfc:3986","value":"` + uuidB + `"},
		"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"` + uuidB + `\">discharge summary</a></div>"},
		"subject":{"reference":"` + uuidC + `"},
		"content":[{"attachment":{"contentType":"text/plain","url":"` + uuidB + `"}}]}`
	tr := mustTransaction(t, s,
		txEntry{method: "POST", url: "DocumentReference", fullURL: uuidA, resource: doc},
		txEntry{method: "POST", url: "Binary", fullURL: uuidB, resource: `{"resourceType":"Binary","contentType":"text/plain","data":"ZGlzY2hhcmdlZA=="}`},
		txEntry{method: "POST", url: "Patient", fullURL: uuidC, resource: `{"resourceType":"Patient","active":true}`},
	)
	a, b, c := idFrom(t, tr, 0), idFrom(t, tr, 1), idFrom(t, tr, 2)
	stored := string(do(t, "GET", s.base+"/DocumentReference/"+a, nil).body)
	for _, want := range []string{
		`"url":"Binary/` + b + `"`,
		`<a href=\"Binary/` + b + `\">discharge summary</a>`,
		`"subject":{"reference":"Patient/` + c + `"}`,
		`"masterIdentifier":{"system":"urn:ietf:rfc:3986","value":"` + uuidB + `"}`,
	} {
		if !strings.Contains(stored, want) {
			t.Errorf("DocumentReference lacks %s:\n%s", want, stored)
		}
	}
	if r := do(t, "GET", s.base+"/Binary/"+b, nil); r.status != 200 {
		t.Errorf("GET Binary/%s: %d", b, r.status)
	}

	// Identities keep their value although it is an entry's fullUrl: a
	// conformance resource's own canonical url, a profile, an identifier's
	// system (found by the review of this change); so does a commented-out
	// link in the narrative.
	const vs, sd = "http://example.org/fhir/ValueSet/vs1", "http://example.org/fhir/StructureDefinition/p1"
	pat := `{"resourceType":"Patient","meta":{"profile":["` + sd + `"]},
		"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><!-- <a href=\"` + oidD + `\">x</a> -->p</div>"},
		"identifier":[{"system":"` + oidD + `","value":"mrn1"}]}`
	tr = mustTransaction(t, s,
		txEntry{method: "POST", url: "ValueSet", fullURL: vs, resource: `{"resourceType":"ValueSet","url":"` + vs + `","status":"active"}`},
		txEntry{method: "POST", url: "StructureDefinition", fullURL: sd, resource: `{"resourceType":"StructureDefinition","url":"` + sd + `","name":"P1","status":"draft","kind":"resource","abstract":false,"type":"Patient"}`},
		txEntry{method: "POST", url: "Organization", fullURL: oidD, resource: `{"resourceType":"Organization","name":"D"}`},
		txEntry{method: "POST", url: "Patient", resource: pat},
	)
	for i, want := range []string{`"url":"` + vs + `"`, `"url":"` + sd + `"`, "", `"profile":["` + sd + `"]`} {
		got := string(do(t, "GET", s.base+"/"+[]string{"ValueSet", "StructureDefinition", "Organization", "Patient"}[i]+"/"+idFrom(t, tr, i), nil).body)
		if want != "" && !strings.Contains(got, want) {
			t.Errorf("entry %d lacks %s:\n%s", i, want, got)
		}
		if i == 3 {
			var p struct {
				Text       struct{ Div string }
				Identifier []struct{ System string }
			}
			if err := json.Unmarshal([]byte(got), &p); err != nil || len(p.Identifier) != 1 || p.Identifier[0].System != oidD || !strings.Contains(p.Text.Div, `<!-- <a href="`+oidD+`">`) {
				t.Errorf("the Patient's identifier system or commented link changed (%v):\n%s", err, got)
			}
		}
	}
	if ids := idsOf(t, s, "Patient?identifier="+oidD+"|mrn1"); len(ids) != 1 {
		t.Errorf("Patient?identifier=%s|mrn1: %v", oidD, ids)
	}

	// Elements of type uri are identities too (the second review): a
	// ConceptMap's source code system, a Patient's implicitRules.
	const cs = "urn:oid:1.2.3.4.5.6"
	tr = mustTransaction(t, s,
		txEntry{method: "POST", url: "CodeSystem", fullURL: cs, resource: `{"resourceType":"CodeSystem","url":"` + cs + `","status":"draft","content":"not-present"}`},
		txEntry{method: "POST", url: "ConceptMap", resource: `{"resourceType":"ConceptMap","status":"draft","sourceUri":"` + cs + `","group":[{"source":"` + cs + `","element":[{"code":"a","target":[{"code":"b","equivalence":"equal"}]}]}]}`},
		txEntry{method: "POST", url: "Patient", resource: `{"resourceType":"Patient","implicitRules":"` + cs + `"}`},
	)
	for i, typ := range []string{"CodeSystem", "ConceptMap", "Patient"} {
		got := string(do(t, "GET", s.base+"/"+typ+"/"+idFrom(t, tr, i), nil).body)
		if strings.Contains(got, "CodeSystem/") || !strings.Contains(got, cs) {
			t.Errorf("%s: the code system's OID was rewritten:\n%s", typ, got)
		}
	}
}

// TestTransactionAbsoluteFullURLs: a hospital sends what its own server
// holds, each entry with its own RESTful fullUrl, POSTed for new ids here.
// A reference to such an entry, absolute or relative to the same base,
// names the entry and takes its new id (R4 bundle.html, resolving
// references in Bundles) — not this server's Patient/1, which is another
// person. A PUT entry's fullUrl resolves to the id it writes.
func TestTransactionAbsoluteFullURLs(t *testing.T) {
	s := startServer(t, app.Config{})
	do(t, http.MethodPut, s.base+"/Patient/1", []byte(`{"resourceType":"Patient","id":"1","name":[{"family":"Someone-Else"}]}`))
	const hospital = "https://hospital-a.example/fhir"
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"},
		"subject":{"reference":"Patient/1"},
		"performer":[{"reference":"` + hospital + `/Patient/1"}],
		"encounter":{"reference":"Encounter/e9"}}`
	tr := mustTransaction(t, s,
		txEntry{method: "POST", url: "Patient", fullURL: hospital + "/Patient/1", resource: `{"resourceType":"Patient","name":[{"family":"Sent"}]}`},
		txEntry{method: "POST", url: "Observation", fullURL: hospital + "/Observation/2", resource: obs},
		txEntry{method: "PUT", url: "Encounter/e9", fullURL: hospital + "/Encounter/e9", resource: `{"resourceType":"Encounter","id":"e9","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/1"}}`},
		txEntry{method: "POST", url: "Binary", fullURL: hospital + "/Binary/7", resource: `{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}`},
		txEntry{method: "POST", url: "DocumentReference", fullURL: hospital + "/DocumentReference/8", resource: `{"resourceType":"DocumentReference","status":"current","content":[{"attachment":{"url":"` + hospital + `/Binary/7"}}]}`},
	)
	p, o := idFrom(t, tr, 0), idFrom(t, tr, 1)
	bin, dr := idFrom(t, tr, 3), idFrom(t, tr, 4)
	if got := string(do(t, "GET", s.base+"/DocumentReference/"+dr, nil).body); !strings.Contains(got, `"url":"Binary/`+bin+`"`) {
		t.Errorf("DocumentReference's attachment.url does not name the sent Binary %s:\n%s", bin, got)
	}
	if p == "1" {
		t.Fatalf("the POSTed Patient took id 1")
	}
	stored := string(do(t, "GET", s.base+"/Observation/"+o, nil).body)
	for _, want := range []string{
		`"subject":{"reference":"Patient/` + p + `"}`,
		`"performer":[{"reference":"Patient/` + p + `"}]`,
		`"encounter":{"reference":"Encounter/e9"}`,
	} {
		if !strings.Contains(stored, want) {
			t.Errorf("Observation lacks %s:\n%s", want, stored)
		}
	}
	enc := string(do(t, "GET", s.base+"/Encounter/e9", nil).body)
	if !strings.Contains(enc, `"subject":{"reference":"Patient/`+p+`"}`) {
		t.Errorf("Encounter/e9's subject is not the sent Patient %s:\n%s", p, enc)
	}
}

func TestTransactionConditionalReferences(t *testing.T) {
	s := startServer(t, app.Config{})
	one, _ := seedConditional(t, s)
	obs := func(ref string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + ref + `"}}`
	}
	tr := mustTransaction(t, s, txEntry{method: "POST", url: "Observation", resource: obs("Patient?identifier=urn:s|one")})
	if got := string(tr.Entry[0].Resource); !strings.Contains(got, `"reference":"Patient/`+one+`"`) {
		t.Errorf("one match: %s", got)
	}
	cases := []struct {
		name, ref string
		status    int
		code      string
	}{
		{"none matches: 404", "Patient?identifier=urn:s|nobody", 404, "not-found"},
		{"several match: 412", "Patient?identifier=urn:s|two", 412, "multiple-matches"},
		{"unknown parameter: 400", "Patient?identifer=urn:s|one", 400, "not-supported"},
	}
	for _, tc := range cases {
		before := len(idsOf(t, s, "Observation"))
		r, _ := postBundle(t, s, txBundle("transaction",
			txEntry{method: "POST", url: "Observation", resource: obs("Patient?identifier=urn:s|one")},
			txEntry{method: "POST", url: "Observation", resource: obs(tc.ref)}))
		checkOutcome(t, tc.name, r, tc.status, tc.code, "Bundle.entry[1]")
		if after := len(idsOf(t, s, "Observation")); after != before {
			t.Errorf("%s: %d Observations stored, were %d", tc.name, after, before)
		}
	}
}

// TestTransactionRollback: when the last entry fails, nothing of the
// earlier ones is stored, and the OperationOutcome names the entry.
func TestTransactionRollback(t *testing.T) {
	s := startServer(t, app.Config{})
	existing, _ := create(t, s, "Patient", patientWith("urn:s", "existing", "Existing"))
	seedConditional(t, s)
	good := []txEntry{
		{method: "POST", url: "Patient", fullURL: uuidA, resource: string(patientWith("urn:s", "new-1", "New"))},
		{method: "PUT", url: "Patient/" + existing, resource: `{"resourceType":"Patient","id":"` + existing + `","name":[{"family":"Changed"}]}`},
		{method: "POST", url: "Observation", resource: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + uuidA + `"}}`},
		{method: "DELETE", url: "Patient?identifier=urn:s|one"},
	}
	cases := []struct {
		name   string
		last   txEntry
		status int
		code   string
		expr   string
	}{
		{"invalid resource: 422", txEntry{method: "POST", url: "Patient", resource: `{"resourceType":"Patient","birthDate":"2023-02-30"}`}, 422, "", "Bundle.entry[4].resource.birthDate"},
		{"malformed entry: 400", txEntry{method: "POST", url: "Patient"}, 400, "", ""},
		{"If-Match stale: 412", txEntry{method: "PUT", url: "Patient/stale", ifMatch: `W/"7"`, resource: `{"resourceType":"Patient","id":"stale"}`}, 412, "conflict", "Bundle.entry[4]"},
		{"conditional create, several: 412", txEntry{method: "POST", url: "Patient", ifNoneExist: "identifier=urn:s|two", resource: `{"resourceType":"Patient"}`}, 412, "multiple-matches", "Bundle.entry[4]"},
		{"conditional update, several: 412", txEntry{method: "PUT", url: "Patient?identifier=urn:s|two", resource: `{"resourceType":"Patient"}`}, 412, "multiple-matches", "Bundle.entry[4]"},
		{"GET of nothing: 404", txEntry{method: "GET", url: "Patient/nobody"}, 404, "not-found", "Bundle.entry[4]"},
		{"same resource twice: 400", txEntry{method: "PUT", url: "Patient/" + existing, resource: `{"resourceType":"Patient","id":"` + existing + `"}`}, 400, "invalid", "Bundle.entry[4]"},
		{"unknown type: 404", txEntry{method: "DELETE", url: "Frobnicate/1"}, 404, "not-supported", "Bundle.entry[4]"},
		{"conditional delete without criteria: 400", txEntry{method: "DELETE", url: "Patient?"}, 400, "", "Bundle.entry[4].request.url"},
		{"conditional update unknown parameter: 400", txEntry{method: "PUT", url: "Patient?foo=bar", resource: `{"resourceType":"Patient"}`}, 400, "not-supported", "Bundle.entry[4]"},
		{"absolute request url: 400", txEntry{method: "DELETE", url: "http://elsewhere/fhir/Patient/1"}, 400, "value", "Bundle.entry[4].request.url"},
		{"patch of an unknown id: 404", txEntry{method: "PATCH", url: "Patient/" + existing + "x", resource: `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + base64.StdEncoding.EncodeToString([]byte(`[{"op":"remove","path":"/x"}]`)) + `"}`}, 404, "not-found", "Bundle.entry[4]"},
		{"FHIRPath patch: 415", txEntry{method: "PATCH", url: "Patient/" + existing + "x", resource: `{"resourceType":"Parameters"}`}, 415, "not-supported", "Bundle.entry[4].resource"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := historyTotal(t, s)
			r, _ := postBundle(t, s, txBundle("transaction", append(good[:4:4], tc.last)...))
			checkOutcome(t, tc.name, r, tc.status, tc.code, tc.expr)
			if !strings.Contains(string(r.body), "Bundle.entry[4]") {
				t.Errorf("the outcome does not name entry 4: %s", r.body)
			}
			if after := historyTotal(t, s); after != before {
				t.Errorf("history total %d, was %d: something was written", after, before)
			}
			if ids := idsOf(t, s, "Patient?identifier=urn:s|new-1"); len(ids) != 0 {
				t.Errorf("entry 0 was stored: %v", ids)
			}
			if ids := idsOf(t, s, "Patient?identifier=urn:s|one"); len(ids) != 1 {
				t.Errorf("entry 3's delete happened: %v", ids)
			}
		})
	}
	// And the good entries alone commit.
	mustTransaction(t, s, good...)
	if ids := idsOf(t, s, "Patient?identifier=urn:s|new-1"); len(ids) != 1 {
		t.Errorf("good transaction: %v", ids)
	}
}

// TestTransactionOrder: DELETE, then POST, then PUT/PATCH, then GET,
// whatever the entry order; responses stay in entry order.
func TestTransactionOrder(t *testing.T) {
	s := startServer(t, app.Config{})
	p, _ := create(t, s, "Patient", patientWith("urn:s", "p", "P"))
	q, _ := create(t, s, "Patient", patientWith("urn:s", "q", "Q"))
	create(t, s, "Patient", patientWith("urn:s", "doomed", "Doomed"))
	patch := base64.StdEncoding.EncodeToString([]byte(`[{"op":"add","path":"/active","value":true}]`))
	tr := mustTransaction(t, s,
		txEntry{method: "GET", url: "Patient/" + p},
		txEntry{method: "GET", url: "Patient/" + q},
		txEntry{method: "PUT", url: "Patient/" + q, ifMatch: `W/"1"`, resource: `{"resourceType":"Patient","id":"` + q + `","name":[{"family":"Put"}]}`},
		txEntry{method: "GET", url: "Patient?identifier=urn:s|doomed,urn:s|reborn"},
		txEntry{method: "PATCH", url: "Patient/" + p, resource: `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + patch + `"}`},
		// Matches nothing once the DELETE below has run: created.
		txEntry{method: "POST", url: "Patient", ifNoneExist: "identifier=urn:s|doomed", resource: string(patientWith("urn:s", "reborn", "Reborn"))},
		txEntry{method: "DELETE", url: "Patient?identifier=urn:s|doomed"},
	)
	want := []string{"200 OK", "200 OK", "200 OK", "200 OK", "200 OK", "201 Created", "204 No Content"}
	for i, e := range tr.Entry {
		if e.Response.Status != want[i] {
			t.Errorf("entry %d: %s, want %s", i, e.Response.Status, want[i])
		}
	}
	got := decodeJSON(t, tr.Entry[0].Resource)
	if got["active"] != true || tr.Entry[0].Response.Etag != `W/"2"` {
		t.Errorf("the GET ran before the PATCH: %s", tr.Entry[0].Resource)
	}
	if !strings.Contains(string(tr.Entry[1].Resource), `"family":"Put"`) || tr.Entry[1].Response.Etag != `W/"2"` {
		t.Errorf("the GET ran before the PUT: %s", tr.Entry[1].Resource)
	}
	var page struct {
		Type  string
		Total int
		Entry []struct {
			Resource struct{ Name []struct{ Family string } }
		}
	}
	if err := json.Unmarshal(tr.Entry[3].Resource, &page); err != nil || page.Type != "searchset" || page.Total != 1 || page.Entry[0].Resource.Name[0].Family != "Reborn" {
		t.Errorf("the search ran before the DELETE and POST: %s", tr.Entry[3].Resource)
	}
}

func TestBundleLimits(t *testing.T) {
	s := startServer(t, app.Config{MaxBundleEntries: 3})
	e := txEntry{method: "POST", url: "Patient", resource: `{"resourceType":"Patient"}`}
	for _, kind := range []string{"transaction", "batch"} {
		before := len(idsOf(t, s, "Patient"))
		r, _ := postBundle(t, s, txBundle(kind, e, e, e, e))
		checkOutcome(t, kind+" over the limit", r, 413, "too-costly", "Bundle.entry")
		if after := len(idsOf(t, s, "Patient")); after != before {
			t.Errorf("%s over the limit stored %d Patients", kind, after-before)
		}
		if _, tr := postBundle(t, s, txBundle(kind, e, e, e)); tr == nil {
			t.Errorf("%s at the limit refused", kind)
		}
	}
	cases := []struct{ name, body string }{
		{"not a Bundle", `{"resourceType":"Patient"}`},
		{"a collection", `{"resourceType":"Bundle","type":"collection"}`},
		{"malformed", `{"resourceType":"Bundle",`},
		{"entry not an array", `{"resourceType":"Bundle","type":"batch","entry":{}}`},
	}
	for _, tc := range cases {
		before := historyTotal(t, s)
		r := do(t, "POST", s.base, []byte(tc.body))
		checkOutcome(t, tc.name, r, 400, "", "")
		if after := historyTotal(t, s); after != before {
			t.Errorf("%s: history total %d, was %d: something was written", tc.name, after, before)
		}
	}
}

// historyTotal is the number of versions (and deletions) the server holds.
func historyTotal(t *testing.T, s *server) int {
	t.Helper()
	return len(historyEntries(t, s.base+"/_history"))
}

// TestBatch: each entry on its own; bad ones get their status and
// OperationOutcome, the others are done.
func TestBatch(t *testing.T) {
	s := startServer(t, app.Config{})
	existing, _ := create(t, s, "Patient", patientWith("urn:s", "existing", "Existing"))
	_, tr := postBundle(t, s, txBundle("batch",
		txEntry{method: "POST", url: "Patient", resource: string(patientWith("urn:s", "b1", "B1"))},
		txEntry{method: "POST", url: "Patient", resource: `{"resourceType":"Patient","birthDate":"2023-02-30"}`},
		txEntry{method: "PUT", url: "Patient/" + existing, ifMatch: `W/"9"`, resource: `{"resourceType":"Patient","id":"` + existing + `"}`},
		txEntry{method: "GET", url: "Patient/nobody"},
		txEntry{method: "PUT", url: "Patient/b5", resource: `{"resourceType":"Patient","id":"b5"}`},
		txEntry{method: "FETCH", url: "Patient"},
		txEntry{method: "GET", url: "Patient/" + existing},
	))
	if tr == nil || tr.Type != "batch-response" {
		t.Fatalf("batch: %+v", tr)
	}
	want := []struct {
		status, code, expr string
	}{
		{status: "201 Created"},
		{status: "422 Unprocessable Entity", expr: "Bundle.entry[1].resource.birthDate"},
		{status: "412 Precondition Failed", code: "conflict"},
		{status: "404 Not Found", code: "not-found"},
		{status: "201 Created"},
		{status: "400 Bad Request", code: "not-supported"},
		{status: "200 OK"},
	}
	for i, w := range want {
		e := tr.Entry[i]
		if e.Response.Status != w.status {
			t.Errorf("entry %d: %s, want %s", i, e.Response.Status, w.status)
		}
		if w.code == "" && w.expr == "" {
			continue
		}
		checkOutcome(t, fmt.Sprint("entry ", i), &response{status: 400, header: http.Header{"Content-Type": {"application/fhir+json"}}, body: e.Response.Outcome}, 400, w.code, w.expr)
	}
	if ids := idsOf(t, s, "Patient?identifier=urn:s|b1"); len(ids) != 1 {
		t.Errorf("entry 0 not stored: %v", ids)
	}
	if r := do(t, "GET", s.base+"/Patient/b5", nil); r.status != 200 {
		t.Errorf("entry 4 not stored: %d", r.status)
	}
	if r := do(t, "GET", s.base+"/Patient/"+existing, nil); r.header.Get("ETag") != `W/"1"` {
		t.Errorf("entry 2 wrote: %s", r.header.Get("ETag"))
	}
}

// TestBatchEntriesRunTogether: a batch's independent entries run at once
// (their writes share group commits), and its results stay in entry order.
// Entries that name the same resource, and conditional ones, still run one
// after another in entry order: two PUTs of one id give versions 1 and 2,
// the second's content current; of two identical conditional creates the
// first creates and the second finds it.
func TestBatchEntriesRunTogether(t *testing.T) {
	s := startServer(t, app.Config{})
	var entries []txEntry
	const posts = 40
	for i := range posts {
		entries = append(entries, txEntry{method: "POST", url: "Patient", resource: string(patientWith("urn:together", fmt.Sprint(i), fmt.Sprint("P", i)))})
	}
	entries = append(entries,
		txEntry{method: "PUT", url: "Patient/twice", resource: `{"resourceType":"Patient","id":"twice","name":[{"family":"First"}]}`},
		txEntry{method: "PUT", url: "Patient/twice", resource: `{"resourceType":"Patient","id":"twice","name":[{"family":"Second"}]}`},
		txEntry{method: "POST", url: "Patient", ifNoneExist: "identifier=urn:once|1", resource: string(patientWith("urn:once", "1", "Once"))},
		txEntry{method: "POST", url: "Patient", ifNoneExist: "identifier=urn:once|1", resource: string(patientWith("urn:once", "1", "Once"))},
	)
	_, tr := postBundle(t, s, txBundle("batch", entries...))
	if tr == nil || len(tr.Entry) != len(entries) {
		t.Fatalf("batch response: %+v", tr)
	}
	for i := range posts {
		e := tr.Entry[i]
		if e.Response.Status != "201 Created" || !strings.Contains(string(e.Resource), `"value":"`+fmt.Sprint(i)+`"`) {
			t.Errorf("entry %d: %s %s, want 201 with identifier %d", i, e.Response.Status, e.Resource, i)
		}
	}
	if got := []string{tr.Entry[posts].Response.Status, tr.Entry[posts+1].Response.Status}; got[0] != "201 Created" || got[1] != "200 OK" {
		t.Errorf("the two PUTs of Patient/twice: %q, want 201 then 200", got)
	}
	if r := do(t, "GET", s.base+"/Patient/twice", nil); !strings.Contains(string(r.body), "Second") || r.header.Get("ETag") != `W/"2"` {
		t.Errorf("Patient/twice after the batch: %s %s, want version 2 with the second PUT's content", r.header.Get("ETag"), r.body)
	}
	if got := []string{tr.Entry[posts+2].Response.Status, tr.Entry[posts+3].Response.Status}; got[0] != "201 Created" || got[1] != "200 OK" {
		t.Errorf("the two conditional creates: %q, want 201 then 200", got)
	}
	if ids := idsOf(t, s, "Patient?identifier=urn:together|"); len(ids) != posts {
		t.Errorf("%d Patients of the batch stored, want %d", len(ids), posts)
	}

	// A conditional entry sees only the entries before it, as in order:
	// the conditional PUT matches nothing yet and creates; the POST with
	// If-None-Exist finds nothing yet and creates too.
	_, tr = postBundle(t, s, txBundle("batch",
		txEntry{method: "PUT", url: "Patient?identifier=urn:cond|x", resource: string(patientWith("urn:cond", "x", "Cond"))},
		txEntry{method: "PUT", url: "Patient/direct", resource: `{"resourceType":"Patient","id":"direct","identifier":[{"system":"urn:cond","value":"x"}],"name":[{"family":"Direct"}]}`},
		txEntry{method: "POST", url: "Patient", ifNoneExist: "identifier=urn:cond|y", resource: string(patientWith("urn:cond", "y", "CondPost"))},
		txEntry{method: "POST", url: "Patient", resource: string(patientWith("urn:cond", "y", "Post"))},
		txEntry{method: "PUT", url: "Patient/other", resource: `{"resourceType":"Patient","id":"other"}`},
		txEntry{method: "POST", url: "Patient", resource: `{"resourceType":"Patient"}`},
	))
	if tr == nil || len(tr.Entry) != 6 {
		t.Fatalf("batch response: %+v", tr)
	}
	for i, e := range tr.Entry {
		if e.Response.Status != "201 Created" {
			t.Errorf("conditional batch, entry %d: %s, want 201 Created", i, e.Response.Status)
		}
	}
	if r := do(t, "GET", s.base+"/Patient/direct", nil); !strings.Contains(string(r.body), "Direct") || r.header.Get("ETag") != `W/"1"` {
		t.Errorf("Patient/direct: %s %s, want version 1 with its own content", r.header.Get("ETag"), r.body)
	}

	// An entry whose resource holds a conditional reference sees the
	// entries before it too (the second review): each Observation finds the
	// Patient the POST before it created.
	entries = nil
	for i := range 8 {
		v := fmt.Sprint("cr", i)
		entries = append(entries,
			txEntry{method: "POST", url: "Patient", resource: string(patientWith("urn:cr", v, v))},
			txEntry{method: "POST", url: "Observation", resource: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:cr|` + v + `"}}`})
	}
	_, tr = postBundle(t, s, txBundle("batch", entries...))
	for i, e := range tr.Entry {
		if e.Response.Status != "201 Created" {
			t.Errorf("conditional reference batch, entry %d: %s %s, want 201", i, e.Response.Status, e.Response.Outcome)
		}
	}
}

// TestTransactionPreferMinimal: return=minimal leaves the resources out,
// not the status, location and etag.
func TestTransactionPreferMinimal(t *testing.T) {
	s := startServer(t, app.Config{})
	_, tr := postBundle(t, s, txBundle("transaction", txEntry{method: "POST", url: "Patient", resource: `{"resourceType":"Patient"}`}), "Prefer", "return=minimal")
	if tr == nil || len(tr.Entry[0].Resource) != 0 || tr.Entry[0].Response.Location == "" || tr.Entry[0].Response.Etag != `W/"1"` {
		t.Errorf("minimal: %+v", tr)
	}
}

// TestPatchSetsAConditionalReference: a JSON Patch that sets a reference
// string to a conditional reference gets it resolved, alone and in a
// batch (found by review: only a whole Reference object in the patch was
// resolved, and the search string was stored as the reference).
func TestPatchSetsAConditionalReference(t *testing.T) {
	s := startServer(t, app.Config{})
	pid, _ := create(t, s, "Patient", patientWith("urn:pr", "1", "Patched"))
	obs := func() string {
		id, _ := create(t, s, "Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/someone"}}`))
		return id
	}
	patch := []byte(`[{"op":"replace","path":"/subject/reference","value":"Patient?identifier=urn:pr|1"}]`)
	want := `"subject":{"reference":"Patient/` + pid + `"}`

	alone := obs()
	r := do(t, http.MethodPatch, s.base+"/Observation/"+alone, patch, "Content-Type", "application/json-patch+json")
	if r.status != http.StatusOK || !strings.Contains(string(do(t, "GET", s.base+"/Observation/"+alone, nil).body), want) {
		t.Errorf("PATCH alone: %d %s; want the subject resolved to Patient/%s", r.status, r.body, pid)
	}
	inBatch := obs()
	bin := `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + base64.StdEncoding.EncodeToString(patch) + `"}`
	_, tr := postBundle(t, s, txBundle("batch", txEntry{method: "PATCH", url: "Observation/" + inBatch, resource: bin}))
	if tr == nil || tr.Entry[0].Response.Status != "200 OK" || !strings.Contains(string(do(t, "GET", s.base+"/Observation/"+inBatch, nil).body), want) {
		t.Errorf("PATCH in a batch: %+v; want the subject resolved to Patient/%s", tr, pid)
	}

	// A patch that makes a conditional reference some other way (copied
	// from a note) is refused: a search string is never stored as a
	// reference.
	copied := obs()
	do(t, http.MethodPatch, s.base+"/Observation/"+copied, []byte(`[{"op":"add","path":"/note","value":[{"text":"Patient?identifier=urn:pr|1"}]}]`), "Content-Type", "application/json-patch+json")
	r = do(t, http.MethodPatch, s.base+"/Observation/"+copied, []byte(`[{"op":"copy","from":"/note/0/text","path":"/subject/reference"}]`), "Content-Type", "application/json-patch+json")
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "was not resolved") {
		t.Errorf("PATCH copying a search string into a reference: %d %s, want 400", r.status, r.body)
	}

	// What a resource already holds is not the patch's doing (the fifth
	// review): a search string a plain create stored as a reference, or a
	// stored Bundle's entries, do not stop a patch of something else.
	held, _ := create(t, s, "Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:pr|1"}}`))
	r = do(t, http.MethodPatch, s.base+"/Observation/"+held, []byte(`[{"op":"replace","path":"/status","value":"amended"}]`), "Content-Type", "application/json-patch+json")
	if r.status != http.StatusOK {
		t.Errorf("PATCH of an Observation that holds a search string: %d %s, want 200", r.status, r.body)
	}
	bundle, _ := create(t, s, "Bundle", []byte(`{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:0b1e2f3a-0000-4000-8000-0000000000f1","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:pr|1"}}}]}`))
	r = do(t, http.MethodPatch, s.base+"/Bundle/"+bundle, []byte(`[{"op":"add","path":"/timestamp","value":"2024-01-01T00:00:00Z"}]`), "Content-Type", "application/json-patch+json")
	if r.status != http.StatusOK {
		t.Errorf("PATCH of a stored Bundle: %d %s, want 200", r.status, r.body)
	}

	// A conditional reference in meta is resolved and rewritten like any.
	tr2 := mustTransaction(t, s, txEntry{method: "POST", url: "Observation", resource: `{"resourceType":"Observation","meta":{"extension":[{"url":"http://example.org/about","valueReference":{"reference":"Patient?identifier=urn:pr|1"}}]},"status":"final","code":{"text":"x"}}`})
	if got := string(do(t, "GET", s.base+"/Observation/"+idFrom(t, tr2, 0), nil).body); !strings.Contains(got, `"valueReference":{"reference":"Patient/`+pid+`"}`) {
		t.Errorf("a conditional reference in meta was not rewritten:\n%s", got)
	}
}

// TestBatchRequestIsReadAsFHIRJSON: a batch Bundle is FHIR JSON, whose
// member names are case-sensitive and unique. An entry whose
// request.method is GET must never run as a DELETE because the same
// object also carries "Method":"DELETE" (or a second "method"), and a
// Bundle whose type is "transaction" must never be run entry by entry as
// a batch because it also carries "TYPE":"batch". The server must refuse
// such a Bundle (400), as it refuses the same Bundle sent as a transaction.
func TestBatchRequestIsReadAsFHIRJSON(t *testing.T) {
	s := startServer(t, app.Config{})
	cases := []struct{ name, request string }{
		{"Method beside method", `{"method":"GET","url":"Patient/%s","Method":"DELETE"}`},
		{"method twice", `{"method":"GET","url":"Patient/%s","method":"DELETE"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, _ := create(t, s, "Patient", []byte(`{"resourceType":"Patient","active":true}`))
			body := `{"resourceType":"Bundle","type":"batch","entry":[{"request":` + strings.Replace(c.request, "%s", id, 1) + `}]}`
			r := do(t, "POST", s.base, []byte(body))
			if got := do(t, "GET", s.base+"/Patient/"+id, nil); got.status != http.StatusOK {
				t.Errorf("a batch entry whose request.method is GET deleted Patient/%s: batch answered %d %s; read now %d", id, r.status, r.body, got.status)
			}
			if r.status != http.StatusBadRequest {
				t.Errorf("batch with %s: status %d, want 400: %s", c.name, r.status, r.body)
			}
		})
	}
	t.Run("TYPE beside type", func(t *testing.T) {
		before := len(idsOf(t, s, "Patient"))
		body := `{"resourceType":"Bundle","type":"transaction","TYPE":"batch","entry":[
			{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}},
			{"request":{"method":"GET","url":"Patient/does-not-exist"}}]}`
		r := do(t, "POST", s.base, []byte(body))
		if after := len(idsOf(t, s, "Patient")); after != before {
			t.Errorf("a Bundle of type transaction half-wrote: %d Patients, were %d (answered %d %s)", after, before, r.status, r.body)
		}
		if r.status != http.StatusBadRequest {
			t.Errorf("status %d, want 400: %s", r.status, r.body)
		}
	})
}

// TestTransactionVersionSpecificReferences: R4 http.html, transaction
// processing: when the server assigns a new id to a POSTed entry "it SHALL
// also update any references to that resource in the same bundle ...
// Version-specific references should remain as version-specific references
// after the references have been updated." A version-specific reference to
// an entry's RESTful fullUrl (absolute, or relative to the same base) is a
// reference to that entry.
func TestTransactionVersionSpecificReferences(t *testing.T) {
	s := startServer(t, app.Config{})
	const hospital = "https://hospital-a.example/fhir"
	tr := mustTransaction(t, s,
		txEntry{method: "POST", url: "Patient", fullURL: hospital + "/Patient/p1", resource: `{"resourceType":"Patient","name":[{"family":"Sent"}]}`},
		txEntry{method: "POST", url: "Observation", fullURL: hospital + "/Observation/o1", resource: `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"subject":{"reference":"Patient/p1/_history/1"},
			"performer":[{"reference":"` + hospital + `/Patient/p1/_history/1"}]}`},
	)
	p, o := idFrom(t, tr, 0), idFrom(t, tr, 1)
	stored := string(do(t, "GET", s.base+"/Observation/"+o, nil).body)
	for _, want := range []string{
		`"subject":{"reference":"Patient/` + p + `/_history/1"}`,
		`"performer":[{"reference":"Patient/` + p + `/_history/1"}]`,
	} {
		if !strings.Contains(stored, want) {
			t.Errorf("Observation lacks %s:\n%s", want, stored)
		}
	}
	// A PUT of a resource that exists: the reference names the version
	// the transaction writes (2), and the Observation's signature follows it.
	put(t, s, "Patient", "pp", []byte(`{"resourceType":"Patient","id":"pp"}`))
	tr = mustTransaction(t, s,
		txEntry{method: "PUT", url: "Patient/pp", fullURL: hospital + "/Patient/pp", resource: `{"resourceType":"Patient","id":"pp","active":true}`},
		txEntry{method: "POST", url: "Observation", fullURL: "urn:uuid:1c0b7a3e-4f35-4a6e-9a6f-3f1d1b0e7d10", resource: `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"subject":{"reference":"` + hospital + `/Patient/pp/_history/1"}}`},
	)
	stored = string(do(t, "GET", s.base+"/Observation/"+idFrom(t, tr, 1), nil).body)
	if want := `"subject":{"reference":"Patient/pp/_history/2"}`; !strings.Contains(stored, want) {
		t.Errorf("Observation lacks %s:\n%s", want, stored)
	}
}

// TestTransactionConditionalCreateOfAnUpdatedResource: "A resource can only
// appear in a transaction once (by identity)" (R4 http.html, transaction
// processing rules). A conditional create whose criteria select the
// Patient another entry PUTs names that Patient twice.
func TestTransactionConditionalCreateOfAnUpdatedResource(t *testing.T) {
	s := startServer(t, app.Config{})
	id, _ := create(t, s, "Patient", patientWith("urn:s", "x", "X"))
	r, tr := postBundle(t, s, txBundle("transaction",
		txEntry{method: "POST", url: "Patient", ifNoneExist: "identifier=urn:s|x", resource: string(patientWith("urn:s", "x", "New"))},
		txEntry{method: "PUT", url: "Patient/" + id, resource: `{"resourceType":"Patient","id":"` + id + `","identifier":[{"system":"urn:s","value":"x"}],"name":[{"family":"Put"}]}`},
	))
	if tr != nil {
		t.Errorf("accepted (entry 0 answers %s %s for Patient/%s, entry 1 %s): want 400", tr.Entry[0].Response.Status, tr.Entry[0].Response.Etag, id, tr.Entry[1].Response.Etag)
		return
	}
	checkOutcome(t, "conditional create and update of one Patient", r, 400, "invalid", "")
}

// TestBundleGetEntryConditionalRead: request.ifNoneMatch and
// request.ifModifiedSince of a GET entry ask for a conditional read (R4
// Bundle.entry.request.ifNoneMatch: "If the ETag values match, return a 304
// Not Modified status"), as the same headers do on a read.
func TestBundleGetEntryConditionalRead(t *testing.T) {
	s := startServer(t, app.Config{})
	id, _ := create(t, s, "Patient", []byte(`{"resourceType":"Patient"}`))
	if r := do(t, "GET", s.base+"/Patient/"+id, nil, "If-None-Match", `W/"1"`); r.status != http.StatusNotModified {
		t.Fatalf("REST conditional read: %d", r.status)
	}
	for _, kind := range []string{"batch", "transaction"} {
		body := `{"resourceType":"Bundle","type":"` + kind + `","entry":[
			{"request":{"method":"GET","url":"Patient/` + id + `","ifNoneMatch":"W/\"1\""}},
			{"request":{"method":"GET","url":"Patient/` + id + `","ifModifiedSince":"2999-01-01T00:00:00Z"}}]}`
		r, tr := postBundle(t, s, []byte(body))
		if tr == nil {
			t.Fatalf("%s: %d %s", kind, r.status, r.body)
		}
		for i, e := range tr.Entry {
			if !strings.HasPrefix(e.Response.Status, "304") {
				t.Errorf("%s entry %d: %s, want 304 Not Modified", kind, i, e.Response.Status)
			}
		}
	}
}

// TestBundleHeadEntry: R4's HTTPVerb has HEAD, and the transaction rules
// process "any GET or HEAD interactions"; the server answers HEAD alone.
func TestBundleHeadEntry(t *testing.T) {
	s := startServer(t, app.Config{})
	id, _ := create(t, s, "Patient", []byte(`{"resourceType":"Patient"}`))
	for _, kind := range []string{"batch", "transaction"} {
		r, tr := postBundle(t, s, txBundle(kind, txEntry{method: "HEAD", url: "Patient/" + id}))
		if tr == nil || tr.Entry[0].Response.Status != "200 OK" || tr.Entry[0].Response.Etag != `W/"1"` || len(tr.Entry[0].Resource) != 0 {
			t.Errorf("%s with a HEAD entry: %d %s, want 200 with the ETag and no resource", kind, r.status, r.body)
		}
	}
}
