package conformance_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// Round trips (DESIGN.md rule 1): what is written reads back identical,
// except meta.versionId and meta.lastUpdated.

const (
	syntheaDir  = "../../shared/data/synthea-10"
	officialDir = "../../shared/data/fhir-test-cases"
)

// serverMeta matches what the server stamps into meta (always first in it).
var serverMeta = regexp.MustCompile(`"versionId":"[0-9]+","lastUpdated":"[^"]*",?`)

// withoutServerMeta removes the stamped meta members from a stored body,
// and meta itself when they were all of it.
func withoutServerMeta(b []byte) []byte {
	b = serverMeta.ReplaceAll(b, nil)
	return bytes.Replace(b, []byte(`"meta":{},`), nil, 1)
}

// sameBytes checks that got is, byte for byte, the compacted sent body
// with the server's meta stamped in: member order, decimal spelling and
// string escapes kept.
func sameBytes(sent, got []byte) error {
	var want bytes.Buffer
	if err := json.Compact(&want, sent); err != nil {
		return err
	}
	if g := withoutServerMeta(got); !bytes.Equal(g, want.Bytes()) {
		return fmt.Errorf("stored bytes differ from the sent ones (server meta removed):\n sent: %s\n  got: %s", want.Bytes(), g)
	}
	return nil
}

// roundTrip PUTs body at id (or POSTs it when id is empty), reads it back,
// and compares each answer with what was sent. It only returns errors, so
// that it can run in any goroutine.
func roundTrip(s *server, typ, id string, body []byte, byteExact bool) error {
	method, url := "PUT", s.base+"/"+typ+"/"+id
	if id == "" {
		method, url = "POST", s.base+"/"+typ
	}
	w, err := send(method, url, body)
	if err != nil {
		return err
	}
	if w.status != http.StatusCreated && w.status != http.StatusOK {
		return fmt.Errorf("%s: status %d: %s", method, w.status, w.body)
	}
	m, err := decodeNumbers(w.body)
	if err != nil {
		return fmt.Errorf("%s: %v", method, err)
	}
	newID, _ := m["id"].(string)
	vid, _ := m["meta"].(map[string]any)["versionId"].(string)
	r, err := send("GET", s.base+"/"+typ+"/"+newID, nil)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return fmt.Errorf("read: status %d: %s", r.status, r.body)
	}
	v, err := send("GET", s.base+"/"+typ+"/"+newID+"/_history/"+vid, nil)
	if err != nil {
		return err
	}
	if v.status != http.StatusOK {
		return fmt.Errorf("vread: status %d: %s", v.status, v.body)
	}
	// The write's answer is what was sent; read and vread give the same
	// bytes as the write's answer.
	if err := resourceDiff(body, w.body, id == ""); err != nil {
		return fmt.Errorf("%s: %v", method, err)
	}
	if byteExact {
		if err := sameBytes(body, w.body); err != nil {
			return fmt.Errorf("%s: %v", method, err)
		}
	}
	if !bytes.Equal(r.body, w.body) {
		return fmt.Errorf("read differs from the %s answer:\n%s\n%s", method, r.body, w.body)
	}
	if !bytes.Equal(v.body, w.body) {
		return fmt.Errorf("vread differs from the %s answer:\n%s\n%s", method, v.body, w.body)
	}
	return nil
}

// TestRoundTripExtensions: contained resources, primitive extensions
// (_birthDate, _given with nulls aligned), modifierExtension, extensions
// everywhere, narrative, escapes and decimals like 1.50 and 100.000.
func TestRoundTripExtensions(t *testing.T) {
	s := startServer(t, app.Config{})
	files, err := filepath.Glob(filepath.Join("..", "testdata", "roundtrip", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in ../testdata/roundtrip: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m := decodeJSON(t, body)
			typ, _ := m["resourceType"].(string)
			id, _ := m["id"].(string)
			// update-as-create, byte for byte; then as a new version; then
			// as a create under a new id.
			if err := roundTrip(s, typ, id, body, true); err != nil {
				t.Errorf("PUT (create): %v", err)
			}
			if err := roundTrip(s, typ, id, body, true); err != nil {
				t.Errorf("PUT (update): %v", err)
			}
			if err := roundTrip(s, typ, "", body, false); err != nil {
				t.Errorf("POST: %v", err)
			}
			// The history Bundle carries the versions unchanged too (as
			// JSON: the Bundle's encoder may escape <, > and &).
			for _, e := range historyEntries(t, s.base+"/"+typ+"/"+id+"/_history") {
				if err := resourceDiff(body, e.Resource, false); err != nil {
					t.Errorf("history entry %s: %v", e.key(), err)
				}
			}
		})
	}

	// The spellings that a float64 round trip would lose, and the parts a
	// typed model would drop, are there byte for byte.
	for _, c := range []struct {
		path  string
		wants []string
	}{
		{"/Observation/rt-decimals", []string{
			`"valueQuantity":{"value":1.50,`, `"valueDecimal":100.000}`, `"low":{"value":100.000,`,
			`"value":1.0e2`, `"value":0.000000000000000000001}`,
			`"value":12345678901234567890.12345678901234567890}`, `"value":-0.0}`,
		}},
		{"/Patient/rt-patient", []string{
			`"valueDecimal":0.10}`,
			`"given":["Peter",null,"James"],"_given":[null,{"extension":`,
			`"_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime"`,
			`"contained":[{"resourceType":"Organization","id":"org1"`,
			`"modifierExtension":[{"url":"http://example.org/ext/do-not-merge","valueBoolean":true}]`,
			`"modifierExtension":[{"url":"http://example.org/ext/contact-modifier"`,
			`"_family":{"extension":`,
			`"_active":{"id":"a1"}`,
			`Contained Clinic \u00e9\u4e2d\ud83d\ude00 <&>`,
			`"meta":{"versionId":"2","lastUpdated":"`, `","profile":["http://hl7.org/fhir/StructureDefinition/Patient"],"tag":`,
		}},
	} {
		r := do(t, "GET", s.base+c.path, nil)
		for _, w := range c.wants {
			if !bytes.Contains(r.body, []byte(w)) {
				t.Errorf("GET %s: body lacks %s:\n%s", c.path, w, r.body)
			}
		}
	}
}

