package search_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"healthhub/fhir"
	"healthhub/fhir/search"
)

// sharedData is ../shared/data seen from this package's directory.
const sharedData = "../../../shared/data"

type sample struct {
	typ, origin string
	raw         []byte
}

// syntheaSamples reads the resources of SearchTypes from synthea-10 (NDJSON)
// and from the entries of the synthea-bundles-10 transaction Bundles, whose
// urn:uuid: references are rewritten to Type/id as a transaction does.
func syntheaSamples(t testing.TB) []sample {
	t.Helper()
	dir := filepath.Join(sharedData, "synthea-10")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no Synthea data (%v): ../shared is absent", err)
	}
	var out []sample
	for _, typ := range search.SearchTypes {
		files, _ := filepath.Glob(filepath.Join(dir, typ+".*.ndjson"))
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 16<<20)
			for n := 1; sc.Scan(); n++ {
				if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
					out = append(out, sample{typ, filepath.Base(name) + ":" + strconv.Itoa(n), bytes.Clone(line)})
				}
			}
			f.Close()
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	bundles, _ := filepath.Glob(filepath.Join(sharedData, "synthea-bundles-10", "*.json"))
	for _, name := range bundles {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			ResourceType string `json:"resourceType"`
			Entry        []struct {
				FullURL  string         `json:"fullUrl"`
				Resource map[string]any `json:"resource"`
			} `json:"entry"`
		}
		if json.Unmarshal(raw, &b) != nil || b.ResourceType != "Bundle" {
			continue // manifest.json
		}
		local := map[string]string{}
		for _, e := range b.Entry {
			local[e.FullURL] = e.Resource["resourceType"].(string) + "/" + e.Resource["id"].(string)
		}
		for i, e := range b.Entry {
			typ := e.Resource["resourceType"].(string)
			if !slices.Contains(search.SearchTypes, typ) {
				continue
			}
			rewriteRefs(e.Resource, local)
			js, err := json.Marshal(e.Resource)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sample{typ, filepath.Base(name) + " entry " + strconv.Itoa(i), js})
		}
	}
	return out
}

func rewriteRefs(v any, local map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "reference" && local[s] != "" {
				v[k] = local[s]
				continue
			}
			rewriteRefs(x, local)
		}
	case []any:
		for _, x := range v {
			rewriteRefs(x, local)
		}
	}
}

// valueIndex is the extracted values of one resource, by parameter.
type valueIndex map[string][]search.Value

func (ix valueIndex) has(param string, v search.Value) bool {
	for _, w := range ix[param] {
		if sameValue(w, v) {
			return true
		}
	}
	return false
}

func sameValue(a, b search.Value) bool { return bytes.Equal(a.Key(), b.Key()) && a.Type() == b.Type() }

// Small readers over encoding/json's view of the resource: the independent
// side of the comparison.
func jsonObj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func jsonArr(v any) []any {
	if a, ok := v.([]any); ok {
		return a
	}
	if v == nil {
		return nil
	}
	return []any{v}
}
func jsonStr(v any) string { x, _ := v.(string); return x }

