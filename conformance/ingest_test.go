package conformance_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
)

const syntheaBundles = "../../shared/data/synthea-bundles-10"

// idempotentBundle rewrites a Synthea transaction Bundle (plain POSTs) so
// that loading it again changes nothing but versions: Organizations and
// Practitioners by conditional create on their identifier, Patients by
// conditional update on theirs, Encounters and Observations by conditional
// update on an identifier made from their fullUrl, and the types this
// server does not search by update with their own id. counts are the
// entries per type.
func idempotentBundle(t *testing.T, raw []byte) (body []byte, counts map[string]int) {
	t.Helper()
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	counts = map[string]int{}
	for _, e := range b["entry"].([]any) {
		e := e.(map[string]any)
		res := e["resource"].(map[string]any)
		typ, id := res["resourceType"].(string), res["id"].(string)
		counts[typ]++
		req := map[string]any{}
		criteria := func() string {
			ident := list(res["identifier"])
			if len(ident) == 0 {
				ident = []any{map[string]any{"system": "urn:ietf:rfc:3986", "value": e["fullUrl"]}}
				res["identifier"] = ident
			}
			first := obj(ident[0])
			return "identifier=" + url.QueryEscape(str(first["system"])+"|"+str(first["value"]))
		}
		switch typ {
		case "Organization", "Practitioner":
			req["method"], req["url"], req["ifNoneExist"] = "POST", typ, criteria()
		case "Patient", "Encounter", "Observation":
			req["method"], req["url"] = "PUT", typ+"?"+criteria()
		default:
			req["method"], req["url"] = "PUT", typ+"/"+id
		}
		e["request"] = req
	}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out, counts
}

// TestIdempotentIngestion: the same Synthea patient Bundle, sent twice as
// a transaction with conditional create/update, leaves one copy of each
// resource, with references resolved to them.
func TestIdempotentIngestion(t *testing.T) {
	path := filepath.Join(syntheaBundles, "a9fcc685-c7a2-4474-bf25-26c8fe4b48f9.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("skipping: %v (the shared Synthea data sits beside the checkout)", err)
	}
	s := startServer(t, app.Config{})
	body, counts := idempotentBundle(t, raw)
	var patient string
	for round := 1; round <= 2; round++ {
		_, tr := postBundle(t, s, body)
		if tr == nil {
			r := do(t, "POST", s.base, body)
			t.Fatalf("round %d: %d %s", round, r.status, r.body)
		}
		for _, typ := range []string{"Patient", "Organization", "Practitioner", "Encounter", "Observation"} {
			if ids := idsOf(t, s, typ+"?_count=1000"); len(ids) != counts[typ] {
				t.Errorf("round %d: %d %s stored, want %d", round, len(ids), typ, counts[typ])
			}
		}
		ids := idsOf(t, s, "Patient")
		if len(ids) != 1 {
			t.Fatalf("round %d: Patients %v", round, ids)
		}
		patient = ids[0]
		for i, e := range tr.Entry {
			want := map[int]string{1: "201 Created", 2: "200 OK"}[round]
			if e.Response.Status != want {
				t.Errorf("round %d entry %d: %s, want %s", round, i, e.Response.Status, want)
				break
			}
		}
	}
	if n := len(idsOf(t, s, "Observation?_count=1000&subject=Patient/"+patient)); n != counts["Observation"] {
		t.Errorf("%d Observations refer to Patient/%s, want %d", n, patient, counts["Observation"])
	}
	if n := len(idsOf(t, s, "Encounter?_count=1000&patient=Patient/"+patient)); n != counts["Encounter"] {
		t.Errorf("%d Encounters refer to Patient/%s, want %d", n, patient, counts["Encounter"])
	}
}

// TestConcurrentTransactions: 8 clients × 20 transactions, each updating
// the same Patient with If-Match (retrying on 412 from a fresh read) and
// conditionally creating the same Observation: every increment lands
// once, one Observation exists, nothing hangs.
func TestConcurrentTransactions(t *testing.T) {
	const clients, rounds = 8, 20
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "shared", []byte(`{"resourceType":"Patient","multipleBirthInteger":0}`))
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	done := make(chan struct{})
	for c := range clients {
		wg.Go(func() {
			for i := 0; i < rounds; {
				r, err := send("GET", s.base+"/Patient/shared", nil)
				if err != nil {
					errs <- err
					return
				}
				var p struct{ MultipleBirthInteger int }
				if err := json.Unmarshal(r.body, &p); err != nil {
					errs <- err
					return
				}
				tx := txBundle("transaction",
					txEntry{method: "PUT", url: "Patient/shared", ifMatch: r.header.Get("ETag"),
						resource: `{"resourceType":"Patient","id":"shared","multipleBirthInteger":` + strconv.Itoa(p.MultipleBirthInteger+1) + `}`},
					txEntry{method: "POST", url: "Observation", ifNoneExist: "identifier=urn:s|shared-obs",
						resource: `{"resourceType":"Observation","identifier":[{"system":"urn:s","value":"shared-obs"}],"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/shared"}}`},
					txEntry{method: "POST", url: "Encounter", fullURL: uuidA,
						resource: `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/shared"},"identifier":[{"system":"urn:client","value":"` + fmt.Sprint(c, "-", i) + `"}]}`},
				)
				r, err = send("POST", s.base, tx)
				if err != nil {
					errs <- err
					return
				}
				switch r.status {
				case http.StatusOK:
					i++
				case http.StatusPreconditionFailed: // someone else got there first: read again
				default:
					errs <- fmt.Errorf("client %d: %d %s", c, r.status, r.body)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("transactions did not finish in 2 minutes: deadlock?")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r := do(t, "GET", s.base+"/Patient/shared", nil)
	if got := decodeJSON(t, r.body)["multipleBirthInteger"]; fmt.Sprint(got) != strconv.Itoa(clients*rounds) {
		t.Errorf("counter %v, want %d: an update was lost", got, clients*rounds)
	}
	if etag := r.header.Get("ETag"); etag != `W/"`+strconv.Itoa(clients*rounds+1)+`"` {
		t.Errorf("ETag %s, want version %d", etag, clients*rounds+1)
	}
	if ids := idsOf(t, s, "Observation?identifier=urn:s|shared-obs"); len(ids) != 1 {
		t.Errorf("%d shared Observations, want 1", len(ids))
	}
	if n := len(idsOf(t, s, "Encounter?_count=1000")); n != clients*rounds {
		t.Errorf("%d Encounters, want %d", n, clients*rounds)
	}
}
