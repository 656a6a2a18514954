package conformance_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// TestBatchIfModifiedSinceMustBeAnInstant: R4 types
// Bundle.entry.request.ifModifiedSince as instant (date, time to the
// second and zone). A transaction refuses "2999-01-01" (400, "not a valid
// instant"); the same entry in a batch must be refused too (its entry 400),
// not read as midnight UTC and answered 304.
func TestBatchIfModifiedSinceMustBeAnInstant(t *testing.T) {
	s := startServer(t, app.Config{})
	id, _ := create(t, s, "Patient", []byte(`{"resourceType":"Patient"}`))
	for _, since := range []string{"2999-01-01", "2999"} {
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"GET","url":"Patient/` + id + `","ifModifiedSince":"` + since + `"}}]}`
		if r := do(t, "POST", s.base, []byte(tx)); r.status != http.StatusBadRequest {
			t.Fatalf("transaction with ifModifiedSince %q: %d %s, want 400", since, r.status, r.body)
		}
		batch := strings.Replace(tx, `"transaction"`, `"batch"`, 1)
		r, tr := postBundle(t, s, []byte(batch))
		if tr == nil {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		if st := tr.Entry[0].Response.Status; !strings.HasPrefix(st, "400") {
			t.Errorf("batch entry with ifModifiedSince %q (not an instant): %s, want 400 as in a transaction; body %s", since, st, r.body)
		}
	}
}

// TestBundleDeletePreferOperationOutcome: Prefer: return=OperationOutcome
// on a Bundle asks for each entry's outcome in response.outcome
// (TestClientTransactionPreferOperationOutcome), and a DELETE on its own
// answers it with an informational OperationOutcome. A DELETE entry must
// carry one too.
func TestBundleDeletePreferOperationOutcome(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, kind := range []string{"transaction", "batch"} {
		id, _ := create(t, s, "Patient", []byte(`{"resourceType":"Patient"}`))
		r, tr := postBundle(t, s, txBundle(kind, txEntry{method: "DELETE", url: "Patient/" + id}), "Prefer", "return=OperationOutcome")
		if tr == nil {
			t.Fatalf("%s: %d %s", kind, r.status, r.body)
		}
		if len(tr.Entry[0].Response.Outcome) == 0 || !strings.Contains(string(tr.Entry[0].Response.Outcome), "OperationOutcome") {
			t.Errorf("%s DELETE entry with Prefer: return=OperationOutcome: %s, want a response.outcome", kind, r.body)
		}
	}
	id, _ := create(t, s, "Patient", []byte(`{"resourceType":"Patient"}`))
	if r := do(t, "DELETE", s.base+"/Patient/"+id, nil, "Prefer", "return=OperationOutcome"); r.status != 200 || !strings.Contains(string(r.body), "OperationOutcome") {
		t.Errorf("single DELETE: %d %s", r.status, r.body)
	}
}

// TestTransactionKeepsStoredBundleEntries: a Bundle that a transaction
// stores (a document) is a record of its own, whose entries refer to each
// other by its own fullUrls (R4 bundle.html, resolving references in
// Bundles: a reference resolves in the Bundle that holds it). An outer
// entry with the same urn:uuid: fullUrl does not take over the document's
// references, and a conditional reference inside the document is kept as
// sent, as a plain POST of the Bundle keeps it; a reference of the Bundle
// itself (its signature's who) is still the transaction's.
func TestTransactionKeepsStoredBundleEntries(t *testing.T) {
	s := startServer(t, app.Config{})
	doc := `{"resourceType":"Bundle","type":"document","identifier":{"system":"urn:ietf:rfc:3986","value":"urn:uuid:dddddddd-0000-4000-8000-000000000009"},"timestamp":"2024-01-01T00:00:00Z",
		"signature":{"type":[{"system":"urn:iso-astm:E1762-95:2013","code":"1.2.840.10065.1.12.1.1"}],"when":"2024-01-01T00:00:00Z","who":{"reference":"` + uuidC + `"}},
		"entry":[
		{"fullUrl":"urn:uuid:eeeeeeee-0000-4000-8000-000000000001","resource":{"resourceType":"Composition","status":"final","type":{"text":"x"},"date":"2024-01-01","title":"t",
			"subject":{"reference":"` + uuidA + `"},"author":[{"reference":"Practitioner?identifier=urn:s|nobody"}]}},
		{"fullUrl":"` + uuidA + `","resource":{"resourceType":"Patient","active":true,"link":[{"other":{"reference":"` + uuidB + `"},"type":"seealso"}]}},
		{"fullUrl":"` + uuidB + `","resource":{"resourceType":"Patient","active":false}}]}`
	tr := mustTransaction(t, s,
		txEntry{method: "POST", url: "Bundle", resource: doc},
		txEntry{method: "POST", url: "Patient", fullURL: uuidA, resource: `{"resourceType":"Patient","active":true}`},
		txEntry{method: "POST", url: "Practitioner", fullURL: uuidC, resource: `{"resourceType":"Practitioner","active":true}`},
	)
	got := string(do(t, "GET", s.base+"/Bundle/"+idFrom(t, tr, 0), nil).body)
	for _, want := range []string{
		`"subject":{"reference":"` + uuidA + `"}`,
		`"other":{"reference":"` + uuidB + `"}`,
		`"author":[{"reference":"Practitioner?identifier=urn:s|nobody"}]`,
		`"who":{"reference":"Practitioner/` + idFrom(t, tr, 2) + `"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the stored document lacks %s:\n%s", want, got)
		}
	}
}