func TestExtractSynthea(t *testing.T) {
	r := mustLoad(t)
	samples := syntheaSamples(t)
	counts := map[string]int{}
	checks := 0
	check := func(sm sample, ok bool, what string, args ...any) {
		t.Helper()
		checks++
		if !ok {
			t.Errorf("%s %s: "+what, append([]any{sm.typ, sm.origin}, args...)...)
		}
	}
	for _, sm := range samples {
		counts[sm.typ]++
		entries, err := r.Extract(sm.typ, sm.raw)
		if err != nil {
			t.Fatalf("%s %s: %v", sm.typ, sm.origin, err)
		}
		checkEntries(t, r, sm.typ, entries)
		checkPruning(t, r, sm.typ, sm.raw, entries)
		ix := valueIndex{}
		for _, e := range entries {
			ix[e.Param] = append(ix[e.Param], e.Value)
		}
		d := json.NewDecoder(bytes.NewReader(sm.raw))
		d.UseNumber()
		var res map[string]any
		if err := d.Decode(&res); err != nil {
			t.Fatal(err)
		}
		check(sm, ix.has("_id", tokenV("", jsonStr(res["id"]))), "_id %v missing", res["id"])
		for _, id := range jsonArr(res["identifier"]) {
			id := jsonObj(id)
			found := false
			for _, v := range ix["identifier"] {
				tv := v.(search.TokenValue)
				found = found || (tv.System == jsonStr(id["system"]) && tv.Code == jsonStr(id["value"]))
			}
			check(sm, found, "identifier %s|%s missing", id["system"], id["value"])
		}
		for _, p := range jsonArr(jsonObj(res["meta"])["profile"]) {
			check(sm, ix.has("_profile", search.URIValue{URI: jsonStr(p)}), "_profile %s missing", p)
		}
		switch sm.typ {
		case "Patient", "Practitioner":
			if bd := jsonStr(res["birthDate"]); bd != "" {
				want, _ := fhir.ParseDateTime(bd)
				check(sm, len(ix["birthdate"]) == 1 && ix["birthdate"][0] == search.Value(search.DateValue{DateRange: want}),
					"birthdate %v, want %s", ix["birthdate"], bd)
			}
			if g := jsonStr(res["gender"]); g != "" {
				check(sm, len(ix["gender"]) == 1 && ix.has("gender", tokenV("http://hl7.org/fhir/administrative-gender", g)), "gender %v, want %s", ix["gender"], g)
			}
			for _, n := range jsonArr(res["name"]) {
				n := jsonObj(n)
				if f := jsonStr(n["family"]); f != "" {
					check(sm, ix.has("family", search.StringValue{Normalized: strings.ToLower(f), Exact: f}), "family %s missing", f)
					check(sm, ix.has("name", search.StringValue{Normalized: strings.ToLower(f), Exact: f}), "name %s missing", f)
				}
				for _, g := range jsonArr(n["given"]) {
					check(sm, ix.has("given", search.NewStringValue(jsonStr(g))), "given %s missing", g)
				}
			}
			for _, cp := range jsonArr(res["telecom"]) {
				cp := jsonObj(cp)
				check(sm, ix.has("telecom", tokenV(jsonStr(cp["system"]), jsonStr(cp["value"]))), "telecom %v missing", cp)
				if jsonStr(cp["system"]) == "email" {
					check(sm, ix.has("email", tokenV("email", jsonStr(cp["value"]))), "email %v missing", cp)
				}
			}
			for _, a := range jsonArr(res["address"]) {
				if c := jsonStr(jsonObj(a)["city"]); c != "" {
					check(sm, ix.has("address-city", search.NewStringValue(c)), "address-city %s missing", c)
				}
			}
			if sm.typ == "Patient" {
				_, dead := res["deceasedDateTime"]
				dead = dead || res["deceasedBoolean"] == true
				check(sm, len(ix["deceased"]) == 1 && ix.has("deceased", tokenV("", map[bool]string{true: "true", false: "false"}[dead])),
					"deceased %v, want %v", ix["deceased"], dead)
			}
		case "Organization":
			if n := jsonStr(res["name"]); n != "" {
				check(sm, ix.has("name", search.NewStringValue(n)), "name %s missing", n)
			}
		case "Encounter":
			if p := jsonObj(res["period"]); p != nil {
				start, _ := fhir.ParseDateTime(jsonStr(p["start"]))
				end, _ := fhir.ParseDateTime(jsonStr(p["end"]))
				want := search.DateValue{DateRange: fhir.DateRange{Start: start.Start, End: end.End}}
				check(sm, len(ix["date"]) == 1 && ix["date"][0] == search.Value(want), "date %v, want %v", ix["date"], want)
			}
			c := jsonObj(res["class"])
			check(sm, ix.has("class", tokenV(jsonStr(c["system"]), jsonStr(c["code"]))), "class %v missing", c)
			check(sm, ix.has("status", tokenV("http://hl7.org/fhir/encounter-status", jsonStr(res["status"]))), "status %v missing", res["status"])
			for _, ty := range jsonArr(res["type"]) {
				for _, cd := range jsonArr(jsonObj(ty)["coding"]) {
					check(sm, ix.has("type", tokenV(jsonStr(jsonObj(cd)["system"]), jsonStr(jsonObj(cd)["code"]))), "type %v missing", cd)
				}
			}
			checkSubject(t, sm, ix, res, check)
		case "Observation":
			for _, cd := range jsonArr(jsonObj(res["code"])["coding"]) {
				check(sm, ix.has("code", tokenV(jsonStr(jsonObj(cd)["system"]), jsonStr(jsonObj(cd)["code"]))), "code %v missing", cd)
			}
			if q := jsonObj(res["valueQuantity"]); q != nil {
				want := fhir.MustDecimal(string(q["value"].(json.Number)))
				vq := ix["value-quantity"]
				check(sm, len(vq) == 1 && vq[0].(search.QuantityValue).Value.Cmp(want) == 0 && vq[0].(search.QuantityValue).Unit == jsonStr(q["unit"]),
					"value-quantity %v, want %v %s", vq, want, q["unit"])
				check(sm, len(ix["code-value-quantity"]) == len(jsonArr(jsonObj(res["code"])["coding"])), "code-value-quantity %v", ix["code-value-quantity"])
			}
			if dt := jsonStr(res["effectiveDateTime"]); dt != "" {
				want, _ := fhir.ParseDateTime(dt)
				check(sm, len(ix["date"]) == 1 && ix["date"][0] == search.Value(search.DateValue{DateRange: want}), "date %v, want %s", ix["date"], dt)
			}
			tuples := 0
			for _, c := range jsonArr(res["component"]) {
				c := jsonObj(c)
				if q := jsonObj(c["valueQuantity"]); q != nil {
					tuples += len(jsonArr(jsonObj(c["code"])["coding"]))
					check(sm, ix.has("component-value-quantity", search.QuantityValue{Value: fhir.MustDecimal(string(q["value"].(json.Number)))}),
						"component-value-quantity %v missing", q["value"])
				}
			}
			check(sm, len(ix["component-code-value-quantity"]) == tuples, "component-code-value-quantity: %d tuples, want %d",
				len(ix["component-code-value-quantity"]), tuples)
			checkSubject(t, sm, ix, res, check)
		}
	}
	if len(samples) > 0 && counts["Observation"] == 0 {
		t.Log("no Observations in the samples")
	}
	t.Logf("extracted %v resources; %d spot checks", counts, checks)
}

