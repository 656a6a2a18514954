package interaction_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/interaction"
	"healthhub/fhir/search"
	"healthhub/fhir/validate"
	"healthhub/store"
)

var (
	registryOnce sync.Once
	registry     *search.Registry
)

// newService is a Service over a fresh store.
func newService(t *testing.T) *interaction.Service {
	t.Helper()
	registryOnce.Do(func() {
		var err error
		if registry, err = search.Load(); err != nil {
			panic(err)
		}
	})
	// A small index journal folds every few writes, so searches read
	// entries from the journal and the B+trees both (store/journal.go).
	// The store derives entries as serve's does, and checks every write
	// gives it the entries it would derive.
	st, err := store.Open(t.TempDir(), store.Options{IndexJournalMax: 5, Indexer: interaction.NewIndexer(registry), VerifyIndexer: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return interaction.New(st, validate.New(), registry)
}

var ctx = context.Background()

func patient(val, family string) []byte {
	return []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:s","value":"` + val + `"}],"name":[{"family":"` + family + `"}]}`)
}

// seed stores one Patient with identifier urn:s|one and two with urn:s|two.
func seed(t *testing.T, svc *interaction.Service) (one string, two []string) {
	t.Helper()
	for i, v := range []string{"one", "two", "two"} {
		r, err := svc.Create(ctx, auth.Local(), "Patient", patient(v, "F"))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			one = r.ID
		} else {
			two = append(two, r.ID)
		}
	}
	return one, two
}

// count is the number of Patients matching query.
func count(t *testing.T, svc *interaction.Service, query string) int {
	t.Helper()
	q, err := url.ParseQuery(query + "&_count=1000")
	if err != nil {
		t.Fatal(err)
	}
	page, err := svc.Search(ctx, auth.Local(), "Patient", q, true)
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Matches)
}

// wantKind checks err's kind (0: no error).
func wantKind(t *testing.T, what string, err error, kind fhir.Kind) {
	t.Helper()
	switch {
	case kind == 0 && err != nil:
		t.Errorf("%s: %v", what, err)
	case kind != 0 && err == nil:
		t.Errorf("%s: no error, want kind %d", what, kind)
	case kind != 0 && fhir.KindOf(err) != kind:
		t.Errorf("%s: %v (kind %d), want kind %d", what, err, fhir.KindOf(err), kind)
	}
}

func TestConditionalCreate(t *testing.T) {
	svc := newService(t)
	one, _ := seed(t, svc)
	cases := []struct {
		name, ifNoneExist string
		kind              fhir.Kind
		outcome           interaction.Outcome
		id                string
	}{
		{"none matches", "identifier=urn:s|new", 0, interaction.Created, ""},
		{"the one just created", "identifier=urn:s|new", 0, interaction.Found, ""},
		{"one matches", "identifier=urn:s|one", 0, interaction.Found, one},
		{"several match", "identifier=urn:s|two", fhir.PreconditionFailed, 0, ""},
		{"unknown parameter", "identifer=urn:s|one", fhir.Invalid, 0, ""},
		{"no parameters", "", fhir.Invalid, 0, ""},
		{"only _count", "_count=3", fhir.Invalid, 0, ""},
	}
	for _, tc := range cases {
		before := count(t, svc, "_id:missing=false")
		res, err := svc.ConditionalCreate(ctx, auth.Local(), "Patient", patient("new", "N"), tc.ifNoneExist)
		wantKind(t, tc.name, err, tc.kind)
		if err != nil {
			if after := count(t, svc, "_id:missing=false"); after != before {
				t.Errorf("%s: stored %d", tc.name, after-before)
			}
			continue
		}
		if res.Outcome != tc.outcome || (tc.id != "" && res.Resource.ID != tc.id) {
			t.Errorf("%s: outcome %d id %s, want %d %s", tc.name, res.Outcome, res.Resource.ID, tc.outcome, tc.id)
		}
	}
	if n := count(t, svc, "identifier=urn:s|new"); n != 1 {
		t.Errorf("%d Patients urn:s|new, want 1", n)
	}
}