// TestTransactionReferenceToReadOrDeleteEntry: a reference to the urn:uuid:
// fullUrl of a GET or DELETE entry names that entry's Type/id, as one to a
// writing entry does (README; R4 http.html, transaction processing: the
// urn:uuid: stands for the resource within the Bundle only). The
// transaction stored the urn:uuid: itself, a reference that names nothing
// outside the Bundle.
func TestTransactionReferenceToReadOrDeleteEntry(t *testing.T) {
	s := startServer(t, app.Config{})
	read, _ := create(t, s, "Patient", []byte(`{"resourceType":"Patient","active":true}`))
	gone, _ := create(t, s, "Patient", []byte(`{"resourceType":"Patient","active":false}`))
	obs := func(ref string) string {
		return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + ref + `"}}`
	}
	tr := mustTransaction(t, s,
		txEntry{method: "GET", url: "Patient/" + read, fullURL: uuidA},
		txEntry{method: "DELETE", url: "Patient/" + gone, fullURL: uuidB},
		txEntry{method: "POST", url: "Observation", resource: obs(uuidA)},
		txEntry{method: "POST", url: "Observation", resource: obs(uuidB)},
	)
	for i, want := range map[int]string{2: "Patient/" + read, 3: "Patient/" + gone} {
		got := string(do(t, "GET", s.base+"/Observation/"+idFrom(t, tr, i), nil).body)
		if !strings.Contains(got, `"subject":{"reference":"`+want+`"}`) {
			t.Errorf("entry %d: subject is not %s:\n%s", i, want, got)
		}
	}
}

