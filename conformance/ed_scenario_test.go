package conformance_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
)

const (
	edVS  = `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}]`
	edLab = `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}]`
)

func edObsVS(id, subj, enc, date string, sys, dia float64, status string) string {
	encm := ""
	if enc != "" {
		encm = fmt.Sprintf(`,"encounter":{"reference":%q}`, enc)
	}
	idm := ""
	if id != "" {
		idm = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{"resourceType":"Observation",%s"status":%q,%s,"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":%q}%s,"effectiveDateTime":%q,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":%v,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":%v,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`,
		idm, status, edVS, subj, encm, date, sys, dia)
}

func edObsLab(id, subj, enc, date string, v float64, status string) string {
	encm := ""
	if enc != "" {
		encm = fmt.Sprintf(`,"encounter":{"reference":%q}`, enc)
	}
	idm := ""
	if id != "" {
		idm = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{"resourceType":"Observation",%s"status":%q,%s,"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"subject":{"reference":%q}%s,"effectiveDateTime":%q,"valueQuantity":{"value":%v,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},"referenceRange":[{"low":{"value":70,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},"high":{"value":100,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}]}`,
		idm, status, edLab, subj, encm, date, v)
}

func edEnc(id, subj, status string) string {
	idm := ""
	if id != "" {
		idm = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{"resourceType":"Encounter",%s"status":%q,"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"EMER"},"subject":{"reference":%q}}`, idm, status, subj)
}

type edPage struct {
	Total *int
	Link  []struct{ Relation, URL string }
	Entry []struct {
		FullURL  string
		Resource map[string]any
		Search   struct{ Mode string }
	}
}

// edAll follows next links, returning matches (in order), includes, and the
// first page's total.
func edAll(t *testing.T, s *server, path string) (matches, includes []string, total int, res map[string]map[string]any) {
	t.Helper()
	total = -1
	res = map[string]map[string]any{}
	next := s.base + "/" + path
	for pages := 0; next != ""; pages++ {
		if pages > 100 {
			t.Fatalf("too many pages")
		}
		r := do(t, http.MethodGet, next, nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		var b edPage
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		if pages == 0 && b.Total != nil {
			total = *b.Total
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		for _, e := range b.Entry {
			rt, _ := e.Resource["resourceType"].(string)
			id, _ := e.Resource["id"].(string)
			key := rt + "/" + id
			res[key] = e.Resource
			switch e.Search.Mode {
			case "match":
				matches = append(matches, key)
			case "include":
				includes = append(includes, key)
			}
		}
	}
	return
}

func TestEDScenario(t *testing.T) {
	dir := t.TempDir()
	// Bulk import from hospital B: its Patient, an encounter, labs, vitals,
	// an Observation with a conditional subject.
	nd := t.TempDir()
	pb := `{"resourceType":"Patient","id":"hb-p1","identifier":[{"system":"http://hosp-b.example/mrn","value":"B-777"}],"name":[{"family":"Oâkley-Smith","given":["Jonathan","Q"]}],"gender":"male","birthDate":"1961-07-04"}`
	os.WriteFile(filepath.Join(nd, "Patient.000.ndjson"), []byte(pb+"\n"), 0o644)
	obsB := strings.Join([]string{
		strings.Replace(edObsVS("hb-o1", "Patient?identifier=http://hosp-b.example/mrn|B-777", "Encounter/hb-e1", "2024-03-01T08:00:00Z", 140, 90, "final"), "\n", "", -1),
		edObsVS("hb-o2", "Patient/hb-p1", "Encounter/hb-e1", "2024-03-01T09:00:00+02:00", 150, 95, "final"),
		edObsLab("hb-o3", "Patient/hb-p1", "Encounter/hb-e1", "2024-03-02", 180, "final"),
	}, "\n") + "\n"
	os.WriteFile(filepath.Join(nd, "Observation.000.ndjson"), []byte(obsB), 0o644)
	os.WriteFile(filepath.Join(nd, "Encounter.000.ndjson"), []byte(edEnc("hb-e1", "Patient/hb-p1", "in-progress")+"\n"), 0o644)
	code, out, errOut := runImport(t, "--data", dir, nd)
	if code != 0 {
		t.Fatalf("import: %d %s %s", code, out, errOut)
	}
	s := startServer(t, app.Config{DataDir: dir})

	// Hospital A by transaction with urn:uuid.
	pA := `{"resourceType":"Patient","identifier":[{"system":"http://hosp-a.example/mrn","value":"A-123"}],"name":[{"family":"Oakley-Smith","given":["John"]}],"gender":"male","birthDate":"1961-07-04"}`
	tr := mustTransaction(t, s,
		txEntry{method: "POST", url: "Patient", fullURL: uuidA, resource: pA, ifNoneExist: "identifier=http://hosp-a.example/mrn|A-123"},
		txEntry{method: "POST", url: "Encounter", fullURL: uuidB, resource: edEnc("", uuidA, "in-progress")},
		txEntry{method: "POST", url: "Observation", fullURL: uuidC, resource: edObsVS("", uuidA, uuidB, "2024-03-01T10:00:00Z", 120, 80, "preliminary")},
		txEntry{method: "POST", url: "Observation", resource: edObsLab("", uuidA, uuidB, "2024-03-01T10:05:00Z", 95, "final")},
	)
	paID := idFrom(t, tr, 0)
	eaID := idFrom(t, tr, 1)
	oa1 := idFrom(t, tr, 2)
	oa2 := idFrom(t, tr, 3)
	// Second transaction: conditional references by identifier.
	tr2 := mustTransaction(t, s,
		txEntry{method: "POST", url: "Observation", resource: edObsVS("", "Patient?identifier=http://hosp-a.example/mrn|A-123", "Encounter/"+eaID, "2024-03-01T11:00:00Z", 130, 85, "final")},
		txEntry{method: "POST", url: "Observation", resource: strings.Replace(edObsVS("", "Patient?identifier=http://hosp-a.example/mrn|A-123", "", "2024-03-01T12:00:00Z", 0, 0, "final"), `"effectiveDateTime"`, `"dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"unknown"}]},"effectiveDateTime"`, 1)},
		txEntry{method: "PUT", url: "Encounter/ha-e2", resource: edEnc("ha-e2", "Patient?identifier=http://hosp-a.example/mrn|A-123", "finished")},
	)
	oa3 := idFrom(t, tr2, 0)
	oa4 := idFrom(t, tr2, 1)

	// A wrong patient, and an Observation filed under it, later moved.
	put(t, s, "Patient", "wrong-p", []byte(`{"resourceType":"Patient","name":[{"family":"Wrong"}],"birthDate":"1990-01-01"}`))
	put(t, s, "Observation", "ha-moved", []byte(edObsVS("ha-moved", "Patient/wrong-p", "", "2024-03-01T13:00:00Z", 160, 100, "final")))
	put(t, s, "Observation", "ha-moved", []byte(edObsVS("ha-moved", "Patient/"+paID, "Encounter/"+eaID, "2024-03-01T13:00:00Z", 160, 100, "final")))
	// preliminary -> final, corrected value.
	put(t, s, "Observation", oa1, []byte(edObsVS(oa1, "Patient/"+paID, "Encounter/"+eaID, "2024-03-01T10:00:00Z", 121, 81, "final")))
	put(t, s, "Observation", oa2, []byte(edObsLab(oa2, "Patient/"+paID, "Encounter/"+eaID, "2024-03-01T10:05:00Z", 99, "corrected")))
	// Deleted ones.
	put(t, s, "Observation", "ha-del", []byte(edObsVS("ha-del", "Patient/"+paID, "Encounter/"+eaID, "2024-03-01T14:00:00Z", 999, 999, "final")))
	if r := do(t, "DELETE", s.base+"/Observation/ha-del", nil); r.status >= 300 {
		t.Fatalf("delete: %d", r.status)
	}
	if r := do(t, "DELETE", s.base+"/Observation/hb-o2", nil); r.status >= 300 {
		t.Fatalf("delete: %d", r.status)
	}
	// More vitals for paging.
	for i := 0; i < 7; i++ {
		put(t, s, "Observation", fmt.Sprintf("ha-v%d", i), []byte(edObsVS(fmt.Sprintf("ha-v%d", i), "Patient/"+paID, "", fmt.Sprintf("2024-02-%02dT0%d:00:00-05:00", 10+i%3, i), 110+float64(i), 70, "final")))
	}
	put(t, s, "Appointment", "ha-ap", []byte(`{"resourceType":"Appointment","status":"booked","start":"2024-03-08T09:00:00-05:00","end":"2024-03-08T09:20:00-05:00","participant":[{"actor":{"reference":"Patient/`+paID+`"},"status":"accepted"}]}`))

	// Find by MRN.
	for q, want := range map[string]string{
		"Patient?identifier=http://hosp-a.example/mrn|A-123": "Patient/" + paID,
		"Patient?identifier=http://hosp-b.example/mrn|B-777": "Patient/hb-p1",
	} {
		m, _, _, _ := edAll(t, s, q)
		if !slices.Equal(m, []string{want}) {
			t.Errorf("%s: %v want %v", q, m, want)
		}
	}
	m, _, _, _ := edAll(t, s, "Patient?family=oakley-smith&birthdate=1961-07-04")
	if len(m) != 2 {
		t.Errorf("by name+birthdate: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Patient?name=oak&birthdate=1961-07-04")
	if len(m) != 2 {
		t.Errorf("by partial name: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Patient?given=jon")
	if len(m) != 1 {
		t.Errorf("by given: %v", m)
	}

	// Vitals, sorted, paged.
	wantVS := []string{"ha-moved", oa3, oa4, oa1, "ha-v2", "ha-v5", "ha-v1", "ha-v4", "ha-v0", "ha-v3", "ha-v6"}
	_ = wantVS
	m, inc, total, res := edAll(t, s, "Observation?patient="+paID+"&category=vital-signs&_sort=-date&_count=5")
	t.Logf("vitals A: %v total %d inc %v", m, total, inc)
	if total != len(m) && total != -1 {
		t.Errorf("total %d, entries %d", total, len(m))
	}
	var prev string
	for _, k := range m {
		d := res[k]["effectiveDateTime"].(string)
		t.Logf("  %s %s", k, d)
		_ = prev
	}
	// includes and revincludes
	m, inc, _, _ = edAll(t, s, "Patient?identifier=http://hosp-a.example/mrn|A-123&_revinclude=Observation:subject")
	t.Logf("revinclude: %v %v", m, inc)
	if contains(inc, "Observation/ha-del") {
		t.Errorf("deleted in revinclude")
	}
	if !contains(inc, "Observation/ha-moved") {
		t.Errorf("moved not in revinclude")
	}
	m, inc, _, _ = edAll(t, s, "Patient?_id=wrong-p&_revinclude=Observation:subject")
	if len(inc) != 0 {
		t.Errorf("wrong-p revinclude: %v", inc)
	}
	m, inc, _, _ = edAll(t, s, "Observation?patient=hb-p1&_include=Observation:encounter")
	t.Logf("B obs: %v %v", m, inc)
	if contains(m, "Observation/hb-o2") || len(m) != 2 || !slices.Equal(inc, []string{"Encounter/hb-e1"}) {
		t.Errorf("B obs include: %v %v", m, inc)
	}
	m, _, _, _ = edAll(t, s, "Encounter?patient="+paID+"&status=in-progress")
	if !slices.Equal(m, []string{"Encounter/" + eaID}) {
		t.Errorf("enc in-progress: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Observation?patient="+paID+"&code=http://loinc.org|2345-7&date=ge2024-03-01")
	if !slices.Equal(m, []string{"Observation/" + oa2}) {
		t.Errorf("labs: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Observation?patient=hb-p1&code=http://loinc.org|2345-7&date=ge2024-03-01")
	if !slices.Equal(m, []string{"Observation/hb-o3"}) {
		t.Errorf("labs B: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Observation?subject=Patient/wrong-p")
	if len(m) != 0 {
		t.Errorf("wrong-p obs: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Observation?combo-code-value-quantity=http://loinc.org|8480-6$121|http://unitsofmeasure.org|mm[Hg]")
	if !slices.Equal(m, []string{"Observation/" + oa1}) {
		t.Errorf("corrected value: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Observation?combo-code-value-quantity=http://loinc.org|8480-6$120|http://unitsofmeasure.org|mm[Hg]")
	if len(m) != 0 {
		t.Errorf("old value: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Observation?status=preliminary")
	if len(m) != 0 {
		t.Errorf("preliminary: %v", m)
	}
	for _, p := range []string{paID, "hb-p1", "wrong-p"} {
		m, inc, total, _ := edAll(t, s, "Patient/"+p+"/$everything?_count=3")
		t.Logf("everything %s: %v %v total %d", p, m, inc, total)
		seen := map[string]bool{}
		for _, k := range append(m, inc...) {
			if seen[k] {
				t.Errorf("dup %s", k)
			}
			seen[k] = true
		}
		if total != -1 && total != len(m) {
			t.Errorf("everything total %d vs %d", total, len(m))
		}
		if seen["Observation/ha-del"] || seen["Observation/hb-o2"] {
			t.Errorf("deleted in everything")
		}
		if seen["Observation/ha-moved"] != (p == paID) {
			t.Errorf("moved in %s: %v", p, seen["Observation/ha-moved"])
		}
	}
	h := readJSON(t, s, "Observation/"+oa1+"/_history")
	if n := len(list(h["entry"])); n != 2 {
		t.Errorf("history entries %d", n)
	}
	_ = url.QueryEscape
	edMore(t, s, paID, eaID)
}

func edSortCheck(t *testing.T, what string, ids []string, res map[string]map[string]any, desc bool) {
	t.Helper()
	seen := map[string]bool{}
	for i, k := range ids {
		if seen[k] {
			t.Errorf("%s: duplicate %s", what, k)
		}
		seen[k] = true
		if i == 0 {
			continue
		}
		a, b := edInstant(t, res[ids[i-1]]), edInstant(t, res[k])
		if (desc && a.Before(b)) || (!desc && b.Before(a)) {
			t.Errorf("%s: %s (%v) before %s (%v)", what, ids[i-1], a, k, b)
		}
	}
}

func edInstant(t *testing.T, r map[string]any) time.Time {
	s, _ := r["effectiveDateTime"].(string)
	for _, l := range []string{time.RFC3339, "2006-01-02"} {
		if tm, err := time.Parse(l, s); err == nil {
			return tm
		}
	}
	t.Fatalf("no date %v", r)
	return time.Time{}
}

func edMore(t *testing.T, s *server, paID, eaID string) {
	for _, q := range []string{
		"Observation?patient=" + paID + "&_sort=-date&_count=3",
		"Observation?subject=Patient/" + paID + "&_sort=date&_count=4",
		"Observation?code=http://loinc.org|85354-9&_sort=-date&_count=2",
		"Observation?code=http://loinc.org|85354-9&_sort=date,-_lastUpdated&_count=2",
		"Observation?category=vital-signs&_sort=-date&_count=5",
	} {
		m, _, total, res := edAll(t, s, q)
		t.Logf("%s: %d total %d", q, len(m), total)
		if total != -1 && total != len(m) {
			t.Errorf("%s: total %d, %d entries", q, total, len(m))
		}
		edSortCheck(t, q, m, res, strings.Contains(q, "sort=-"))
		for _, k := range m {
			if k == "Observation/ha-del" || k == "Observation/hb-o2" {
				t.Errorf("%s: deleted %s", q, k)
			}
		}
	}
	m, inc, _, _ := edAll(t, s, "Observation?encounter="+eaID+"&_include=Observation:subject&_include=Observation:encounter")
	t.Logf("by encounter: %v %v", m, inc)
	if len(inc) != 2 {
		t.Errorf("includes %v", inc)
	}
	m, inc, _, _ = edAll(t, s, "Encounter?patient="+paID+"&_revinclude=Observation:encounter")
	t.Logf("enc revinc: %v %v", m, inc)
	if contains(inc, "Observation/ha-del") {
		t.Errorf("deleted revincluded")
	}
	m, _, _, _ = edAll(t, s, "Observation?patient=hb-p1&date=ge2024-03-01T00:00:00Z")
	if len(m) != 2 {
		t.Errorf("B date ge: %v", m)
	}
	m, _, _, _ = edAll(t, s, "Observation?value-quantity=gt150&patient=hb-p1")
	if !slices.Equal(m, []string{"Observation/hb-o3"}) {
		t.Errorf("B vq: %v", m)
	}
	h := readJSON(t, s, "Observation/ha-moved/_history")
	if n := len(list(h["entry"])); n != 2 {
		t.Errorf("moved history entries %d", n)
	}
	h = readJSON(t, s, "Observation/ha-del/_history")
	if n := len(list(h["entry"])); n != 2 {
		t.Errorf("del history entries %d", n)
	}
	if r := do(t, "GET", s.base+"/Observation/ha-del", nil); r.status != 410 {
		t.Errorf("read deleted: %d", r.status)
	}
}

func TestEDImportSpacedConditionalReference(t *testing.T) {
	dir := t.TempDir()
	nd := t.TempDir()
	os.WriteFile(filepath.Join(nd, "Patient.000.ndjson"), []byte(`{"resourceType":"Patient","id":"sp-p1","identifier":[{"system":"http://hosp-b.example/mrn","value":"B-1"}]}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(nd, "Observation.000.ndjson"), []byte(`{"resourceType": "Observation", "id": "sp-o1", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, "subject": {"reference": "Patient?identifier=http://hosp-b.example/mrn|B-1"}}`+"\n"), 0o644)
	code, out, errOut := runImport(t, "--data", dir, nd)
	t.Logf("import: %d %s %s", code, out, errOut)
	s := startServer(t, app.Config{DataDir: dir})
	o := readJSON(t, s, "Observation/sp-o1")
	if ref := obj(o["subject"])["reference"]; ref != "Patient/sp-p1" {
		t.Errorf("subject %v, want Patient/sp-p1", ref)
	}
	m, _, _, _ := edAll(t, s, "Observation?patient=sp-p1")
	if !slices.Equal(m, []string{"Observation/sp-o1"}) {
		t.Errorf("Observation?patient=sp-p1: %v", m)
	}
}

func TestEDImportOverExisting(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, app.Config{DataDir: dir})
	put(t, s, "Patient", "ie-right", []byte(`{"resourceType":"Patient","identifier":[{"system":"http://hosp-b.example/mrn","value":"R-1"}]}`))
	put(t, s, "Patient", "ie-wrong", []byte(`{"resourceType":"Patient","identifier":[{"system":"http://hosp-b.example/mrn","value":"W-1"}]}`))
	put(t, s, "Patient", "ie-gone", []byte(`{"resourceType":"Patient","identifier":[{"system":"http://hosp-b.example/mrn","value":"G-1"}]}`))
	put(t, s, "Patient", "ie-renamed", []byte(`{"resourceType":"Patient","identifier":[{"system":"http://hosp-b.example/mrn","value":"OLD-1"}]}`))
	put(t, s, "Patient", "ie-renamed", []byte(`{"resourceType":"Patient","identifier":[{"system":"http://hosp-b.example/mrn","value":"NEW-1"}]}`))
	do(t, "DELETE", s.base+"/Patient/ie-gone", nil)
	put(t, s, "Patient", "ie-g2", []byte(`{"resourceType":"Patient","identifier":[{"system":"http://hosp-b.example/mrn","value":"G-1"}]}`))
	put(t, s, "Observation", "ie-o1", []byte(edObsLab("ie-o1", "Patient/ie-wrong", "", "2024-03-01T10:00:00Z", 100, "preliminary")))
	put(t, s, "Observation", "ie-o2", []byte(edObsLab("ie-o2", "Patient/ie-right", "", "2024-03-01T10:00:00Z", 100, "final")))
	do(t, "DELETE", s.base+"/Observation/ie-o2", nil)
	s.stop()

	nd := t.TempDir()
	lines := []string{
		edObsLab("ie-o1", "Patient?identifier=http://hosp-b.example/mrn|R-1", "", "2024-03-01T10:00:00Z", 111, "final"),
		edObsLab("ie-o2", "Patient/ie-right", "", "2024-03-01T11:00:00Z", 222, "final"),
		edObsLab("ie-o3", "Patient?identifier=http://hosp-b.example/mrn|G-1", "", "2024-03-01T12:00:00Z", 333, "final"),
		edObsLab("ie-o4", "Patient?identifier=http://hosp-b.example/mrn|NEW-1", "", "2024-03-01T12:00:00Z", 444, "final"),
	}
	os.WriteFile(filepath.Join(nd, "Observation.000.ndjson"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	code, out, errOut := runImport(t, "--data", dir, nd)
	t.Logf("import: %d %s %s", code, out, errOut)
	if code != 0 {
		t.Fatalf("import failed")
	}
	s2 := startServer(t, app.Config{DataDir: dir})
	for q, want := range map[string][]string{
		"Observation?patient=ie-wrong":   nil,
		"Observation?patient=ie-right":   {"Observation/ie-o1", "Observation/ie-o2"},
		"Observation?patient=ie-g2":      {"Observation/ie-o3"},
		"Observation?patient=ie-renamed": {"Observation/ie-o4"},
		"Observation?status=preliminary": nil,
		"Observation?value-quantity=100": nil,
	} {
		m, _, _, _ := edAll(t, s2, q)
		if !slices.Equal(sorted(m), want) {
			t.Errorf("%s: %v, want %v", q, m, want)
		}
	}
	for id, n := range map[string]int{"ie-o1": 2, "ie-o2": 3} {
		h := readJSON(t, s2, "Observation/"+id+"/_history")
		if got := len(list(h["entry"])); got != n {
			t.Errorf("%s history %d entries, want %d", id, got, n)
		}
		o := readJSON(t, s2, "Observation/"+id)
		if v := obj(o["meta"])["versionId"]; v != fmt.Sprint(n) {
			t.Errorf("%s versionId %v want %d", id, v, n)
		}
	}
	m, _, _, _ := edAll(t, s2, "Patient/ie-wrong/$everything")
	if len(m) != 1 {
		t.Errorf("wrong everything %v", m)
	}
}

func TestEDDatesAndTransactions(t *testing.T) {
	s := startServer(t, app.Config{})
	pA := `{"resourceType":"Patient","identifier":[{"system":"http://hosp-a.example/mrn","value":"A-9"}],"name":[{"family":"Dee"}]}`
	tr := mustTransaction(t, s, txEntry{method: "POST", url: "Patient", fullURL: uuidA, resource: pA, ifNoneExist: "identifier=http://hosp-a.example/mrn|A-9"})
	pid := idFrom(t, tr, 0)
	withIdent := func(body, ident string) string {
		return strings.Replace(body, `"status"`, `"identifier":[{"system":"http://hosp-a.example/obs","value":"`+ident+`"}],"status"`, 1)
	}
	tr2 := mustTransaction(t, s,
		txEntry{method: "POST", url: "Patient", fullURL: uuidA, resource: pA, ifNoneExist: "identifier=http://hosp-a.example/mrn|A-9"},
		txEntry{method: "POST", url: "Encounter", fullURL: uuidB, resource: edEnc("", uuidA, "in-progress")},
		txEntry{method: "PUT", url: "Observation?identifier=http://hosp-a.example/obs|x1", resource: withIdent(edObsLab("", uuidA, uuidB, "2024-03", 50, "preliminary"), "x1")},
		txEntry{method: "POST", url: "Observation", resource: strings.Replace(edObsLab("", uuidA, "", "2024-03-01T00:00:00Z", 60, "final"), `"effectiveDateTime":"2024-03-01T00:00:00Z"`, `"effectivePeriod":{"start":"2024-01-01T00:00:00Z"}`, 1)},
	)
	if got := idFrom(t, tr2, 0); got != pid {
		t.Fatalf("conditional create made %s, want %s", got, pid)
	}
	o1 := idFrom(t, tr2, 2)
	op := idFrom(t, tr2, 3)
	o := readJSON(t, s, "Observation/"+o1)
	if ref := obj(o["subject"])["reference"]; ref != "Patient/"+pid {
		t.Errorf("subject %v", ref)
	}
	// Update by conditional PUT in a transaction: corrected and final.
	mustTransaction(t, s,
		txEntry{method: "PUT", url: "Observation?identifier=http://hosp-a.example/obs|x1", resource: withIdent(edObsLab("", "Patient?identifier=http://hosp-a.example/mrn|A-9", "", "2024-03", 55, "final"), "x1")},
	)
	for q, want := range map[string][]string{
		"Observation?patient=" + pid + "&date=ge2024-03-15":                   {o1, op},
		"Observation?patient=" + pid + "&date=lt2023-12-31":                   nil,
		"Observation?patient=" + pid + "&date=le2024-01-02":                   {op},
		"Observation?patient=" + pid + "&date=eq2024-03":                      {o1},
		"Observation?patient=" + pid + "&date=sa2024-02-01":                   {o1},
		"Observation?patient=" + pid + "&value-quantity=55":                   {o1},
		"Observation?patient=" + pid + "&value-quantity=50":                   nil,
		"Observation?patient=" + pid + "&status=final&encounter:missing=true": {o1, op},
		"Observation?identifier=http://hosp-a.example/obs|x1":                 {o1},
	} {
		m, _, _, _ := edAll(t, s, q)
		var w []string
		for _, id := range want {
			w = append(w, "Observation/"+id)
		}
		slices.Sort(w)
		if !slices.Equal(sorted(m), w) {
			t.Errorf("%s: %v, want %v", q, m, w)
		}
	}
	h := readJSON(t, s, "Observation/"+o1+"/_history")
	if n := len(list(h["entry"])); n != 2 {
		t.Errorf("history %d", n)
	}
}

func TestEDProbePeriod(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "pp", []byte(`{"resourceType":"Patient"}`))
	put(t, s, "Observation", "open", []byte(strings.Replace(edObsLab("open", "Patient/pp", "", "x", 60, "final"), `"effectiveDateTime":"x"`, `"effectivePeriod":{"start":"2024-01-01T00:00:00Z"}`, 1)))
	put(t, s, "Observation", "closed", []byte(strings.Replace(edObsLab("closed", "Patient/pp", "", "x", 60, "final"), `"effectiveDateTime":"x"`, `"effectivePeriod":{"start":"2024-01-01T00:00:00Z","end":"2024-12-31T00:00:00Z"}`, 1)))
	put(t, s, "Observation", "dt", []byte(edObsLab("dt", "Patient/pp", "", "2024-01-01T00:00:00Z", 60, "final")))
	for _, v := range []string{"le2024-01-01", "le2024-06-01", "le2024-01-01T00:00:00Z", "lt2024-06-01", "le2025-06-01", "ge2024-06-01", "gt2024-06-01", "ge2023-01-01", "eq2024", "ap2024-06-01", "ne2024-06-01", "eb2024-06-01", "sa2023-06-01"} {
		m, _, _, _ := edAll(t, s, "Observation?patient=pp&date="+v)
		t.Logf("%-25s %v", v, m)
	}
}

func TestEDPagingWhileChanging(t *testing.T) {
	s := startServer(t, app.Config{})
	put(t, s, "Patient", "pc", []byte(`{"resourceType":"Patient"}`))
	put(t, s, "Patient", "pother", []byte(`{"resourceType":"Patient"}`))
	for i := 0; i < 9; i++ {
		id := fmt.Sprintf("pc-o%d", i)
		put(t, s, "Observation", id, []byte(edObsVS(id, "Patient/pc", "", fmt.Sprintf("2024-03-0%dT10:00:00Z", i+1), 120, 80, "final")))
	}
	for _, q := range []string{"Observation?patient=pc&_count=3", "Observation?patient=pc&category=vital-signs&_sort=-date&_count=3"} {
		r := do(t, "GET", s.base+"/"+q, nil)
		var b edPage
		json.Unmarshal(r.body, &b)
		var got []string
		for _, e := range b.Entry {
			got = append(got, e.Resource["id"].(string))
		}
		next := ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		// Between pages: update a page-1 match, move one away, delete one.
		put(t, s, "Observation", got[0], []byte(edObsVS(got[0], "Patient/pc", "", "2024-03-01T10:00:00Z", 125, 85, "final")))
		for n := next; n != ""; {
			r := do(t, "GET", n, nil)
			var b edPage
			json.Unmarshal(r.body, &b)
			n = ""
			for _, l := range b.Link {
				if l.Relation == "next" {
					n = l.URL
				}
			}
			for _, e := range b.Entry {
				if e.Search.Mode == "match" {
					got = append(got, e.Resource["id"].(string))
				}
			}
		}
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Errorf("%s: duplicate %s in %v", q, id, got)
			}
			seen[id] = true
		}
		if len(got) != 9 {
			t.Errorf("%s: %d matches %v", q, len(got), got)
		}
	}
	h := readJSON(t, s, "Observation/_history?_count=4")
	total, _ := h["total"].(float64)
	t.Logf("type history total %v", total)
}
