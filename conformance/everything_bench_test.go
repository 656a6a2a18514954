package conformance_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// BenchmarkEverythingHTTP: GET Patient/{id}/$everything over HTTP (an
// in-process server on loopback) for a patient with 2,000 resources (1,000
// Observations, 700 Encounters, 300 Appointments referring to 5
// Organizations and 20 Practitioners) among 50 other patients with 100
// each, loaded with `healthhub import`. Each iteration fetches the whole
// result: one page (_count=5000, ~2.5 MB of JSON) or pages of 500 through
// the next links. ms/result is the time for the whole result, received
// (the client does not decode it).
//
//	go test ./conformance -run '^$' -bench EverythingHTTP -benchtime 20x
func BenchmarkEverythingHTTP(b *testing.B) {
	dir := b.TempDir()
	file := filepath.Join(b.TempDir(), "bench.ndjson")
	if err := os.WriteFile(file, everythingNDJSON(), 0o600); err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	if code := app.Main([]string{"import", "--data", dir, file}, &out, &out); code != 0 {
		b.Fatalf("import: exit %d\n%s", code, out.String())
	}
	s := startServer(b, app.Config{DataDir: dir})
	for _, count := range []int{5000, 500} {
		b.Run(fmt.Sprintf("_count=%d", count), func(b *testing.B) {
			for b.Loop() {
				n := 0
				for next := fmt.Sprintf("%s/Patient/bench-target/$everything?_count=%d", s.base, count); next != ""; {
					r := do(b, http.MethodGet, next, nil)
					if r.status != http.StatusOK {
						b.Fatalf("%d %s", r.status, r.body)
					}
					// Not decoded whole: the figure is the server's and the
					// transport's, not encoding/json's on the client.
					n += bytes.Count(r.body, []byte(`"mode":"match"`))
					next = ""
					if m := nextLink.FindSubmatch(r.body); m != nil {
						if err := json.Unmarshal(m[1], &next); err != nil {
							b.Fatal(err)
						}
					}
				}
				if n != 2001 {
					b.Fatalf("%d matches, want 2,001", n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/result")
		})
	}
}

var nextLink = regexp.MustCompile(`"relation":"next","url":("[^"]*")`)

// everythingNDJSON: the directory, the target patient and its 2,000
// resources, and 50 other patients with 100 each.
func everythingNDJSON() []byte {
	var buf bytes.Buffer
	line := func(format string, args ...any) { fmt.Fprintf(&buf, format+"\n", args...) }
	for i := range 5 {
		line(`{"resourceType":"Organization","id":"bench-org-%d","name":"Hospital %d"}`, i, i)
	}
	for i := range 20 {
		line(`{"resourceType":"Practitioner","id":"bench-pr-%d","name":[{"family":"Doctor%d"}]}`, i, i)
	}
	records := func(pid string, obs, enc, appt int) {
		line(`{"resourceType":"Patient","id":%q,"name":[{"family":"Bench","given":["Pat"]}],"gender":"female","birthDate":"1970-01-01","managingOrganization":{"reference":"Organization/bench-org-0"}}`, pid)
		for i := range obs {
			line(`{"resourceType":"Observation","id":"%s-o%d","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/%s"},"encounter":{"reference":"Encounter/%s-e%d"},"effectiveDateTime":"2024-%02d-%02dT10:00:00Z","performer":[{"reference":"Practitioner/bench-pr-%d"}],"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
				pid, i, pid, pid, i%enc, i%12+1, i%28+1, i%20, 60+i%40)
		}
		for i := range enc {
			line(`{"resourceType":"Encounter","id":"%s-e%d","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"},"participant":[{"individual":{"reference":"Practitioner/bench-pr-%d"}}],"period":{"start":"2023-%02d-%02dT09:00:00Z","end":"2023-%02d-%02dT09:30:00Z"},"serviceProvider":{"reference":"Organization/bench-org-%d"}}`,
				pid, i, pid, i%20, i%12+1, i%28+1, i%12+1, i%28+1, i%5)
		}
		for i := range appt {
			line(`{"resourceType":"Appointment","id":"%s-a%d","status":"booked","start":"2027-%02d-%02dT10:00:00Z","end":"2027-%02d-%02dT10:20:00Z","participant":[{"actor":{"reference":"Patient/%s"},"status":"accepted"},{"actor":{"reference":"Practitioner/bench-pr-%d"},"status":"accepted"}]}`,
				pid, i, i%12+1, i%28+1, i%12+1, i%28+1, pid, i%20)
		}
	}
	records("bench-target", 1000, 700, 300)
	for o := range 50 {
		records(fmt.Sprintf("bench-other-%d", o), 50, 30, 20)
	}
	return buf.Bytes()
}