// TestConditionalCreateRace: identical conditional creates racing each
// other create one resource, as the match is made in the write
// transaction.
func TestConditionalCreateRace(t *testing.T) {
	svc := newService(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := svc.ConditionalCreate(ctx, auth.Local(), "Patient", patient("race", "R"), "identifier=urn:s|race"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := count(t, svc, "identifier=urn:s|race"); n != 1 {
		t.Errorf("%d Patients created, want 1", n)
	}
}

func TestConditionalUpdate(t *testing.T) {
	svc := newService(t)
	one, _ := seed(t, svc)
	cases := []struct {
		name, query, body string
		ifMatch           interaction.Precondition
		kind              fhir.Kind
		outcome           interaction.Outcome
		id                string
	}{
		{"one matches", "identifier=urn:s|one", string(patient("one", "U")), 0, 0, interaction.Updated, one},
		{"If-Match current", "identifier=urn:s|one", string(patient("one", "U")), 2, 0, interaction.Updated, one},
		{"If-Match stale", "identifier=urn:s|one", string(patient("one", "U")), 1, fhir.PreconditionFailed, 0, ""},
		{"body id differs", "identifier=urn:s|one", `{"resourceType":"Patient","id":"x"}`, 0, fhir.Invalid, 0, ""},
		{"none matches", "identifier=urn:s|fresh", string(patient("fresh", "F")), 0, 0, interaction.Created, ""},
		{"none matches, body id", "identifier=urn:s|mine", `{"resourceType":"Patient","id":"mine"}`, 0, 0, interaction.Created, "mine"},
		{"none matches, body id taken", "identifier=urn:s|nobody", `{"resourceType":"Patient","id":"` + one + `"}`, 0, fhir.Conflict, 0, ""},
		{"several match", "identifier=urn:s|two", string(patient("two", "T")), 0, fhir.PreconditionFailed, 0, ""},
		{"no parameters", "", string(patient("x", "X")), 0, fhir.Invalid, 0, ""},
		{"unknown parameter", "nme=x", string(patient("x", "X")), 0, fhir.Invalid, 0, ""},
		{"invalid body", "identifier=urn:s|one", `{"resourceType":"Patient","gender":"nope"}`, 0, fhir.Unprocessable, 0, ""},
	}
	for _, tc := range cases {
		q, _ := url.ParseQuery(tc.query)
		res, err := svc.ConditionalUpdate(ctx, auth.Local(), "Patient", q, []byte(tc.body), tc.ifMatch)
		wantKind(t, tc.name, err, tc.kind)
		if err == nil && (res.Outcome != tc.outcome || (tc.id != "" && res.Resource.ID != tc.id)) {
			t.Errorf("%s: outcome %d id %s, want %d %s", tc.name, res.Outcome, res.Resource.ID, tc.outcome, tc.id)
		}
	}
}

func TestConditionalDelete(t *testing.T) {
	for _, multiple := range []bool{false, true} {
		svc := newService(t)
		seed(t, svc)
		several := fhir.PreconditionFailed
		deleted := 0
		if multiple {
			several, deleted = 0, 2
		}
		cases := []struct {
			name, query string
			kind        fhir.Kind
			deleted     int
		}{
			{"none matches", "identifier=urn:s|nobody", 0, 0},
			{"no parameters", "", fhir.Invalid, 0},
			{"unknown parameter", "foo=bar", fhir.Invalid, 0},
			{"several match", "identifier=urn:s|two", several, deleted},
			{"one matches", "identifier=urn:s|one", 0, 1},
		}
		for _, tc := range cases {
			q, _ := url.ParseQuery(tc.query)
			res, err := svc.ConditionalDelete(ctx, auth.Local(), "Patient", q, 0, multiple)
			wantKind(t, tc.name, err, tc.kind)
			if len(res.Deleted) != tc.deleted {
				t.Errorf("multiple=%v %s: deleted %d, want %d", multiple, tc.name, len(res.Deleted), tc.deleted)
			}
		}
	}
}

func TestPatch(t *testing.T) {
	svc := newService(t)
	r, err := svc.Create(ctx, auth.Local(), "Patient", patient("p", "Before"))
	if err != nil {
		t.Fatal(err)
	}
	version := uint64(1)
	cases := []struct {
		name, patch string
		ifMatch     interaction.Precondition
		kind        fhir.Kind
	}{
		{"replace", `[{"op":"replace","path":"/name/0/family","value":"After"}]`, 0, 0},
		{"If-Match current", `[{"op":"add","path":"/active","value":true}]`, 2, 0},
		{"If-Match stale", `[{"op":"add","path":"/active","value":false}]`, 1, fhir.PreconditionFailed},
		{"test op fails", `[{"op":"test","path":"/active","value":false}]`, 0, fhir.Unprocessable},
		{"missing path", `[{"op":"remove","path":"/gender"}]`, 0, fhir.Unprocessable},
		{"unknown op", `[{"op":"nope","path":"/gender"}]`, 0, fhir.Invalid},
		{"not an array", `{}`, 0, fhir.Invalid},
		{"null", `null`, 0, fhir.Invalid},
		{"invalid result", `[{"op":"add","path":"/gender","value":"nope"}]`, 0, fhir.Unprocessable},
		{"id change", `[{"op":"replace","path":"/id","value":"other"}]`, 0, fhir.Invalid},
		{"resourceType change", `[{"op":"replace","path":"/resourceType","value":"Basic"}]`, 0, fhir.Invalid},
	}
	for _, tc := range cases {
		res, err := svc.Patch(ctx, auth.Local(), "Patient", r.ID, nil, []byte(tc.patch), tc.ifMatch)
		wantKind(t, tc.name, err, tc.kind)
		if err == nil {
			version++
			if res.Resource.VersionID != version {
				t.Errorf("%s: version %d, want %d", tc.name, res.Resource.VersionID, version)
			}
		}
	}
	cur, err := svc.Read(ctx, auth.Local(), "Patient", r.ID)
	if err != nil || cur.VersionID != version || !strings.Contains(string(cur.JSON), `"family":"After"`) || !strings.Contains(string(cur.JSON), `"active":true`) {
		t.Errorf("after the patches: %v %s", err, cur.JSON)
	}
}

// TestPatchKeepsRawJSON: what a patch does not touch keeps its bytes:
// member order, the spelling of decimals, characters JSON encoders like to
// escape.
func TestPatchKeepsRawJSON(t *testing.T) {
	svc := newService(t)
	body := `{"resourceType":"Observation","status":"preliminary","code":{"text":"a<b & c"},"valueQuantity":{"value":72.50,"unit":"kg"},"note":[{"text":"1e2"}]}`
	r, err := svc.Create(ctx, auth.Local(), "Observation", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Patch(ctx, auth.Local(), "Observation", r.ID, nil, []byte(`[{"op":"replace","path":"/status","value":"final"}]`), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := `"status":"final","code":{"text":"a<b & c"},"valueQuantity":{"value":72.50,"unit":"kg"},"note":[{"text":"1e2"}]}`
	if !strings.HasSuffix(string(res.Resource.JSON), want) {
		t.Errorf("patched JSON %s, want it to end %s", res.Resource.JSON, want)
	}
}

// bundle builds a Bundle of kind from entries given as JSON objects.
func bundle(kind string, entries ...string) []byte {
	return []byte(`{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`)
}

func TestTransaction(t *testing.T) {
	svc := newService(t)
	one, _ := seed(t, svc)
	const (
		a = "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"
		b = "urn:uuid:bbbbbbbb-0000-4000-8000-000000000002"
		c = "urn:uuid:cccccccc-0000-4000-8000-000000000003"
	)
	// A -> B -> C, and A -> C deep in an extension and in a contained resource.
	chain := []string{
		`{"fullUrl":"` + a + `","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"encounter":{"reference":"` + b + `"},` +
			`"extension":[{"url":"http://e","valueReference":{"reference":"` + c + `"}}],` +
			`"contained":[{"resourceType":"Provenance","id":"p","recorded":"2024-01-01T00:00:00Z","target":[{"reference":"` + c + `"}],"agent":[{"who":{"reference":"` + c + `"}}]}],"focus":[{"reference":"#p"}]},"request":{"method":"POST","url":"Observation"}}`,
		`{"fullUrl":"` + b + `","resource":{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"` + c + `"}},"request":{"method":"POST","url":"Encounter"}}`,
		`{"fullUrl":"` + c + `","resource":{"resourceType":"Patient","managingOrganization":{"reference":"Organization?identifier=urn:o|org"}},"request":{"method":"POST","url":"Patient"}}`,
		`{"resource":{"resourceType":"Organization","id":"org","identifier":[{"system":"urn:o","value":"org"}]},"request":{"method":"PUT","url":"Organization/org"}}`,
	}
	// The conditional reference needs the Organization before the transaction.
	if _, _, err := svc.Update(ctx, auth.Local(), "Organization", "org", []byte(`{"resourceType":"Organization","id":"org","identifier":[{"system":"urn:o","value":"org"}]}`), 0); err != nil {
		t.Fatal(err)
	}
	last := func(e string) []string { return append(chain[:3:3], e) }
	cases := []struct {
		name    string
		entries []string
		kind    fhir.Kind
		expr    string
	}{
		{"last entry invalid", last(`{"resource":{"resourceType":"Patient","birthDate":"2023-13-01"},"request":{"method":"POST","url":"Patient"}}`), fhir.Unprocessable, "Bundle.entry[3].resource.birthDate"},
		{"last entry If-Match stale", last(`{"resource":{"resourceType":"Patient","id":"` + one + `"},"request":{"method":"PUT","url":"Patient/` + one + `","ifMatch":"W/\"5\""}}`), fhir.PreconditionFailed, "Bundle.entry[3]"},
		{"last entry conditional reference to nothing", last(`{"resource":{"resourceType":"Encounter","status":"planned","class":{"code":"AMB"},"subject":{"reference":"Patient?identifier=urn:s|none"}},"request":{"method":"POST","url":"Encounter"}}`), fhir.NotFound, "Bundle.entry[3]"},
		{"last entry conditional reference to several", last(`{"resource":{"resourceType":"Encounter","status":"planned","class":{"code":"AMB"},"subject":{"reference":"Patient?identifier=urn:s|two"}},"request":{"method":"POST","url":"Encounter"}}`), fhir.PreconditionFailed, "Bundle.entry[3]"},
		{"last entry touches an earlier one's resource", last(`{"request":{"method":"DELETE","url":"Patient/` + one + `"}},{"request":{"method":"DELETE","url":"Patient?identifier=urn:s|one"}}`), fhir.Invalid, "Bundle.entry[4]"},
		{"two conditional creates with the same criteria", last(`{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:s|new"}},{"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient?identifier=urn:s|new"}},{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:s|new"}}`), fhir.Invalid, "Bundle.entry[5]"},
		{"conditional update selecting what a POST creates", last(`{"resource":` + string(patient("made-here", "M")) + `,"request":{"method":"POST","url":"Patient"}},{"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient?identifier=urn:s|made-here"}}`), fhir.Invalid, "Bundle.entry[4]"},
		{"last entry a search with an unknown parameter", last(`{"request":{"method":"DELETE","url":"Patient?nope=1"}}`), fhir.Invalid, "Bundle.entry[3]"},
		{"chain with the conditional reference", chain, 0, ""},
	}
	for _, tc := range cases {
		before := count(t, svc, "_id:missing=false")
		kind, results, err := svc.Bundle(ctx, auth.Local(), bundle("transaction", tc.entries...), interaction.BundleOptions{MaxEntries: 100})
		wantKind(t, tc.name, err, tc.kind)
		if err != nil {
			if !strings.Contains(err.Error(), tc.expr) {
				t.Errorf("%s: error does not name %s: %v", tc.name, tc.expr, err)
			}
			if after := count(t, svc, "_id:missing=false"); after != before {
				t.Errorf("%s: %d Patients written", tc.name, after-before)
			}
			continue
		}
		if kind != "transaction" || len(results) != len(tc.entries) {
			t.Fatalf("%s: %s, %d results", tc.name, kind, len(results))
		}
		obs, enc, pat := results[0].Resource, results[1].Resource, results[2].Resource
		for _, want := range []string{`"encounter":{"reference":"Encounter/` + enc.ID + `"}`, `"valueReference":{"reference":"Patient/` + pat.ID + `"}`, `"target":[{"reference":"Patient/` + pat.ID + `"}]`} {
			if !strings.Contains(string(obs.JSON), want) {
				t.Errorf("Observation lacks %s: %s", want, obs.JSON)
			}
		}
		if !strings.Contains(string(enc.JSON), `"subject":{"reference":"Patient/`+pat.ID+`"}`) || !strings.Contains(string(pat.JSON), `"reference":"Organization/org"`) {
			t.Errorf("Encounter %s, Patient %s", enc.JSON, pat.JSON)
		}
	}
}

// TestTransactionOrder: DELETE, POST, PUT/PATCH, GET whatever the entry
// order.
func TestTransactionOrder(t *testing.T) {
	svc := newService(t)
	one, _ := seed(t, svc)
	_, results, err := svc.Bundle(ctx, auth.Local(), bundle("transaction",
		`{"request":{"method":"GET","url":"Patient/`+one+`"}}`,
		`{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W3sib3AiOiJhZGQiLCJwYXRoIjoiL2FjdGl2ZSIsInZhbHVlIjp0cnVlfV0="},"request":{"method":"PATCH","url":"Patient/`+one+`"}}`,
		`{"resource":`+string(patient("two", "Again"))+`,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:s|two"}}`,
		`{"request":{"method":"DELETE","url":"Patient?identifier=urn:s|two"}}`,
	), interaction.BundleOptions{MaxEntries: 10, MultipleDeletes: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []interaction.Outcome{interaction.Read, interaction.Updated, interaction.Created, interaction.Deleted}
	for i, r := range results {
		if r.Outcome != want[i] {
			t.Errorf("entry %d: outcome %d, want %d", i, r.Outcome, want[i])
		}
	}
	var got struct{ Active bool }
	if err := json.Unmarshal(results[0].Resource.JSON, &got); err != nil || !got.Active || results[0].Resource.VersionID != 2 {
		t.Errorf("GET ran before PATCH: %s", results[0].Resource.JSON)
	}
	if len(results[3].Deleted) != 2 {
		t.Errorf("deleted %d, want 2", len(results[3].Deleted))
	}
}

func TestBatch(t *testing.T) {
	svc := newService(t)
	_, results, err := svc.Bundle(ctx, auth.Local(), bundle("batch",
		`{"resource":`+string(patient("b1", "B"))+`,"request":{"method":"POST","url":"Patient"}}`,
		`{"resource":{"resourceType":"Patient","gender":"nope"},"request":{"method":"POST","url":"Patient"}}`,
		`{"request":{"method":"GET","url":"Patient/nobody"}}`,
		`{"resource":{"resourceType":"Patient"}}`,
		`{"resource":`+string(patient("b2", "B"))+`,"request":{"method":"POST","url":"Patient"}}`,
	), interaction.BundleOptions{MaxEntries: 10})
	if err != nil {
		t.Fatal(err)
	}
	kinds := []fhir.Kind{0, fhir.Unprocessable, fhir.NotFound, fhir.Invalid, 0}
	for i, r := range results {
		wantKind(t, "entry "+strconv.Itoa(i), r.Err, kinds[i])
	}
	if n := count(t, svc, "identifier=urn:s|b1,urn:s|b2"); n != 2 {
		t.Errorf("%d good entries stored, want 2", n)
	}
	if _, _, err := svc.Bundle(ctx, auth.Local(), bundle("batch", `{}`, `{}`), interaction.BundleOptions{MaxEntries: 1}); fhir.KindOf(err) != fhir.TooLarge {
		t.Errorf("over the limit: %v", err)
	}
}

// RFC 6902 section 4.6 (test): "numbers: are considered equal if their
// values are numerically equal"; the target location must hold a value
// (a missing member is not null); "value" is a required member of a test
// operation (section 4.6: "The operation object MUST contain a "value"
// member"), so an operation without it is a malformed patch (400,
// RFC 5789 section 2.2); RFC 6901 section 4: an array index has no leading
// zeros, so /name/01 references nothing.
func TestPatchTestAndIndexes(t *testing.T) {
	svc := newService(t)
	r, err := svc.Create(ctx, auth.Local(), "Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"w"},"valueQuantity":{"value":72.50,"unit":"kg"}}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Create(ctx, auth.Local(), "Patient", patient("p", "Before"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, typ, id, patch string
		kind                 fhir.Kind
	}{
		{"72.50 equals 72.5", "Observation", r.ID, `[{"op":"test","path":"/valueQuantity/value","value":72.5},{"op":"replace","path":"/status","value":"amended"}]`, 0},
		{"72.50 equals 7.25e1", "Observation", r.ID, `[{"op":"test","path":"/valueQuantity/value","value":7.25e1},{"op":"replace","path":"/status","value":"corrected"}]`, 0},
		{"null is not a missing member", "Patient", p.ID, `[{"op":"test","path":"/birthDate","value":null},{"op":"add","path":"/gender","value":"male"}]`, fhir.Unprocessable},
		{"test without value", "Patient", p.ID, `[{"op":"test","path":"/birthDate"},{"op":"add","path":"/gender","value":"female"}]`, fhir.Invalid},
		{"leading zero index", "Patient", p.ID, `[{"op":"replace","path":"/name/00/family","value":"Zero"}]`, fhir.Unprocessable},
		{"signed index", "Patient", p.ID, `[{"op":"add","path":"/name/+0/given","value":["Plus"]}]`, fhir.Unprocessable},
		{"a path that is not a pointer", "Patient", p.ID, `[{"op":"replace","path":"name/0/family","value":"X"}]`, fhir.Invalid},
		{"objects equal whatever their member order", "Patient", p.ID, `[{"op":"test","path":"/identifier/0","value":{"value":"p","system":"urn:s"}}]`, 0},
	}
	for _, tc := range cases {
		_, err := svc.Patch(ctx, auth.Local(), tc.typ, tc.id, nil, []byte(tc.patch), 0)
		wantKind(t, tc.name, err, tc.kind)
	}
}