// ndjsonResources reads the resources of one NDJSON file.
func ndjsonResources(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			out = append(out, append([]byte(nil), line...))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// roundTripAll round-trips bodies on 16 connections at once (writes
// share group commits) and reports
// the failures (the first few in full).
func roundTripAll(t *testing.T, s *server, bodies [][]byte, names []string, byteExact bool) {
	t.Helper()
	type job struct {
		i    int
		typ  string
		id   string
		body []byte
	}
	jobs := make(chan job)
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := roundTrip(s, j.typ, j.id, j.body, byteExact); err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s (%s/%s): %v", names[j.i], j.typ, j.id, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i, b := range bodies {
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			t.Errorf("%s: %v", names[i], err)
			continue
		}
		jobs <- job{i, head.ResourceType, head.ID, b}
	}
	close(jobs)
	wg.Wait()
	for i, f := range failed {
		if i == 5 {
			t.Errorf("... and %d more", len(failed)-5)
			break
		}
		t.Error(f)
	}
}

// TestRoundTripSynthea: every Synthea resource of the five in-depth types
// reads back identical, byte for byte apart from the stamped meta.
func TestRoundTripSynthea(t *testing.T) {
	if _, err := os.Stat(syntheaDir); errors.Is(err, os.ErrNotExist) {
		t.Skipf("Synthea data not found at %s (the shared data directory is not checked out)", syntheaDir)
	}
	s := startServer(t, app.Config{})
	var bodies [][]byte
	var names []string
	for _, typ := range indepthTypes {
		files, _ := filepath.Glob(filepath.Join(syntheaDir, typ+".*.ndjson"))
		for _, f := range files {
			for i, b := range ndjsonResources(t, f) {
				bodies = append(bodies, b)
				names = append(names, fmt.Sprintf("%s line %d", filepath.Base(f), i+1))
			}
		}
	}
	if len(bodies) < 1000 {
		t.Fatalf("found %d Synthea resources of %v, want the export's 1,271", len(bodies), indepthTypes)
	}
	before := len(historyEntries(t, s.base+"/_history?_count=1000"))
	roundTripAll(t, s, bodies, names, true)
	after := len(historyEntries(t, s.base+"/_history?_count=1000"))
	if after-before != len(bodies) {
		t.Errorf("system history grew by %d, want %d (one version per resource)", after-before, len(bodies))
	}
	t.Logf("%d Synthea resources round-tripped", len(bodies))
}

// TestRoundTripOfficialExamples: HL7's valid R4 cases (not Bundles) read
// back identical; the invalid ones are refused and not stored.
func TestRoundTripOfficialExamples(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(officialDir, "manifest.json"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("official test cases not found at %s (the shared data directory is not checked out)", officialDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Cases []struct {
			File, ResourceType, Expected, Reason string
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, app.Config{})
	valid, invalid := 0, 0
	for _, c := range manifest.Cases {
		if c.ResourceType == "Bundle" {
			continue
		}
		t.Run(c.File, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(officialDir, c.File))
			if err != nil {
				t.Fatal(err)
			}
			switch c.Expected {
			case "valid":
				valid++
				var head struct{ ID string }
				if err := json.Unmarshal(body, &head); err != nil {
					t.Fatal(err)
				}
				// With an id: update-as-create at it; without: create.
				if err := roundTrip(s, c.ResourceType, head.ID, body, false); err != nil {
					t.Error(err)
				}
			case "invalid":
				invalid++
				before := len(historyEntries(t, s.base+"/_history?_count=1000"))
				// With an id: an update, which keeps it (a create ignores
				// the body's id, however bad: R4 http.html#create).
				var head struct{ ID string }
				_ = json.Unmarshal(body, &head)
				method, path := "POST", s.base+"/"+c.ResourceType
				if head.ID != "" {
					method, path = "PUT", path+"/"+url.PathEscape(head.ID)
				}
				r := do(t, method, path, body)
				if r.status != http.StatusBadRequest && r.status != http.StatusUnprocessableEntity {
					t.Errorf("invalid case (%s): status %d, want 400 or 422: %s", c.Reason, r.status, r.body)
				} else if _, err := outcomeIssues(r); err != nil {
					t.Error(err)
				}
				if after := len(historyEntries(t, s.base+"/_history?_count=1000")); after != before {
					t.Errorf("invalid case was stored")
				}
			default:
				t.Fatalf("manifest: expected %q", c.Expected)
			}
		})
	}
	if valid == 0 {
		t.Error("the manifest lists no valid non-Bundle case")
	}
	t.Logf("%d valid cases round-tripped, %d invalid ones refused", valid, invalid)
}
