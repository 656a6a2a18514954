package interaction_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
	"healthhub/fhir/search"
	"healthhub/fhir/validate"
	"healthhub/store"
)

// BenchmarkEverything: Patient/$everything of a patient with 2,000
// resources (1,000 Observations, 700 Encounters, 300 Appointments, each
// referring to one of 5 Organizations and 20 Practitioners) in a store
// holding 50 other patients with 100 resources each. Loaded through the
// import path. Each iteration reads the whole result: one page of 5,000
// ("one-page"), or pages of 100 following the cursor ("pages-of-100").
// ms/result is the time for the whole result.
//
//	go test ./fhir/interaction -run '^$' -bench Everything -benchtime 50x
func BenchmarkEverything(b *testing.B) {
	reg, err := search.Load()
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(b.TempDir(), store.Options{Indexer: interaction.NewIndexer(reg)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc := interaction.New(st, validate.New(), reg)
	ctx, p := context.Background(), auth.Local()
	im := svc.NewImporter(p, interaction.ImportOptions{Report: func(e *interaction.LineError) { b.Fatal(e) }})
	if err := im.Read(ctx, "everything-bench", bytes.NewReader(everythingBenchData(50, 100))); err != nil {
		b.Fatal(err)
	}
	if _, err := im.Finish(ctx); err != nil {
		b.Fatal(err)
	}

	whole := func(b *testing.B, count int) int {
		n := 0
		req := interaction.EverythingRequest{ID: "bench-target", Count: count}
		for {
			page, err := svc.Everything(ctx, p, req)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page.Matches)
			if !page.Next {
				return n
			}
			req.Cursor = fmt.Sprintf("%s.%d", page.Snapshot, page.Offset+count)
		}
	}
	for _, bc := range []struct {
		name  string
		count int
	}{{"one-page", interaction.MaxEverythingCount}, {"pages-of-100", 100}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if n := whole(b, bc.count); n != 2001 {
					b.Fatalf("%d resources, want 2,001 (the patient and 2,000)", n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/result")
		})
	}
}

// everythingBenchData is NDJSON: the directory, the target patient's
// 2,000 resources, and others patients with perOther each.
func everythingBenchData(others, perOther int) []byte {
	var buf bytes.Buffer
	for i := range 5 {
		fmt.Fprintf(&buf, `{"resourceType":"Organization","id":"bench-org-%d","name":"Hospital %d","identifier":[{"system":"https://example.org/org","value":"%d"}]}`+"\n", i, i, i)
	}
	for i := range 20 {
		fmt.Fprintf(&buf, `{"resourceType":"Practitioner","id":"bench-pr-%d","name":[{"family":"Doctor%d","given":["Alex"]}]}`+"\n", i, i)
	}
	patient := func(id string) {
		fmt.Fprintf(&buf, `{"resourceType":"Patient","id":%q,"name":[{"family":"Bench","given":["Pat"]}],"gender":"female","birthDate":"1970-01-01","managingOrganization":{"reference":"Organization/bench-org-0"}}`+"\n", id)
	}
	records := func(pid string, obs, enc, appt int) {
		for i := range obs {
			fmt.Fprintf(&buf, `{"resourceType":"Observation","id":"%s-o%d","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/%s"},"encounter":{"reference":"Encounter/%s-e%d"},"effectiveDateTime":"2024-%02d-%02dT10:00:00Z","performer":[{"reference":"Practitioner/bench-pr-%d"}],"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`+"\n",
				pid, i, pid, pid, i%max(enc, 1), i%12+1, i%28+1, i%20, 60+i%40)
		}
		for i := range enc {
			fmt.Fprintf(&buf, `{"resourceType":"Encounter","id":"%s-e%d","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"type":[{"coding":[{"system":"http://snomed.info/sct","code":"185349003","display":"Encounter for check up"}]}],"subject":{"reference":"Patient/%s"},"participant":[{"individual":{"reference":"Practitioner/bench-pr-%d"}}],"period":{"start":"2023-%02d-%02dT09:00:00Z","end":"2023-%02d-%02dT09:30:00Z"},"serviceProvider":{"reference":"Organization/bench-org-%d"}}`+"\n",
				pid, i, pid, i%20, i%12+1, i%28+1, i%12+1, i%28+1, i%5)
		}
		for i := range appt {
			fmt.Fprintf(&buf, `{"resourceType":"Appointment","id":"%s-a%d","status":"booked","start":"2027-%02d-%02dT10:00:00Z","end":"2027-%02d-%02dT10:20:00Z","participant":[{"actor":{"reference":"Patient/%s"},"status":"accepted"},{"actor":{"reference":"Practitioner/bench-pr-%d"},"status":"accepted"}]}`+"\n",
				pid, i, i%12+1, i%28+1, i%12+1, i%28+1, pid, i%20)
		}
	}
	patient("bench-target")
	records("bench-target", 1000, 700, 300)
	for o := range others {
		pid := fmt.Sprintf("bench-other-%d", o)
		patient(pid)
		records(pid, perOther/2, perOther*3/10, perOther/5)
	}
	return buf.Bytes()
}