// checkSubject: subject is a reference, and patient holds it when it points
// at a Patient.
func checkSubject(t *testing.T, sm sample, ix valueIndex, res map[string]any, check func(sample, bool, string, ...any)) {
	t.Helper()
	ref := jsonStr(jsonObj(res["subject"])["reference"])
	typ, id, _ := strings.Cut(ref, "/")
	if ref == "" || id == "" {
		return
	}
	want := search.ReferenceValue{ResourceType: typ, ID: id}
	check(sm, ix.has("subject", want), "subject %s missing", ref)
	check(sm, ix.has("patient", want) == (typ == "Patient"), "patient of subject %s: %v", ref, ix["patient"])
}

// checkPruning: Extract, which decodes only the members search reads, finds
// what ExtractDocument finds over the whole decoded resource.
func checkPruning(t *testing.T, r *search.Registry, typ string, raw []byte, entries []search.Entry) {
	t.Helper()
	doc, err := search.ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	full, err := r.ExtractDocument(typ, doc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(entries, full) {
		t.Errorf("%s %.80s: Extract found %d entries, ExtractDocument %d", typ, raw, len(entries), len(full))
	}
	checkStored(t, r, typ, raw, entries)
}

// checkStored: ExtractStored finds exactly Extract's entries of the
// parameters the index keeps.
func checkStored(t *testing.T, r *search.Registry, typ string, raw []byte, entries []search.Entry) {
	t.Helper()
	var want []search.Entry
	for _, e := range entries {
		if p, ok := r.Lookup(typ, e.Param); ok && p.Stored() {
			want = append(want, e)
		}
	}
	got, err := r.ExtractStored(typ, raw)
	if err != nil {
		t.Fatal(err)
	}
	if (len(got) > 0 || len(want) > 0) && !reflect.DeepEqual(got, want) {
		t.Errorf("%s %.80s: ExtractStored found %d entries, Extract %d of stored parameters", typ, raw, len(got), len(want))
	}
}

// FuzzExtract: Extract never panics, whatever the JSON, every value it
// returns makes keys, and it finds what ExtractDocument finds.
func FuzzExtract(f *testing.F) {
	f.Add([]byte(patientJSON))
	f.Add([]byte(observationJSON))
	f.Add([]byte(`{"resourceType":"Encounter","period":{"start":"2024","end":"x"},"subject":{"reference":"Patient/1/_history/"}}`))
	f.Add([]byte(`{"resourceType":"Appointment","participant":[{"actor":{"reference":"#x"}},null,{"actor":[]}]}`))
	f.Add([]byte(`{"resourceType":"Observation","valueQuantity":{"value":1e99999},"component":[{"code":1,"valueSampledData":{"origin":"x"}}]}`))
	f.Add([]byte(`{"resourceType":"Patient","name":{"given":[1,true,{"a":"b"}]},"deceasedBoolean":"false","telecom":"x"}`))
	if dir := filepath.Join(sharedData, "synthea-10"); dirExists(dir) {
		for _, typ := range []string{"Patient", "Encounter", "Organization"} {
			raw, _ := os.ReadFile(filepath.Join(dir, typ+".000.ndjson"))
			if line, _, _ := bytes.Cut(raw, []byte("\n")); len(line) > 0 {
				f.Add(line)
			}
		}
	}
	r, err := search.Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		doc, err := search.ParseDocument(in)
		typ := ""
		if err == nil {
			typ = doc.ResourceType()
		}
		for _, ty := range append([]string{typ}, search.SearchTypes...) {
			entries, err := r.Extract(ty, in)
			if err != nil {
				continue
			}
			checkPruning(t, r, ty, in, entries)
			for _, e := range entries {
				e.Value.Key()
				if len(e.Value.Keys()) == 0 {
					t.Errorf("%s?%s: %+v makes no key", ty, e.Param, e.Value)
				}
			}
		}
	})
}

