package conformance_test

import (
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
)

// TestMalformedJSONIs400: parseBody promises "Malformed JSON and a
// wrong resourceType are 400 (Invalid); a well-formed resource that breaks
// the R4 rules is 422", and TestErrors pins a duplicate member at the top
// level to 400. The same faults one level down (and a lone surrogate, and
// nesting past the decoder's bound) are found only by the validator's
// stricter decoder, whose "malformed JSON" issue validateBody turns into 422.
func TestMalformedJSONIs400(t *testing.T) {
	s := startServer(t, app.Config{})
	deep := `{"resourceType":"Patient","extension":[` + strings.Repeat(`{"url":"http://e.org","extension":[`, 130) +
		`{"url":"http://e.org","valueString":"x"}` + strings.Repeat(`]}`, 130) + `]}`
	cases := []errorCase{
		{name: "duplicate member, top level (as in TestErrors)", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","active":true,"active":false}`, status: 400, code: "structure"},
		{name: "duplicate member, nested", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[{"family":"a","family":"b"}]}`, status: 400, code: "structure"},
		{name: "lone surrogate escape", method: "POST", path: "/Patient", body: `{"resourceType":"Patient","name":[{"text":"\ud800"}]}`, status: 400, code: "structure"},
		{name: "nested too deep", method: "POST", path: "/Patient", body: deep, status: 400, code: "structure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, s.base+c.path, []byte(c.body))
			checkOutcome(t, c.name, r, c.status, c.code, c.expr)
		})
	}
}

// TestChoiceTwiceNotStored: a body with two values for one choice
// element (Patient.deceased[x], 0..1) is invalid R4 and must not be stored.
func TestChoiceTwiceNotStored(t *testing.T) {
	s := startServer(t, app.Config{})
	before := len(historyEntries(t, s.base+"/_history"))
	r := do(t, "POST", s.base+"/Patient", []byte(`{"resourceType":"Patient","deceasedBoolean":false,"deceasedDateTime":"2020-01-01"}`))
	checkOutcome(t, "POST Patient with deceasedBoolean and deceasedDateTime", r, 422, "", "")
	if after := len(historyEntries(t, s.base+"/_history")); after != before {
		t.Errorf("the invalid Patient was stored: history grew by %d", after-before)
	}
}

// TestLeapSecondIndexed: the validator accepts a leap second
// ("2016-12-31T23:59:60Z" matches the R4 dateTime regex, ([0-5][0-9]|60)),
// and the resource is stored, but fhir.ParseDateTime refuses seconds over
// 59, so the search index silently leaves the value out: the Observation is
// not found by its date, and a Period ending on a leap second is indexed as
// open-ended.
func TestLeapSecondIndexed(t *testing.T) {
	s := startServer(t, app.Config{})
	id, r := create(t, s, "Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2016-12-31T23:59:60Z"}`))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if ids, _ := searchAll(t, s, "Observation?date=2016-12-31"); len(ids) != 1 || ids[0] != id {
		t.Errorf("Observation?date=2016-12-31: got %v, want [%s]", ids, id)
	}
	id2, r := create(t, s, "Observation", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"y"},"effectivePeriod":{"start":"2016-12-31T23:00:00Z","end":"2016-12-31T23:59:60Z"}}`))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if ids, _ := searchAll(t, s, "Observation?date=ge2020-01-01"); len(ids) != 0 {
		t.Errorf("Observation?date=ge2020-01-01: got %v (the Period %s ends in 2016), want none", ids, id2)
	}
}
