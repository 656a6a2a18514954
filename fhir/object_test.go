package fhir_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"healthhub/fhir"
)

func TestParseObjectErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", ``, "unexpected end"},
		{"truncated", `{"resourceType":"Patient",`, "malformed JSON"},
		{"array", `[1,2]`, "not a JSON object"},
		{"string", `"x"`, "not a JSON object"},
		{"duplicate", `{"id":"a","id":"b"}`, `duplicate JSON member "id"`},
		{"trailing", `{"a":1}{"b":2}`, "malformed JSON"},
		{"line and column", "{\n  \"a\": tru\n}", "line 2, column"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fhir.ParseObject([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseObject(%q): got %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestStampKeepsEverythingElse(t *testing.T) {
	in := `{
	  "name": [{"given": ["A", null], "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}]}],
	  "resourceType": "Observation",
	  "valueQuantity": {"value": 1.50, "unit": "mg"},
	  "id": "client-chosen",
	  "meta": {"versionId": "99", "profile": ["http://p"], "lastUpdated": "1999-01-01T00:00:00Z", "tag": [{"code": "t"}]},
	  "contained": [{"resourceType": "Patient", "id": "p1"}]
	}`
	o, err := fhir.ParseObject([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 11, 24, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	out, err := fhir.Stamp(o, "new-id", 3, when)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Observation","id":"new-id","meta":{"versionId":"3","lastUpdated":"2026-11-24T09:00:00.123Z","profile":["http://p"],"tag":[{"code":"t"}]},` +
		`"name":[{"given":["A",null],"_given":[null,{"extension":[{"url":"u","valueString":"x"}]}]}],"valueQuantity":{"value":1.50,"unit":"mg"},"contained":[{"resourceType":"Patient","id":"p1"}]}`
	if string(out) != want {
		t.Errorf("Stamp:\n got %s\nwant %s", out, want)
	}
	// Stamping again (bbolt's Batch may rerun a transaction) gives the same.
	again, _ := fhir.Stamp(o, "new-id", 3, when)
	if string(again) != want {
		t.Errorf("second Stamp differs:\n got %s", again)
	}
}

func TestStampRejectsNonObjectMeta(t *testing.T) {
	o, err := fhir.ParseObject([]byte(`{"resourceType":"Patient","meta":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fhir.Stamp(o, "a", 1, time.Now()); err == nil {
		t.Error("Stamp with meta a string: got nil error")
	}
}

func TestParseVersionETag(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{`W/"3"`, 3, true}, {`"3"`, 3, true}, {`3`, 3, true}, {`w/"12"`, 12, true},
		{`W/"0"`, 0, false}, {`W/"x"`, 0, false}, {``, 0, false}, {`W/"-1"`, 0, false}, {`W/"3`, 0, false},
	}
	for _, tt := range tests {
		got, ok := fhir.ParseVersionETag(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseVersionETag(%q): got %d,%v, want %d,%v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "A-1.b", strings.Repeat("x", 64), "123"} {
		if !fhir.ValidID(id) {
			t.Errorf("ValidID(%q) = false, want true", id)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", 65), "a/b", "a b", "ä", "a_b"} {
		if fhir.ValidID(id) {
			t.Errorf("ValidID(%q) = true, want false", id)
		}
	}
}

// FuzzParseObject: whatever parses must write back to JSON that means the
// same, and stamping must keep every member but id and meta.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{`{"resourceType":"Patient","id":"a"}`, `{"a":[1,2,{"b":null}],"meta":{"tag":[]}}`, `{}`, `{"a":1.50e3}`, `[]`, `{"a":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := fhir.ParseObject(data)
		if err != nil {
			return
		}
		var before, after map[string]any
		if err := json.Unmarshal(data, &before); err != nil {
			t.Fatalf("ParseObject accepted what encoding/json rejects: %v", err)
		}
		if err := json.Unmarshal(o.Bytes(), &after); err != nil {
			t.Fatalf("Bytes wrote invalid JSON: %v", err)
		}
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("round trip changed the object:\n%v\n%v", before, after)
		}
		if _, isObj := before["meta"].(map[string]any); !isObj && before["meta"] != nil {
			return
		}
		out, err := fhir.Stamp(o, "x", 1, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		var stamped map[string]any
		if err := json.Unmarshal(out, &stamped); err != nil {
			t.Fatalf("Stamp wrote invalid JSON: %v", err)
		}
		for k, v := range before {
			if k != "id" && k != "meta" && !reflect.DeepEqual(v, stamped[k]) {
				t.Fatalf("Stamp changed member %q", k)
			}
		}
	})
}