func dirExists(dir string) bool { st, err := os.Stat(dir); return err == nil && st.IsDir() }

func benchResource(b *testing.B, typ string, pick func([]byte) bool) []byte {
	b.Helper()
	for _, sm := range syntheaSamples(b) {
		if sm.typ == typ && pick(sm.raw) {
			return sm.raw
		}
	}
	b.Skipf("no %s sample", typ)
	return nil
}

func benchmarkExtract(b *testing.B, typ string, raw []byte) {
	r, err := search.Load()
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Compile(); err != nil {
		b.Fatal(err)
	}
	entries, err := r.Extract(typ, raw)
	if err != nil {
		b.Fatal(err)
	}
	keys := 0
	for _, e := range entries {
		keys += len(e.Value.Keys())
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract(typ, raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(entries)), "entries")
	b.ReportMetric(float64(keys), "keys")
}

// A Synthea Patient (3.5 kB, five identifiers, two names).
func BenchmarkExtractPatient(b *testing.B) {
	benchmarkExtract(b, "Patient", benchResource(b, "Patient", func([]byte) bool { return true }))
}

// A Synthea blood-pressure Observation: two components, so every
// combo-/component- parameter has values.
func BenchmarkExtractObservation(b *testing.B) {
	benchmarkExtract(b, "Observation", benchResource(b, "Observation", func(raw []byte) bool { return bytes.Contains(raw, []byte(`"component"`)) }))
}

// Extract plus every key of every entry: the whole cost an index write pays
// before touching the store.
func BenchmarkExtractPatientKeys(b *testing.B) {
	raw := benchResource(b, "Patient", func([]byte) bool { return true })
	r := mustLoad(b)
	b.ReportAllocs()
	for b.Loop() {
		entries, err := r.Extract("Patient", raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			e.Value.Keys()
		}
	}
}
