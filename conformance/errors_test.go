package conformance_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// errorCase is one request the server must refuse: the status, and an
// OperationOutcome with an issue of the given code and expression.
type errorCase struct {
	name, method, path string
	headers            []string
	body               string // sent when method is POST or PUT (even when empty)
	status             int
	code, expr         string // "" = not checked
}

// TestErrors: every error is an OperationOutcome with the right status,
// issue code and element expression, and a refused write stores nothing.
func TestErrors(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "p1", loadFixture(t, "Patient"))
	put(t, s, "Patient", "gone", loadFixture(t, "Patient"))
	put(t, s, "Basic", "b1", []byte(`{"resourceType":"Basic","code":{"text":"x"}}`))
	if r := do(t, "DELETE", s.base+"/Patient/gone", nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	const p1 = `{"resourceType":"Patient","id":"p1"}`
	long := strings.Repeat("a", 65)
	cases := []errorCase{
		// Not JSON, not an object, not this type: 400.
		{name: "malformed JSON", method: "POST", path: "/Patient", body: `{"resourceType":"Patient",`, status: 400, code: "structure"},
		{name: "malformed JSON on PUT", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient" "id":"p1"}`, status: 400, code: "structure"},
		{name: "trailing data", method: "POST", path: "/Patient", body: `{"resourceType":"Patient"} {}`, status: 400, code: "structure"},
		{name: "duplicate member", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","active":true,"active":false}`, status: 400, code: "structure"},
		{name: "invalid UTF-8", method: "POST", path: "/Patient", body: "{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}", status: 400, code: "structure"},
		{name: "invalid UTF-8 in a name", method: "POST", path: "/Patient", body: "{\"resourceType\":\"Patient\",\"\xc3\":true}", status: 400, code: "structure"},
		{name: "byte order mark", method: "POST", path: "/Patient", body: "\ufeff{\"resourceType\":\"Patient\"}", status: 400, code: "structure"},
		{name: "array", method: "POST", path: "/Patient", body: `[{"resourceType":"Patient"}]`, status: 400, code: "structure"},
		{name: "string", method: "POST", path: "/Patient", body: `"Patient"`, status: 400, code: "structure"},
		{name: "null", method: "POST", path: "/Patient", body: `null`, status: 400, code: "structure"},
		{name: "no resourceType", method: "POST", path: "/Patient", body: `{"active":true}`, status: 400, code: "required", expr: "resourceType"},
		{name: "resourceType not a string", method: "POST", path: "/Patient", body: `{"resourceType":1}`, status: 400, expr: "resourceType"},
		{name: "wrong resourceType", method: "POST", path: "/Patient", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, status: 400, code: "invalid", expr: "resourceType"},
		{name: "wrong resourceType on PUT", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Organization","id":"p1"}`, status: 400, code: "invalid", expr: "resourceType"},
		{name: "empty body", method: "POST", path: "/Patient", body: ``, status: 400, code: "required"},
		{name: "blank body", method: "POST", path: "/Patient", body: " \n\t ", status: 400, code: "required"},
		{name: "empty body on PUT", method: "PUT", path: "/Patient/p1", body: ``, status: 400, code: "required"},

		// Well-formed but not valid R4: 422, naming the element.
		{name: "impossible date", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","birthDate":"2023-02-30"}`, status: 422, code: "value", expr: "Patient.birthDate"},
		{name: "date in another format", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","birthDate":"25/12/1974"}`, status: 422, expr: "Patient.birthDate"},
		{name: "impossible instant", method: "POST", path: "/Observation", body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"issued":"2023-01-01T24:00:00Z"}`, status: 422, expr: "Observation.issued"},
		{name: "unknown element", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","foo":1}`, status: 422, code: "structure", expr: "Patient.foo"},
		{name: "unknown nested element", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[{"family":"X","surname":"Y"}]}`, status: 422, code: "structure", expr: "Patient.name[0].surname"},
		{name: "wrong JSON type", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","active":"yes"}`, status: 422, code: "structure", expr: "Patient.active"},
		{name: "array expected", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":{"family":"X"}}`, status: 422, expr: "Patient.name"},
		{name: "bad code", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","gender":"robot"}`, status: 422, expr: "Patient.gender"},
		{name: "required element missing", method: "POST", path: "/Observation", body: `{"resourceType":"Observation","status":"final"}`, status: 422, code: "required", expr: "Observation.code"},
		{name: "required nested element missing", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","link":[{"type":"seealso"}]}`, status: 422, code: "required", expr: "Patient.link[0].other"},
		{name: "bad reference", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","managingOrganization":{"reference":"bad ref"}}`, status: 422, code: "value", expr: "Patient.managingOrganization.reference"},
		{name: "invalid contained resource", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"c","birthDate":"2023-02-30"}],"link":[{"other":{"reference":"#c"},"type":"seealso"}]}`, status: 422, code: "value", expr: "Patient.contained[0].birthDate"},
		{name: "invalid id in the body of an update", method: "PUT", path: "/Patient/bad_id", body: `{"resourceType":"Patient","id":"bad_id"}`, status: 400},
		{name: "invalid resource on PUT", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p1","birthDate":"2023-02-30"}`, status: 422, expr: "Patient.birthDate"},
		{name: "invalid resource on update-as-create", method: "PUT", path: "/Patient/new1", body: `{"resourceType":"Patient","id":"new1","active":1}`, status: 422, expr: "Patient.active"},
		{name: "invalid generic type", method: "POST", path: "/Medication", body: `{"resourceType":"Medication","code":"not a CodeableConcept"}`, status: 422, expr: "Medication.code"},

		// Update: the body's id must be there and agree with the URL.
		{name: "PUT without id", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient"}`, status: 400, code: "required", expr: "Patient.id"},
		{name: "PUT id mismatch", method: "PUT", path: "/Patient/p1", body: `{"resourceType":"Patient","id":"p2"}`, status: 400, code: "invalid", expr: "Patient.id"},
		{name: "PUT new id mismatch", method: "PUT", path: "/Patient/new2", body: `{"resourceType":"Patient","id":"new3"}`, status: 400, code: "invalid", expr: "Patient.id"},

		// Ids in the URL.
		{name: "read invalid id", method: "GET", path: "/Patient/bad_id", status: 400, code: "value", expr: "Patient.id"},
		{name: "read id too long", method: "GET", path: "/Patient/" + long, status: 400, code: "value", expr: "Patient.id"},
		{name: "vread invalid id", method: "GET", path: "/Patient/bad$id/_history/1", status: 400, code: "value"},
		{name: "PUT invalid id", method: "PUT", path: "/Patient/bad_id", body: `{"resourceType":"Patient","id":"bad_id"}`, status: 400, code: "value", expr: "Patient.id"},
		{name: "DELETE invalid id", method: "DELETE", path: "/Patient/bad_id", status: 400, code: "value", expr: "Patient.id"},

		// Not there, not any more.
		{name: "unknown id", method: "GET", path: "/Patient/nobody", status: 404, code: "not-found"},
		{name: "vread unknown id", method: "GET", path: "/Patient/nobody/_history/1", status: 404, code: "not-found"},
		{name: "vread unknown version", method: "GET", path: "/Patient/p1/_history/2", status: 404, code: "not-found"},
		{name: "vread version zero", method: "GET", path: "/Patient/p1/_history/0", status: 404, code: "not-found"},
		{name: "vread version not a number", method: "GET", path: "/Patient/p1/_history/one", status: 404, code: "not-found"},
		{name: "deleted", method: "GET", path: "/Patient/gone", status: 410, code: "deleted"},
		{name: "vread deletion", method: "GET", path: "/Patient/gone/_history/2", status: 410, code: "deleted"},
		{name: "read _summary=count", method: "GET", path: "/Patient/p1?_summary=count", status: 400, code: "value"},
		{name: "read _summary unknown", method: "GET", path: "/Patient/p1?_summary=maybe", status: 400, code: "value"},
		{name: "read _summary twice", method: "GET", path: "/Patient/p1?_summary=true&_summary=data", status: 400, code: "value"},
		{name: "read _summary=true, type without summary elements", method: "GET", path: "/Basic/b1?_summary=true", status: 400, code: "not-supported"},
		{name: "unknown type read", method: "GET", path: "/Unicorn/1", status: 404},
		{name: "unknown type create", method: "POST", path: "/Unicorn", body: `{"resourceType":"Unicorn"}`, status: 404},
		{name: "unknown type update", method: "PUT", path: "/Unicorn/1", body: `{"resourceType":"Unicorn","id":"1"}`, status: 404},
		{name: "no such endpoint", method: "GET", path: "/Patient/p1/_history/1/more", status: 404, code: "not-found"},

		// Methods.
		{name: "PATCH with a FHIR body (FHIRPath Patch)", method: "PATCH", path: "/Patient/p1", body: `[]`, status: 415, code: "not-supported"},
		{name: "POST instance", method: "POST", path: "/Patient/p1", body: p1, status: 405, code: "not-supported"},
		{name: "PUT type without criteria", method: "PUT", path: "/Patient", body: p1, status: 400, code: "required"},
		{name: "DELETE type without criteria", method: "DELETE", path: "/Patient", status: 400, code: "required"},
		{name: "DELETE type, criteria only _count", method: "DELETE", path: "/Patient?_count=5", status: 400, code: "required"},
		{name: "DELETE version", method: "DELETE", path: "/Patient/p1/_history/1", status: 405, code: "not-supported"},
		{name: "PUT version", method: "PUT", path: "/Patient/p1/_history/1", body: p1, status: 405, code: "not-supported"},
		{name: "DELETE history", method: "DELETE", path: "/_history", status: 405, code: "not-supported"},
		{name: "PUT metadata", method: "PUT", path: "/metadata", body: p1, status: 405, code: "not-supported"},
		// [base]/_search takes POST only (system search); the others
		// would reach a type "_search".
		{name: "GET _search", method: "GET", path: "/_search", status: 405, code: "not-supported"},
		{name: "PUT _search", method: "PUT", path: "/_search", body: p1, status: 405, code: "not-supported"},
		{name: "DELETE _search", method: "DELETE", path: "/_search", status: 405, code: "not-supported"},
		{name: "PATCH _search", method: "PATCH", path: "/_search", headers: []string{"Content-Type", "application/json-patch+json"}, body: `[]`, status: 405, code: "not-supported"},

		// Media types.
		{name: "XML body", method: "POST", path: "/Patient", headers: []string{"Content-Type", "application/fhir+xml"}, body: `<Patient xmlns="http://hl7.org/fhir"/>`, status: 415, code: "not-supported"},
		{name: "text body on PUT", method: "PUT", path: "/Patient/p1", headers: []string{"Content-Type", "text/plain"}, body: p1, status: 415, code: "not-supported"},
		// A content coding we do not decode (RFC 9110 8.4.1): read as it
		// is, a gzip body would be taken for malformed JSON or a form.
		{name: "gzip body on create", method: "POST", path: "/Patient", headers: []string{"Content-Encoding", "gzip"}, body: p1, status: 415, code: "not-supported"},
		{name: "gzip form on _search", method: "POST", path: "/Patient/_search", headers: []string{"Content-Type", "application/x-www-form-urlencoded", "Content-Encoding", "gzip"}, body: "gender=female", status: 415, code: "not-supported"},
		{name: "XML wanted", method: "GET", path: "/Patient/p1", headers: []string{"Accept", "application/fhir+xml"}, status: 406, code: "not-supported"},
		{name: "XML wanted on create", method: "POST", path: "/Patient?_format=xml", body: p1, status: 406, code: "not-supported"},

		// Version conflicts.
		{name: "If-Match stale", method: "PUT", path: "/Patient/p1", headers: []string{"If-Match", `W/"7"`}, body: p1, status: 412, code: "conflict"},
		{name: "If-Match malformed", method: "PUT", path: "/Patient/p1", headers: []string{"If-Match", `W/1"`}, body: p1, status: 400, code: "value"},
		{name: "If-Match on delete, stale", method: "DELETE", path: "/Patient/p1", headers: []string{"If-Match", `W/"7"`}, status: 412, code: "conflict"},
		{name: "If-Match on delete, absent", method: "DELETE", path: "/Patient/nobody", headers: []string{"If-Match", `W/"1"`}, status: 412, code: "conflict"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := entryRefs(s.base, historyEntries(t, s.base+"/_history"))
			var body []byte
			if c.method == "POST" || c.method == "PUT" || c.method == "PATCH" {
				body = []byte(c.body)
			}
			r := do(t, c.method, s.base+c.path, body, c.headers...)
			checkOutcome(t, fmt.Sprintf("%s %s", c.method, c.path), r, c.status, c.code, c.expr)
			if r.status >= 400 && r.status != 401 && r.header.Get("X-Request-Id") == "" {
				t.Errorf("%s %s: no X-Request-Id on the error", c.method, c.path)
			}
			after := entryRefs(s.base, historyEntries(t, s.base+"/_history"))
			if len(after) != len(before) {
				t.Errorf("%s %s: the refused request was stored: history has %d entries, had %d; newest %s", c.method, c.path, len(after), len(before), after[0])
			}
		})
	}
	// p1 is unchanged after all that.
	r := do(t, "GET", s.base+"/Patient/p1", nil)
	checkVersion(t, "p1 after the refused requests", r, 1)
	if err := sameResource(t, withID(t, loadFixture(t, "Patient"), "p1"), r.body, false); err != nil {
		t.Error(err)
	}
	// 405 says what is allowed.
	if r := do(t, "POST", s.base+"/Patient/p1", []byte(p1)); !strings.Contains(r.header.Get("Allow"), "PUT") {
		t.Errorf("405: Allow %q, want the allowed methods", r.header.Get("Allow"))
	}
	if r := do(t, "GET", s.base+"/_search", nil); r.header.Get("Allow") != "POST" {
		t.Errorf("GET /_search: Allow %q, want POST", r.header.Get("Allow"))
	}
}

// TestBodyTooLarge: a body over --max-body is 413 and not stored; one just
// under it is taken.
func TestBodyTooLarge(t *testing.T) {
	const limit = 4096
	s := startServer(t, app.Config{MaxBody: limit})
	// padded makes a valid Patient of exactly n bytes.
	padded := func(n int, id string) []byte {
		head := `{"resourceType":"Patient",`
		if id != "" {
			head += `"id":"` + id + `",`
		}
		head += `"name":[{"text":"`
		tail := `"}]}`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	cases := []struct {
		name, method, path, id string
		size, status           int
	}{
		{"create at the limit", "POST", "/Patient", "", limit, 201},
		{"create one byte over", "POST", "/Patient", "", limit + 1, 413},
		{"create far over", "POST", "/Patient", "", 64 * limit, 413},
		{"update at the limit", "PUT", "/Patient/big", "big", limit, 201},
		{"update over", "PUT", "/Patient/big", "big", limit + 1, 413},
		{"update-as-create over", "PUT", "/Patient/big2", "big2", 2 * limit, 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(historyEntries(t, s.base+"/_history"))
			body := padded(c.size, c.id)
			if len(body) != c.size {
				t.Fatalf("padded body has %d bytes, want %d", len(body), c.size)
			}
			r := do(t, c.method, s.base+c.path, body)
			after := len(historyEntries(t, s.base+"/_history"))
			if c.status != 413 {
				if r.status != c.status {
					t.Fatalf("%d bytes: status %d, want %d: %s", c.size, r.status, c.status, r.body)
				}
				if after != before+1 {
					t.Errorf("%d bytes: history grew by %d, want 1", c.size, after-before)
				}
				return
			}
			checkOutcome(t, fmt.Sprintf("%s %d bytes", c.method, c.size), r, 413, "too-costly", "")
			if after != before {
				t.Errorf("%d bytes: refused body was stored", c.size)
			}
		})
	}
	// The server still answers on a fresh connection after refusing.
	if r := do(t, "GET", s.base+"/Patient/big", nil); r.status != 200 || !bytes.Contains(r.body, []byte(`"id":"big"`)) {
		t.Errorf("read after 413: status %d", r.status)
	}
}

// TestErrorOutcomesLeakNothing: error diagnostics name the problem without
// the server's internals (no Go error types, file paths or stack frames).
func TestErrorOutcomesLeakNothing(t *testing.T) {
	s := startServer(t, app.Config{})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/Patient", `{"resourceType":"Patient",`},
		{"POST", "/Patient", `{"resourceType":"Patient","birthDate":"2023-02-30"}`},
		{"GET", "/Patient/nobody", ""},
		{"GET", "/Patient/bad_id", ""},
		{"PATCH", "/Patient/x", "[]"},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		r := do(t, c.method, s.base+c.path, body)
		for _, leak := range []string{".go:", "goroutine", "bbolt", "runtime.", "panic", s.dataDir} {
			if bytes.Contains(r.body, []byte(leak)) {
				t.Errorf("%s %s: the OperationOutcome mentions %q: %s", c.method, c.path, leak, r.body)
			}
		}
		if r.status >= 500 {
			t.Errorf("%s %s: status %d", c.method, c.path, r.status)
		}
	}
}

// TestPatchDuplicateMembers: a resource body with a duplicate member name
// is 400 (parsers disagree on which one counts); a JSON Patch with one,
// in an operation ({"path":"/active",...,"path":"/gender"}) or in its value,
// was applied with the last one silently winning. It is 400 too, and the
// resource is unchanged.
func TestPatchDuplicateMembers(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "p1", []byte(`{"resourceType":"Patient","id":"p1","active":true}`))
	for _, patch := range []string{
		`[{"op":"replace","path":"/active","value":false,"path":"/gender"}]`,
		`[{"op":"add","op":"remove","path":"/active"}]`,
		`[{"op":"add","path":"/name","value":[{"family":"A","family":"B"}]}]`,
	} {
		r := do(t, "PATCH", s.base+"/Patient/p1", []byte(patch), "Content-Type", "application/json-patch+json")
		checkOutcome(t, "PATCH "+patch, r, 400, "structure", "")
	}
	checkVersion(t, "Patient/p1 after the refused patches", do(t, "GET", s.base+"/Patient/p1", nil), 1)
}