// A reference to the urn: fullUrl of an entry that names no one resource
// (a conditional DELETE, a search GET) cannot be resolved: the transaction
// fails with 422 and writes nothing, rather than store the urn:, which names
// nothing outside the Bundle.
func TestTransactionReferenceToConditionalEntry(t *testing.T) {
	s := startServer(t, app.Config{})
	create(t, s, "Patient", []byte(`{"resourceType":"Patient","active":false}`))
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"unresolvable"},"subject":{"reference":"` + uuidA + `"}}`
	for _, e := range []txEntry{
		{method: "DELETE", url: "Patient?active=false", fullURL: uuidA},
		{method: "GET", url: "Patient?active=false", fullURL: uuidA},
	} {
		r, _ := postBundle(t, s, txBundle("transaction", e, txEntry{method: "POST", url: "Observation", resource: obs}))
		if r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), uuidA) {
			t.Errorf("a reference to the fullUrl of %s %s: %d %s, want 422 naming it", e.method, e.url, r.status, r.body)
		}
	}
	if ids, _ := searchAll(t, s, "Observation?code:text=unresolvable"); len(ids) != 0 {
		t.Errorf("stored %v", ids)
	}
	if ids, _ := searchAll(t, s, "Patient?active=false"); len(ids) != 1 {
		t.Errorf("Patients not active: %v, want the one, not deleted", ids)
	}
}

// TestBundleEntryURLBadQuery: a request.url whose query has a broken
// percent-encoding (%zz) or a raw ";" lost that pair in net/url, so a batch
// DELETE Patient?identifier=%zz&gender=male deleted by gender alone and a
// GET searched wider than asked. Such an entry is 400 naming its
// request.url, in a batch as in a transaction, and nothing is deleted.
func TestBundleEntryURLBadQuery(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "m", []byte(`{"resourceType":"Patient","id":"m","gender":"male"}`))
	urls := []struct{ method, url string }{
		{"GET", "Patient?identifier=%zz&gender=male"},
		{"GET", "Patient?gender=male;x"},
		{"DELETE", "Patient?identifier=%zz&gender=male"},
		{"DELETE", "Patient?identifier=a;b&gender=male"},
	}
	for _, u := range urls {
		batch := txBundle("batch", txEntry{method: u.method, url: u.url})
		r, tr := postBundle(t, s, batch)
		if tr == nil {
			t.Fatalf("batch %s %s: %d %s", u.method, u.url, r.status, r.body)
		}
		if st := tr.Entry[0].Response.Status; !strings.HasPrefix(st, "400") {
			t.Errorf("batch entry %s %s: %s, want 400; body %s", u.method, u.url, st, r.body)
		}
		tx := txBundle("transaction", txEntry{method: "POST", url: "Patient", resource: `{"resourceType":"Patient"}`}, txEntry{method: u.method, url: u.url})
		checkOutcome(t, "transaction "+u.method+" "+u.url, do(t, "POST", s.base, tx), 400, "", "Bundle.entry[1].request.url")
	}
	checkVersion(t, "Patient/m after the refused entries", do(t, "GET", s.base+"/Patient/m", nil), 1)
	if n := len(historyEntries(t, s.base+"/_history")); n != 1 {
		t.Errorf("history has %d entries, want 1 (nothing stored)", n)
	}
}

// A create ignores the id in its body (R4 http.html#create: "If an id is
// provided, the server SHALL ignore it"), also one that would not be a
// valid id (a sending system's own key, "MRN_4712", or over 64
// characters): POST, a conditional create and a POST entry of a batch or a
// transaction create the resource under a new id rather than refuse it.
func TestCreateIgnoresBodyID(t *testing.T) {
	s := startServer(t, app.Config{})
	long := strings.Repeat("x", 65)
	for _, bad := range []string{"MRN_4712", long} {
		body := `{"resourceType":"Patient","id":"` + bad + `","active":true}`
		if id, _ := create(t, s, "Patient", []byte(body)); id == bad {
			t.Errorf("POST kept the body's id %q", bad)
		}
		if r := do(t, "POST", s.base+"/Patient", []byte(body), "If-None-Exist", "identifier=urn:none|"+strconv.Itoa(len(bad))); r.status != http.StatusCreated {
			t.Errorf("conditional create with id %q: %d %s", bad, r.status, r.body)
		}
		for _, kind := range []string{"batch", "transaction"} {
			r, tr := postBundle(t, s, txBundle(kind, txEntry{method: "POST", url: "Patient", resource: body}))
			if tr == nil || len(tr.Entry) != 1 || !strings.HasPrefix(tr.Entry[0].Response.Status, "201") {
				t.Errorf("%s POST entry with id %q: %d %s", kind, bad, r.status, r.body)
			}
		}
	}
	// An invalid resource is still refused, and the refusal is about it.
	r := do(t, "POST", s.base+"/Patient", []byte(`{"resourceType":"Patient","id":"MRN_1","active":"yes"}`))
	checkOutcome(t, "POST with a bad id and a bad element", r, http.StatusUnprocessableEntity, "", "Patient.active")
}
