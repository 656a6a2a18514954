package conformance_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"testing"
)

// benchBundleEntries is the size of the transaction Bundles posted.
const benchBundleEntries = 100

// BenchmarkHTTPTransaction posts transaction Bundles of 100 entries (the
// Synthea Patient under a urn:uuid: fullUrl and 99 Observations referring
// to it by that urn, so every Bundle also resolves references) from
// benchConns connections, and reports resources written per second.
//
//	go test -run '^$' -bench HTTPTransaction -benchtime 20x ./conformance/
func BenchmarkHTTPTransaction(b *testing.B) {
	tg := startBenchTarget(b, false)
	const patientURL = "urn:uuid:0d6f4a3e-0000-4000-8000-000000000001"
	entries := []benchEntry{{FullURL: patientURL, Resource: tg.body}}
	entries[0].Request.Method, entries[0].Request.URL = "POST", "Patient"
	entries = append(entries, benchPosts("Observation", benchObservations(b, patientURL, benchBundleEntries-1))...)
	benchPostBundles(b, tg, "transaction", entries)
}

// BenchmarkHTTPBatch posts batch Bundles of 100 Observations of one
// existing Patient from benchConns connections, and reports resources
// written per second. A batch's entries are independent, each its own
// transaction.
//
//	go test -run '^$' -bench HTTPBatch -benchtime 20x ./conformance/
func BenchmarkHTTPBatch(b *testing.B) {
	tg := startBenchTarget(b, false)
	benchPostBundles(b, tg, "batch", benchPosts("Observation", benchObservations(b, "Patient/bench-0", benchBundleEntries)))
}

// benchEntry is a Bundle entry as the Bundle benchmarks send it.
type benchEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource"`
	Request  struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
}

// benchPosts makes a POST entry to typ of each resource.
func benchPosts(typ string, resources []json.RawMessage) []benchEntry {
	out := make([]benchEntry, len(resources))
	for i, r := range resources {
		out[i].Resource = r
		out[i].Request.Method, out[i].Request.URL = "POST", typ
	}
	return out
}

// benchPostBundles posts a Bundle of kind with entries from benchConns
// connections and reports the resources written per second.
func benchPostBundles(b *testing.B, tg *benchTarget, kind string, entries []benchEntry) {
	body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": kind, "entry": entries})
	if err != nil {
		b.Fatal(err)
	}
	benchHTTP(b, tg, kind, http.StatusOK, func(*rand.Rand) (string, string, []byte) {
		return http.MethodPost, tg.base, body
	})
	b.ReportMetric(float64(b.N*len(entries))/b.Elapsed().Seconds(), "resources/s")
}

// benchObservations makes n copies of the Observation fixture about
// subject, each at its own minute.
func benchObservations(b *testing.B, subject string, n int) []json.RawMessage {
	obs, err := os.ReadFile("../testdata/resources/Observation.json")
	if err != nil {
		b.Fatal(err)
	}
	out := make([]json.RawMessage, n)
	for i := range out {
		var m map[string]any
		if err := json.Unmarshal(obs, &m); err != nil {
			b.Fatal(err)
		}
		m["subject"] = map[string]any{"reference": subject}
		m["effectiveDateTime"] = fmt.Sprintf("2024-03-01T09:%02d:00Z", (i+1)%60)
		out[i], _ = json.Marshal(m)
	}
	return out
}
