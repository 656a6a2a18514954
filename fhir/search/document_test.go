package search_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"healthhub/fhir/search"
)

// decodeStd is the reference: json.Decoder with UseNumber, one value, and
// nothing but white space after it (as json.Valid).
func decodeStd(b []byte) (any, bool) {
	if !json.Valid(b) {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

// sameAsStd checks that ParseDocument accepts exactly the JSON objects
// encoding/json accepts and decodes them to the same values, and that
// Extract, which decodes only the members search reads, accepts the same.
func sameAsStd(t *testing.T, r *search.Registry, in []byte) {
	t.Helper()
	want, ok := decodeStd(in)
	_, isObject := want.(map[string]any)
	doc, err := search.ParseDocument(in)
	if (err == nil) != (ok && isObject) {
		t.Fatalf("%q: ParseDocument error %v, encoding/json valid %v object %v", in, err, ok, isObject)
	}
	typ := "Patient"
	if err == nil {
		typ = doc.ResourceType()
	}
	if _, xerr := r.Extract(typ, in); (xerr == nil) != (err == nil) {
		t.Fatalf("%q: ParseDocument error %v, Extract(%s) error %v", in, err, typ, xerr)
	}
	if err != nil {
		return
	}
	got, ok := decodeStd([]byte(doc.Root().JSON()))
	if !ok {
		t.Fatalf("%q: re-encoded as invalid JSON %q", in, doc.Root().JSON())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decoded as %#v, encoding/json says %#v", in, got, want)
	}
}

var documentSeeds = []string{
	`{}`,
	` {"a" : [1, -0.5e+3, 2E-2, true, false, null, "x"], "b": {"c": {}}} `,
	`{"s":"\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t"}`,
	`{"lone":"\ud800x","pair":"\ud83d\ude00","bad pair":"\ud83d\u0041"}`,
	"{\"utf8\":\"\xff\xfe ok \xc3\xa9\"}",
	`{"dup":1,"dup":2}`,
	`{"a":01}`,
	`{"a":1.}`,
	`{"a":.5}`,
	`{"a":-}`,
	`{"a":1e}`,
	`{"a":tru}`,
	`{"a":"x`,
	"{\"a\":\"tab\there\"}",
	`{"a":1,}`,
	`{"a" 1}`,
	`[1]`,
	`"x"`,
	`{} {}`,
	`{}x`,
	"\ufeff{}",
	`{"a":"\x"}`,
	`{"a":"\u12"}`,
	`{"a":[[[[]]]]}`,
	`{"resourceType":"Patient","photo":[{"data":"\u00zz"}]}`,
	`{"resourceType":"Patient","photo":[{"data":"\ud800\u"}]}`,
	`{"resourceType":"Patient","photo":[{"data":"ok","x":[1,2,{"y":nul}]}]}`,
	"{\"resourceType\":\"Patient\",\"photo\":\"\x01\"}",
}

func TestParseDocumentMatchesEncodingJSON(t *testing.T) {
	r := mustLoad(t)
	for _, s := range documentSeeds {
		sameAsStd(t, r, []byte(s))
	}
	deep := strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001)
	if _, err := search.ParseDocument([]byte(deep)); err == nil {
		t.Error("10001 nested objects: accepted, want an error like encoding/json's")
	}
	ok := strings.Repeat(`{"a":`, 9999) + "1" + strings.Repeat("}", 9999)
	sameAsStd(t, r, []byte(ok))
}

func TestDocumentResourceType(t *testing.T) {
	for in, want := range map[string]string{
		`{"resourceType":"Patient"}`: "Patient",
		`{"resourceType":1}`:         "",
		`{}`:                         "",
	} {
		d, err := search.ParseDocument([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := d.ResourceType(); got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}

func FuzzParseDocument(f *testing.F) {
	for _, s := range documentSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(patientJSON))
	f.Add([]byte(observationJSON))
	f.Add([]byte(`{"resourceType":"Patient","text":{"div":"\u00e9\ud800"},"extension":[{"url":"x","valueString":"\"\x"}]}`))
	f.Add([]byte(`{"resourceType":"Patient","_given":[null,{"extension":[1e5,"\u00"]}]}`))
	r := mustLoad(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		sameAsStd(t, r, in)
	})
}
