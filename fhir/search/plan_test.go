package search_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"healthhub/fhir/search"
)

// The plan tests check, for each parameter type and each prefix and
// modifier, against small fixtures whose answers are worked out by hand
// from R4 search.html (the rules are summarized in plan.go):
//
//   - Matches selects exactly the expected ids;
//   - unless the condition needs every resource (all), the union of the ids
//     its Scans find in a simulated index covers the matches, and equals
//     them when the plan says exact;
//   - the plan is of the expected kind (exact, superset or all).
//
// The simulated index is what store/index.go keeps: for each Entry of a
// resource and each key of Entry.Value.Keys(), the key valueKey || id ||
// len(id) under Entry.Param, sorted, scanned by [From, To) on whole keys.

// planIndex is the simulated index.
type planIndex map[string][][]byte

func newPlanIndex(docs map[string][]search.Entry, stored func(param string) bool) planIndex {
	ix := planIndex{}
	for id, entries := range docs {
		for _, e := range entries {
			if !stored(e.Param) {
				continue // as the service writes it: only what the index keeps
			}
			for _, k := range e.Value.Keys() {
				key := append(append(slices.Clone(k), id...), byte(len(id)))
				ix[e.Param] = append(ix[e.Param], key)
			}
		}
	}
	for p := range ix {
		slices.SortFunc(ix[p], bytes.Compare)
	}
	return ix
}

// scan returns the ids of the index entries of s.Param in [s.From, s.To).
func (ix planIndex) scan(s search.Scan, into map[string]bool) {
	keys := ix[s.Param]
	i := sort.Search(len(keys), func(i int) bool { return bytes.Compare(keys[i], s.From) >= 0 })
	for ; i < len(keys); i++ {
		k := keys[i]
		if s.To != nil && bytes.Compare(k, s.To) >= 0 {
			break
		}
		n := int(k[len(k)-1])
		into[string(k[len(k)-1-n:len(k)-1])] = true
	}
}

// planFixture is a set of resources of one type, extracted.
type planFixture struct {
	typ  string
	docs map[string][]search.Entry
	ix   planIndex
}

func newPlanFixture(t testing.TB, typ string, resources map[string]string) *planFixture {
	t.Helper()
	fx := &planFixture{typ: typ, docs: map[string][]search.Entry{}}
	for id, body := range resources {
		js := fmt.Sprintf(`{"resourceType":%q,"id":%q%s}`, typ, id, body)
		entries, err := testRegistry(t).Extract(typ, []byte(js))
		if err != nil {
			t.Fatalf("%s: %v\n%s", id, err, js)
		}
		fx.docs[id] = entries
	}
	fx.ix = newPlanIndex(fx.docs, func(param string) bool {
		p, ok := testRegistry(t).Lookup(typ, param)
		return ok && p.Stored()
	})
	return fx
}

// condition parses a query of exactly one condition.
func planCondition(t testing.TB, typ, raw string) (*search.Condition, error) {
	t.Helper()
	key, value, _ := strings.Cut(raw, "=")
	q, err := search.ParseQuery(testRegistry(t), typ, url.Values{key: {value}}, true)
	if err != nil {
		return nil, err
	}
	if len(q.Conditions) != 1 {
		return nil, fmt.Errorf("%s: %d conditions", raw, len(q.Conditions))
	}
	return &q.Conditions[0], nil
}

// planKind describes a plan: "all", "exact" or "superset".
func planKind(exact, all bool) string {
	switch {
	case all:
		return "all"
	case exact:
		return "exact"
	}
	return "superset"
}

// check runs one condition over the fixture and returns the ids Matches
// selects and the plan's kind, failing on a scan that misses a match or an
// exact scan that finds more.
func (fx *planFixture) check(t testing.TB, c *search.Condition, label string) (ids []string, kind string) {
	t.Helper()
	m := c.Matcher()
	for id, entries := range fx.docs {
		if m(entries) {
			ids = append(ids, id)
		}
		if got := c.Matches(entries); got != m(entries) {
			t.Errorf("%s: %s: Matches %v, Matcher %v", label, id, got, !got)
		}
	}
	sort.Strings(ids)
	if named, ok := c.IDs(); ok {
		// _id is looked up directly, not scanned: the named ids that
		// exist are the matches.
		var found []string
		for _, id := range named {
			if _, ok := fx.docs[id]; ok && !slices.Contains(found, id) {
				found = append(found, id)
			}
		}
		sort.Strings(found)
		if !slices.Equal(found, ids) {
			t.Errorf("%s: IDs names %v, matches %v", label, found, ids)
		}
		return ids, "exact"
	}
	scans, exact, all := c.Scans()
	stored := []string{c.Param.IndexCode()} // a union is scanned in its members' indexes
	if len(c.Param.UnionOf) > 0 {
		stored = nil
		for _, m := range c.Param.UnionOf {
			stored = append(stored, m.Code)
		}
	}
	if !all {
		found := map[string]bool{}
		for _, s := range scans {
			if !slices.Contains(stored, s.Param) {
				t.Errorf("%s: scan of parameter %q", label, s.Param)
			}
			if s.To != nil && bytes.Compare(s.From, s.To) > 0 {
				t.Errorf("%s: scan [%x, %x) is reversed", label, s.From, s.To)
			}
			fx.ix.scan(s, found)
		}
		for _, id := range ids {
			if !found[id] {
				t.Errorf("%s: match %s not found by the scans %s", label, id, describeScans(scans))
			}
		}
		if exact {
			var extra []string
			for id := range found {
				if !slices.Contains(ids, id) {
					extra = append(extra, id)
				}
			}
			if len(extra) > 0 {
				sort.Strings(extra)
				t.Errorf("%s: exact scans also find %v (matches %v) %s", label, extra, ids, describeScans(scans))
			}
		}
	}
	return ids, planKind(exact, all)
}

func describeScans(scans []search.Scan) string {
	var b strings.Builder
	for _, s := range scans {
		fmt.Fprintf(&b, "\n\t[%q, %q)", s.From, s.To)
	}
	return b.String()
}

type planCase struct {
	query string
	want  string // matching ids, space-separated, sorted
	kind  string // exact, superset or all
}

func runPlanCases(t *testing.T, fx *planFixture, cases []planCase) {
	t.Helper()
	for _, tc := range cases {
		c, err := planCondition(t, fx.typ, tc.query)
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		ids, kind := fx.check(t, c, tc.query)
		if got := strings.Join(ids, " "); got != tc.want {
			t.Errorf("%s?%s: matches %q, want %q", fx.typ, tc.query, got, tc.want)
		}
		if kind != tc.kind {
			t.Errorf("%s?%s: plan %s, want %s", fx.typ, tc.query, kind, tc.kind)
		}
	}
}

func TestPlanDate(t *testing.T) {
	defer search.SetNowForTest(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))()
	fx := newPlanFixture(t, "Observation", map[string]string{
		"d01": `,"effectiveDateTime":"2020"`,                                            // [2020-01-01, 2021-01-01)
		"d02": `,"effectiveDateTime":"2020-06-15"`,                                      // one day
		"d03": `,"effectiveDateTime":"2020-06-15T10:30:00Z"`,                            // one second
		"d04": `,"effectivePeriod":{"start":"2020-06-01","end":"2020-06-30"}`,           // [06-01, 07-01)
		"d05": `,"effectivePeriod":{"start":"2019-12-15"}`,                              // open end
		"d06": `,"effectivePeriod":{"end":"2020-01-10"}`,                                // open start, to 2020-01-11
		"d07": `,"effectiveDateTime":"2021-03-01"`,                                      //
		"d08": `,"effectiveDateTime":"2019-05-05"`,                                      //
		"d09": `,"effectivePeriod":{"start":"2020-12-20","end":"2021-01-05"}`,           // across the year's end
		"d10": `,"status":"final"`,                                                      // no date
		"d11": `,"effectivePeriod":{"start":"2020-07-01","end":"2020-05-01"}`,           // breaks per-1: [07-01, 05-02)
		"d12": `,"effectiveInstant":"2020-06-15T23:59:59.999Z"`,                         // the last millisecond of the day
		"d13": `,"effectiveDateTime":"2020-06-16T01:30:00+05:00"`,                       // 2020-06-15T20:30Z
		"d14": `,"effectiveTiming":{"event":["2018-02-02","2020-06-15T12:00:00Z"]}`,     // its outer limits: [2018-02-02, 2020-06-15T12:00:01)
		"d15": `,"effectivePeriod":{"start":"2020-06-15T22:00:00Z","end":"2020-06-16"}`, // straddles the end of 06-15
	})
	runPlanCases(t, fx, []planCase{
		// date=2020: [2020-01-01, 2021-01-01)
		{"date=2020", "d01 d02 d03 d04 d12 d13 d15", "superset"},
		{"date=eq2020", "d01 d02 d03 d04 d12 d13 d15", "superset"},
		{"date=ne2020", "d05 d06 d07 d08 d09 d14", "exact"},
		{"date=gt2020", "d05 d07 d09", "exact"},
		{"date=lt2020", "d05 d06 d08 d14", "exact"},
		{"date=ge2020", "d01 d02 d03 d04 d05 d07 d09 d11 d12 d13 d15", "exact"},
		{"date=le2020", "d01 d02 d03 d04 d05 d06 d08 d11 d12 d13 d14 d15", "exact"},
		{"date=sa2020", "d07", "exact"},
		{"date=eb2020", "d08", "exact"},
		// date=2020-06-15: [06-15, 06-16)
		{"date=2020-06-15", "d02 d03 d12 d13", "superset"},
		{"date=ne2020-06-15", "d01 d04 d05 d06 d07 d08 d09 d14 d15", "exact"},
		{"date=gt2020-06-15", "d01 d04 d05 d07 d09 d15", "exact"},
		{"date=lt2020-06-15", "d01 d04 d05 d06 d08 d14", "exact"},
		{"date=ge2020-06-15", "d01 d02 d03 d04 d05 d07 d09 d11 d12 d13 d15", "exact"},
		{"date=le2020-06-15", "d01 d02 d03 d04 d05 d06 d08 d11 d12 d13 d14", "exact"},
		{"date=sa2020-06-15", "d07 d09 d11", "exact"},
		{"date=eb2020-06-15", "d06 d08 d11", "exact"},
		// Finer precisions, zones, OR lists.
		{"date=2020-06-15T10:30", "d03", "superset"},
		{"date=2020-06-15T10:30:00Z", "d03", "superset"},
		{"date=2020-06-15T15:30:00+05:00", "d03", "superset"},
		{"date=2020-06-15T20:30:00Z", "d13", "superset"},
		{"date=ge2020-06-15T22:00:00Z", "d01 d02 d04 d05 d07 d09 d11 d12 d15", "exact"},
		{"date=2019,2021", "d07 d08", "superset"},
		{"date=lt2019,gt2021", "d05 d06 d14", "exact"},
		{"date=2018-02", "", "superset"},
		// ap: now is 2025-01-01, the gap to 2020-01-01 is 1827 days, so
		// the range widens by 182.7 days each side: [2019-07-02T07:12,
		// 2021-07-02T16:48); the targets must lie within it.
		{"date=ap2020", "d01 d02 d03 d04 d07 d09 d12 d13 d15", "superset"},
		// ap2024-12-31: gap 1 day, 2.4 hours each side: [2024-12-30T21:36, 2025-01-01T02:24).
		{"date=ap2024-12-31", "", "superset"},
		// :missing
		{"date:missing=true", "d10", "all"},
		{"date:missing=false", "d01 d02 d03 d04 d05 d06 d07 d08 d09 d11 d12 d13 d14 d15", "exact"},
	})
}

func TestPlanDatePeriodParam(t *testing.T) {
	// Encounter.period: Periods only, the usual "visits overlapping a
	// range" search.
	fx := newPlanFixture(t, "Encounter", map[string]string{
		"e1": `,"status":"finished","class":{"code":"AMB"},"period":{"start":"2021-01-10T08:00:00Z","end":"2021-01-10T09:00:00Z"}`,
		"e2": `,"status":"finished","class":{"code":"IMP"},"period":{"start":"2021-01-09","end":"2021-01-12"}`,
		"e3": `,"status":"in-progress","class":{"code":"IMP"},"period":{"start":"2021-01-11"}`,
		"e4": `,"status":"planned","class":{"code":"AMB"}`,
	})
	runPlanCases(t, fx, []planCase{
		{"date=2021-01-10", "e1", "superset"},
		{"date=ge2021-01-10", "e1 e2 e3", "exact"},
		{"date=lt2021-01-10", "e2", "exact"},
		{"date=le2021-01-10", "e1 e2", "exact"},
		{"date=gt2021-01-11", "e2 e3", "exact"},
		{"date=sa2021-01-10", "e3", "exact"},
		{"date=eb2021-01-13", "e1 e2", "exact"},
		{"date=2021-01", "e1 e2", "superset"},
		{"date:missing=true", "e4", "all"},
		{"length:missing=true", "e1 e2 e3 e4", "all"},
		{"length:missing=false", "", "exact"},
	})
}

func TestPlanNumber(t *testing.T) {
	fx := newPlanFixture(t, "Observation", map[string]string{
		"n01": `,"valueInteger":100`,
		"n02": `,"valueDecimal":99.5`,
		"n03": `,"valueDecimal":100.5`,
		"n04": `,"valueDecimal":99.4`,
		"n05": `,"valueDecimal":100.49`,
		"n06": `,"valueInteger":-3`,
		"n07": `,"valueDecimal":0`,
		"n08": `,"valueDecimal":100.00`,
		"n09": `,"valueString":"none"`,
		"n10": `,"valueDecimal":120`,
		"n11": `,"valueDecimal":-0.0`,
	})
	runPlanCases(t, fx, []planCase{
		// 100 is [99.5, 100.5) (#number: 3 significant figures).
		{"test-number=100", "n01 n02 n05 n08", "exact"},
		{"test-number=eq100", "n01 n02 n05 n08", "exact"},
		{"test-number=100.0", "n01 n08", "exact"},
		{"test-number=100.00", "n01 n08", "exact"},
		{"test-number=1e2", "n01 n02 n03 n04 n05 n08 n10", "exact"}, // [50, 150)
		{"test-number=ne100", "n03 n04 n06 n07 n10 n11", "exact"},
		// gt, lt, ge, le compare with exactly 100.
		{"test-number=gt100", "n03 n05 n10", "exact"},
		{"test-number=lt100", "n02 n04 n06 n07 n11", "exact"},
		{"test-number=ge100", "n01 n03 n05 n08 n10", "exact"},
		{"test-number=le100", "n01 n02 n04 n06 n07 n08 n11", "exact"},
		// sa, eb: beyond the precision range.
		{"test-number=sa100", "n03 n10", "exact"},
		{"test-number=eb100", "n04 n06 n07 n11", "exact"},
		// ap: 10% of 100 on each side of [99.5, 100.5).
		{"test-number=ap100", "n01 n02 n03 n04 n05 n08", "exact"},
		{"test-number=ap120", "n10", "exact"}, // [119.5-12, 120.5+12)
		{"test-number=-3", "n06", "exact"},
		{"test-number=0", "n07 n11", "exact"},
		{"test-number=0.0", "n07 n11", "exact"},
		{"test-number=gt-5", "n01 n02 n03 n04 n05 n06 n07 n08 n10 n11", "exact"},
		{"test-number=lt0", "n06", "exact"},
		{"test-number=le0", "n06 n07 n11", "exact"},
		{"test-number=ap0", "n07 n11", "exact"},
		{"test-number=99.5,120", "n02 n10", "exact"},
		{"test-number:missing=true", "n09", "all"},
	})
}

func TestPlanQuantity(t *testing.T) {
	const ucum = "http://unitsofmeasure.org"
	fx := newPlanFixture(t, "Observation", map[string]string{
		"q1": `,"valueQuantity":{"value":5.4,"system":"` + ucum + `","code":"mg","unit":"mg"}`,
		"q2": `,"valueQuantity":{"value":5.4,"system":"` + ucum + `","code":"g","unit":"gram"}`,
		"q3": `,"valueQuantity":{"value":5.40,"unit":"mg"}`,
		"q4": `,"valueQuantity":{"value":6,"system":"` + ucum + `","code":"mg"}`,
		"q5": `,"valueQuantity":{"value":5.35,"system":"http://other","code":"mg","unit":"milligram"}`,
		"q6": `,"valueQuantity":{"value":5.4,"comparator":"<","system":"` + ucum + `","code":"mg"}`,
		"q7": `,"valueSampledData":{"origin":{"value":5.42},"period":1,"dimensions":1}`,
		"q8": `,"valueString":"x"`,
	})
	runPlanCases(t, fx, []planCase{
		{"value-quantity=5.4", "q1 q2 q3 q5 q6 q7", "exact"}, // [5.35, 5.45)
		{"value-quantity=5.4|" + ucum + "|mg", "q1 q6", "exact"},
		{"value-quantity=5.4||mg", "q1 q3 q5 q6", "exact"}, // code or unit
		{"value-quantity=5.4||gram", "q2", "exact"},
		{"value-quantity=5.4||milligram", "q5", "exact"},
		{"value-quantity=5.4|http://other|mg", "q5", "exact"},
		{"value-quantity=gt5.4|" + ucum + "|mg", "q4", "exact"},
		{"value-quantity=ge5.4|" + ucum + "|mg", "q1 q4 q6", "exact"},
		{"value-quantity=le5.4||mg", "q1 q3 q5 q6", "exact"},
		{"value-quantity=lt5.4||mg", "q5", "exact"},
		{"value-quantity=ne5.4|" + ucum + "|mg", "q4", "exact"},
		{"value-quantity=ap5.4", "q1 q2 q3 q5 q6 q7", "exact"},  // [4.81, 5.99)
		{"value-quantity=ap6", "q1 q2 q3 q4 q5 q6 q7", "exact"}, // [4.9, 7.1)
		{"value-quantity=lt6", "q1 q2 q3 q5 q6 q7", "exact"},
		{"value-quantity=sa5.4", "q4", "exact"},
		{"value-quantity=eb5.4", "", "exact"},
		{"value-quantity=5.42", "q7", "exact"},
		{"value-quantity=5.4|" + ucum + "|mg,6||mg", "q1 q4 q6", "exact"},
		{"value-quantity:missing=true", "q8", "all"},
		{"value-quantity:missing=false", "q1 q2 q3 q4 q5 q6 q7", "exact"},
	})
}

func TestPlanString(t *testing.T) {
	fx := newPlanFixture(t, "Patient", map[string]string{
		"s1": `,"name":[{"family":"Müller","given":["Hans","Peter"]}]`,
		"s2": `,"name":[{"family":"Muller"}]`,
		"s3": `,"name":[{"family":"MULLERS"}]`,
		"s4": `,"name":[{"family":"Smith-Müller"}]`,
		"s5": `,"name":[{"family":"Mu"}]`,
		"s6": `,"gender":"male"`,
		"s7": `,"name":[{"text":"Anna Muller"}],"address":[{"line":["1 Straße"],"city":"Køge"}]`,
	})
	runPlanCases(t, fx, []planCase{
		{"family=muller", "s1 s2 s3", "superset"},
		{"family=MÜLLER", "s1 s2 s3", "superset"},
		{"family=Mü", "s1 s2 s3 s5", "superset"},
		{"family=mul,smi", "s1 s2 s3 s4", "superset"},
		{"family:exact=Müller", "s1", "superset"},
		{"family:exact=muller", "", "superset"},
		{"family:exact=Mu", "s5", "superset"},
		{"family:contains=ller", "s1 s2 s3 s4", "all"},
		{"family:contains=ITH", "s4", "all"},
		{"name=anna", "s7", "exact"},
		{"name=muller", "s1 s2 s3", "exact"},
		{"name=pet", "s1", "exact"},
		{"address=1 STRA", "s7", "exact"},
		{"address-city=koge", "s7", "superset"},
		{"family:missing=true", "s6 s7", "all"},
		{"family:missing=false", "s1 s2 s3 s4 s5", "superset"},
	})
}

func TestPlanToken(t *testing.T) {
	const loinc, snomed = "http://loinc.org", "http://snomed.info/sct"
	obs := newPlanFixture(t, "Observation", map[string]string{
		"t1": `,"code":{"coding":[{"system":"` + loinc + `","code":"1234-5","display":"Glucose"}],"text":"Blood glucose"}`,
		"t2": `,"code":{"coding":[{"system":"` + snomed + `","code":"1234-5"}]}`,
		"t3": `,"code":{"coding":[{"code":"1234-5"}]}`,
		"t4": `,"code":{"coding":[{"system":"` + loinc + `","code":"9999-9","display":"Hémoglobine"}]}`,
		"t5": `,"code":{"text":"glucose level"}`,
		"t6": `,"code":{"coding":[{"system":"` + loinc + `","code":"1234-5X"}]}`,
		"t7": `,"status":"final"`,
	})
	runPlanCases(t, obs, []planCase{
		{"code=1234-5", "t1 t2 t3", "exact"},
		{"code=" + loinc + "|1234-5", "t1", "exact"},
		{"code=|1234-5", "t3", "exact"},
		{"code=" + loinc + "|", "t1 t4 t6", "exact"},
		{"code=1234-5,9999-9", "t1 t2 t3 t4", "exact"},
		{"code=1234", "", "exact"},
		{"code:text=glucose", "t1 t5", "exact"},
		{"code:text=blood", "t1", "exact"},
		{"code:text=HEMO", "t4", "exact"},
		{"code:not=1234-5", "t4 t5 t6 t7", "all"},
		{"code:not=1234-5,9999-9", "t5 t6 t7", "all"},
		{"code:not=" + loinc + "|1234-5", "t2 t3 t4 t5 t6 t7", "all"},
		{"code:missing=true", "t7", "all"},
		{"code:missing=false", "t1 t2 t3 t4 t5 t6", "exact"},
		{"status=final", "t7", "exact"},
	})
	const v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
	pat := newPlanFixture(t, "Patient", map[string]string{
		"p1": `,"gender":"male","active":true,"identifier":[{"system":"urn:mrn","value":"123","type":{"coding":[{"system":"` + v2 + `","code":"MR"}]}}]`,
		"p2": `,"gender":"female","active":false,"identifier":[{"system":"urn:ssn","value":"123"}]`,
		"p3": `,"gender":"male","identifier":[{"value":"456","type":{"coding":[{"system":"` + v2 + `","code":"MR"},{"system":"` + v2 + `","code":"PI"}],"text":"Medical record"}}],"telecom":[{"system":"phone","value":"555-1234"},{"system":"email","value":"a@b.org"}]`,
		"p4": `,"birthDate":"1980"`,
	})
	runPlanCases(t, pat, []planCase{
		{"gender=male", "p1 p3", "exact"},
		{"gender=female,other", "p2", "exact"},
		{"gender:not=male", "p2 p4", "all"},
		{"active=true", "p1", "exact"},
		{"active=false", "p2", "exact"},
		{"active:missing=true", "p3 p4", "all"},
		{"identifier=123", "p1 p2", "exact"},
		{"identifier=urn:mrn|123", "p1", "exact"},
		{"identifier=urn:mrn|", "p1", "exact"},
		{"identifier=|456", "p3", "exact"},
		{"identifier=|123", "", "exact"},
		{"identifier:of-type=" + v2 + "|MR|123", "p1", "exact"},
		{"identifier:of-type=" + v2 + "|MR|456", "p3", "exact"},
		{"identifier:of-type=" + v2 + "|PI|456", "p3", "exact"},
		{"identifier:of-type=" + v2 + "|PI|123", "", "exact"},
		{"identifier:text=medical", "p3", "exact"},
		{"phone=555-1234", "p3", "superset"},
		{"telecom=phone|555-1234", "p3", "exact"},
		{"telecom=email|555-1234", "", "exact"},
		{"email=a@b.org", "p3", "superset"},
		{"_id=p2", "p2", "exact"},
		{"_id=p2,p4", "p2 p4", "exact"},
	})
}

func TestPlanReference(t *testing.T) {
	fx := newPlanFixture(t, "Observation", map[string]string{
		"r1":  `,"subject":{"reference":"Patient/1"}`,
		"r2":  `,"subject":{"reference":"Group/1"}`,
		"r3":  `,"subject":{"reference":"Patient/2/_history/3"}`,
		"r4":  `,"subject":{"reference":"http://other.org/fhir/Patient/1"}`,
		"r5":  `,"subject":{"reference":"urn:uuid:0f2c1a4e-0000-4000-8000-000000000001","type":"Patient"}`,
		"r6":  `,"subject":{"identifier":{"system":"urn:mrn","value":"123"}}`,
		"r7":  `,"subject":{"reference":"Patient/2","identifier":{"system":"urn:ssn","value":"555"}}`,
		"r8":  `,"status":"final"`,
		"r9":  `,"subject":{"reference":"#p1"},"contained":[{"resourceType":"Patient","id":"p1"}]`,
		"r10": `,"subject":{"reference":"urn:uuid:0f2c1a4e-0000-4000-8000-000000000002","type":"Group"}`,
	})
	runPlanCases(t, fx, []planCase{
		{"subject=Patient/1", "r1", "exact"},
		{"subject=1", "r1 r2", "exact"}, // a bare id: any target type
		{"subject:Patient=1", "r1", "exact"},
		{"subject:Group=1", "r2", "exact"},
		{"subject=Patient/2", "r3 r7", "exact"}, // any version
		{"subject=Patient/2/_history/3", "r3", "superset"},
		{"subject=Patient/2/_history/9", "", "superset"},
		{"subject=http://other.org/fhir/Patient/1", "r4", "exact"},
		{"subject=http://other.org/fhir/Patient/1/_history/2", "", "superset"},
		{"subject=urn:uuid:0f2c1a4e-0000-4000-8000-000000000001", "r5", "exact"},
		// A type modifier holds for a URL too: the reference's type
		// (Reference.type for a URN) must be the one named.
		{"subject:Patient=urn:uuid:0f2c1a4e-0000-4000-8000-000000000001", "r5", "superset"},
		{"subject:Patient=urn:uuid:0f2c1a4e-0000-4000-8000-000000000002", "", "superset"},
		{"subject:Group=urn:uuid:0f2c1a4e-0000-4000-8000-000000000002", "r10", "superset"},
		{"subject:Patient=http://other.org/fhir/Patient/1", "r4", "exact"},
		{"subject=Patient/1,Group/1,Patient/2", "r1 r2 r3 r7", "exact"},
		{"patient=1", "r1", "exact"}, // one target type: Patient/1
		{"patient=Patient/2", "r3 r7", "exact"},
		// patient is answered from subject's index (Param.Within): exact for
		// Patient/id, checked on the candidates otherwise.
		{"patient=Patient/1,Patient/2", "r1 r3 r7", "exact"},
		{"patient=http://other.org/fhir/Patient/1", "r4", "superset"},
		{"patient:identifier=urn:mrn|123", "", "superset"}, // no type: not known to be a Patient
		{"patient:identifier=555", "r7", "superset"},
		{"patient:missing=false", "r1 r3 r4 r5 r7", "superset"},
		{"subject:identifier=urn:mrn|123", "r6", "exact"},
		{"subject:identifier=123", "r6", "exact"},
		{"subject:identifier=555", "r7", "exact"},
		{"subject:identifier=urn:ssn|", "r7", "exact"},
		{"subject:identifier=|123", "", "exact"},
		{"subject:missing=true", "r8 r9", "all"},
		{"subject:missing=false", "r1 r10 r2 r3 r4 r5 r6 r7", "exact"},
	})
}

func TestPlanURI(t *testing.T) {
	const sd = "http://example.org/fhir/StructureDefinition/"
	fx := newPlanFixture(t, "Observation", map[string]string{
		"u1": `,"meta":{"profile":["` + sd + `vitals"]}`,
		"u2": `,"meta":{"profile":["` + sd + `vitals-bp","http://other.org/p"]}`,
		"u3": `,"meta":{"profile":["http://example.org/fhir/"]}`,
		"u4": `,"status":"final"`,
		"u5": `,"meta":{"source":"http://example.org/fhir/StructureDefinition/vitals"}`,
	})
	runPlanCases(t, fx, []planCase{
		{"_profile=" + sd + "vitals", "u1", "exact"},
		{"_profile=" + sd + "Vitals", "", "exact"},
		{"_profile=" + sd + "vital", "", "exact"},
		{"_profile:below=" + sd, "u1 u2", "exact"},
		{"_profile:below=" + sd + "vitals", "u1 u2", "exact"},
		{"_profile:above=" + sd + "vitals", "u1 u3", "exact"},
		{"_profile:above=" + sd + "vitals-bp/x", "u2 u3", "exact"}, // .../vitals is no parent of .../vitals-bp/x
		{"_profile=http://other.org/p", "u2", "exact"},
		{"_profile:missing=true", "u4 u5", "all"},
		{"_source=" + sd + "vitals", "u5", "exact"},
	})
}

func TestPlanComposite(t *testing.T) {
	const loinc, ucum, snomed = "http://loinc.org", "http://unitsofmeasure.org", "http://snomed.info/sct"
	code := func(c string) string { return `"code":{"coding":[{"system":"` + loinc + `","code":"` + c + `"}]}` }
	qty := func(v string) string {
		return `{"value":` + v + `,"system":"` + ucum + `","code":"mm[Hg]","unit":"mmHg"}`
	}
	fx := newPlanFixture(t, "Observation", map[string]string{
		"c1": `,` + code("8480-6") + `,"valueQuantity":` + qty("120"),
		"c2": `,` + code("8480-6") + `,"valueQuantity":` + qty("140"),
		"c3": `,` + code("8462-4") + `,"valueQuantity":` + qty("120"),
		"c4": `,` + code("85354-9") + `,"component":[{` + code("8480-6") + `,"valueQuantity":` + qty("130") + `},{` + code("8462-4") + `,"valueQuantity":` + qty("80") + `}]`,
		"c5": `,` + code("1111") + `,"valueString":"Positive result"`,
		"c6": `,` + code("2222") + `,"valueDateTime":"2020-06-15"`,
		"c7": `,` + code("3333") + `,"valueCodeableConcept":{"coding":[{"system":"` + snomed + `","code":"10828004"}]}`,
		"c8": `,"code":{"text":"text only"},"valueQuantity":` + qty("120"),
	})
	runPlanCases(t, fx, []planCase{
		{"code-value-quantity=" + loinc + "|8480-6$120", "c1", "exact"},
		{"code-value-quantity=8480-6$120", "c1", "exact"},
		{"code-value-quantity=8480-6$gt125", "c2", "exact"},
		{"code-value-quantity=8480-6$ne120", "c2", "exact"},
		{"code-value-quantity=8480-6$ge120,8462-4$120", "c1 c2 c3", "exact"},
		{"code-value-quantity=8480-6$130", "", "exact"}, // a component's code is not the Observation's
		{"code-value-quantity=8480-6$120|" + ucum + "|mm[Hg]", "c1", "superset"},
		{"code-value-quantity=8480-6$120||mmHg", "c1", "superset"},
		{"code-value-quantity=8480-6$120||kg", "", "superset"},
		{"code-value-quantity=" + loinc + "|$120", "c1 c3", "superset"}, // system| ends the key
		{"code-value-quantity=|8480-6$120", "", "exact"},
		{"component-code-value-quantity=8480-6$130", "c4", "exact"},
		{"component-code-value-quantity=8462-4$lt100", "c4", "exact"},
		{"component-code-value-quantity=8480-6$80", "", "exact"}, // not across components
		{"combo-code-value-quantity=8480-6$130", "c4", "exact"},
		{"combo-code-value-quantity=8480-6$le130", "c1 c4", "exact"},
		{"code-value-string=1111$positive", "c5", "exact"},
		{"code-value-string=1111$result", "", "exact"},
		{"code-value-date=2222$2020", "c6", "superset"},
		{"code-value-date=2222$ge2020-06", "c6", "exact"},
		{"code-value-date=2222$lt2020-06-15", "", "exact"},
		{"code-value-concept=3333$" + snomed + "|10828004", "c7", "exact"},
		{"code-value-concept=3333$10828004", "c7", "exact"},
		{"code-value-quantity:missing=true", "c4 c5 c6 c7 c8", "all"},
		{"code-value-quantity:missing=false", "c1 c2 c3", "exact"},
	})
}

// TestPlanScanShape pins the ranges of a few plans, so a change of key
// layout shows here first.
func TestPlanScanShape(t *testing.T) {
	key := func(form byte, tm string) []byte {
		x, err := time.Parse(time.RFC3339, tm)
		if err != nil {
			t.Fatal(err)
		}
		return search.AppendKeyTime([]byte{form}, x)
	}
	c, err := planCondition(t, "Observation", "date=2020")
	if err != nil {
		t.Fatal(err)
	}
	scans, exact, all := c.Scans()
	want := []search.Scan{{Param: "date", From: key('v', "2020-01-01T00:00:00Z"), To: key('v', "2021-01-01T00:00:00Z")}}
	if exact || all || !slices.EqualFunc(scans, want, scanEqual) {
		t.Errorf("date=2020: %s exact=%v all=%v", describeScans(scans), exact, all)
	}
	c, _ = planCondition(t, "Observation", "date=lt2020")
	scans, exact, _ = c.Scans()
	want = []search.Scan{{Param: "date", From: []byte{'v'}, To: key('v', "2020-01-01T00:00:00Z")}}
	if !exact || !slices.EqualFunc(scans, want, scanEqual) {
		t.Errorf("date=lt2020: %s exact=%v", describeScans(scans), exact)
	}
	// An OR list of overlapping ranges is merged.
	c, _ = planCondition(t, "Observation", "date=lt2020,lt2021,eb2019")
	scans, _, _ = c.Scans()
	if len(scans) != 2 { // starts before 2021, and ends by 2019
		t.Errorf("date=lt2020,lt2021,eb2019: %s", describeScans(scans))
	}
	c, _ = planCondition(t, "Patient", "gender:missing=false")
	scans, exact, all = c.Scans()
	if !exact || all || len(scans) != 1 || scans[0].From != nil || scans[0].To != nil || scans[0].Param != "gender" {
		t.Errorf("gender:missing=false: %s exact=%v all=%v", describeScans(scans), exact, all)
	}
	// family is answered from name's index (Param.Within), then checked.
	c, _ = planCondition(t, "Patient", "family:missing=false")
	scans, exact, all = c.Scans()
	if exact || all || len(scans) != 1 || scans[0].From != nil || scans[0].To != nil || scans[0].Param != "name" {
		t.Errorf("family:missing=false: %s exact=%v all=%v", describeScans(scans), exact, all)
	}
	c, _ = planCondition(t, "Patient", "family=ab")
	scans, _, _ = c.Scans()
	if len(scans) != 1 || string(scans[0].From) != "vab" || string(scans[0].To) != "vac" {
		t.Errorf("family=ab: %s", describeScans(scans))
	}
}

func scanEqual(a, b search.Scan) bool {
	return a.Param == b.Param && bytes.Equal(a.From, b.From) && bytes.Equal(a.To, b.To) && (a.To == nil) == (b.To == nil)
}

// planGen draws the parts of a random fixture and condition from fuzz
// bytes (zeros when they run out).
type planGen struct{ b []byte }

func (g *planGen) n(k int) int {
	if k <= 1 {
		return 0
	}
	if len(g.b) == 0 {
		return 0
	}
	v := int(g.b[0])
	g.b = g.b[1:]
	return v % k
}

func (g *planGen) pick(s ...string) string { return s[g.n(len(s))] }

// date is a date, dateTime or instant at a random precision, in a few
// years around 2020 so that ranges meet often.
func (g *planGen) date() string {
	y := 2018 + g.n(4)
	s := fmt.Sprintf("%04d", y)
	prec := g.n(6)
	if prec >= 1 {
		s += fmt.Sprintf("-%02d", 1+g.n(3)*5)
	}
	if prec >= 2 {
		s += fmt.Sprintf("-%02d", 1+g.n(3)*14)
	}
	if prec >= 3 {
		s += fmt.Sprintf("T%02d:%02d", g.n(3)*11, g.n(2)*30)
		if prec >= 4 {
			s += fmt.Sprintf(":%02d", g.n(2)*59)
			if prec >= 5 {
				s += g.pick(".5", ".999", ".000")
			}
		}
		s += g.pick("Z", "+05:00", "-11:00", "Z")
	}
	return s
}

// number is a decimal of a few digits, with a fraction or an exponent
// sometimes.
func (g *planGen) number(exp bool) string {
	s := g.pick("", "-", "") + g.pick("0", "1", "5", "10", "99", "100", "120")
	switch g.n(4) {
	case 1:
		s += g.pick(".0", ".5", ".49", ".05", ".999")
	case 2:
		if exp {
			s += g.pick("e1", "e-1", "e2", "E0")
		}
	}
	return s
}

func (g *planGen) str() string {
	return g.pick("", "a", "A", "ä", "Ab", "abc", "Äbc", "b", "ab c", "ß", "ss", "ø", "x\x00y")
}

func (g *planGen) resource() string {
	var parts []string
	switch g.n(5) {
	case 1:
		parts = append(parts, `"effectiveDateTime":"`+g.date()+`"`)
	case 2:
		var p []string
		if g.n(4) != 0 {
			p = append(p, `"start":"`+g.date()+`"`)
		}
		if g.n(4) != 0 {
			p = append(p, `"end":"`+g.date()+`"`)
		}
		parts = append(parts, `"effectivePeriod":{`+strings.Join(p, ",")+`}`)
	case 3:
		parts = append(parts, `"effectiveTiming":{"event":["`+g.date()+`","`+g.date()+`"]}`)
	case 4:
		parts = append(parts, `"effectiveInstant":"`+g.date()+`"`)
	}
	code := func() string {
		display := ""
		if d := g.str(); d != "" && !strings.Contains(d, "\x00") {
			display = `,"display":"` + d + `"`
		}
		return `{"coding":[{"system":"` + g.pick("s1", "s2", "") + `","code":"` + g.pick("c1", "c2", "c") + `"` + display + `}]}`
	}
	if g.n(4) != 0 {
		parts = append(parts, `"code":`+code())
	}
	switch g.n(6) {
	case 1, 2:
		q := `"value":` + strings.TrimPrefix(g.number(false), "+")
		if sys := g.pick("", "u", "v"); sys != "" {
			q += `,"system":"` + sys + `"`
		}
		if c := g.pick("", "mg", "g"); c != "" {
			q += `,"code":"` + c + `"`
		}
		if u := g.pick("", "mg", "gram"); u != "" {
			q += `,"unit":"` + u + `"`
		}
		parts = append(parts, `"valueQuantity":{`+q+`}`)
	case 3:
		parts = append(parts, `"valueDecimal":`+g.number(false))
	case 4:
		parts = append(parts, `"valueString":"`+strings.ReplaceAll(g.str(), "\x00", `\u0000`)+`"`)
	case 5:
		if g.n(2) == 0 {
			parts = append(parts, `"valueDateTime":"`+g.date()+`"`)
		} else {
			parts = append(parts, `"valuePeriod":{"start":"`+g.date()+`","end":"`+g.date()+`"}`)
		}
	}
	if g.n(3) == 1 {
		var comps []string
		for range 1 + g.n(2) {
			comps = append(comps, `{"code":`+code()+`,"valueQuantity":{"value":`+g.number(false)+`,"system":"u","code":"mg"}}`)
		}
		parts = append(parts, `"component":[`+strings.Join(comps, ",")+`]`)
	}
	body := ""
	for _, p := range parts {
		body += "," + p
	}
	return body
}

// condition is a random query of one condition on the parameters the
// resources fill.
func (g *planGen) condition() string {
	prefix := func() string { return g.pick("", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap") }
	token := func() string {
		return g.pick("c1", "c2", "s1|c1", "s2|c2", "|c", "|c1", "s1|", "c")
	}
	quantity := func() string {
		return prefix() + g.number(true) + g.pick("", "|u|mg", "||mg", "||gram", "|v|g", "|u|")
	}
	var alts []string
	n := 1 + g.n(3)
	switch g.n(9) {
	case 0:
		for range n {
			alts = append(alts, prefix()+g.date())
		}
		return "date=" + strings.Join(alts, ",")
	case 1:
		for range n {
			alts = append(alts, prefix()+g.number(true))
		}
		return "test-number=" + strings.Join(alts, ",")
	case 2:
		for range n {
			alts = append(alts, quantity())
		}
		return "value-quantity=" + strings.Join(alts, ",")
	case 3:
		for range n {
			alts = append(alts, g.str())
		}
		return "value-string" + g.pick("", ":exact", ":contains") + "=" + strings.Join(alts, ",")
	case 4:
		mod := g.pick("", ":not", ":text")
		for range n {
			if mod == ":text" {
				alts = append(alts, g.str())
			} else {
				alts = append(alts, token())
			}
		}
		return "code" + mod + "=" + strings.Join(alts, ",")
	case 5:
		for range n {
			alts = append(alts, token()+"$"+quantity())
		}
		return g.pick("code-value-quantity", "component-code-value-quantity", "combo-code-value-quantity") + "=" + strings.Join(alts, ",")
	case 6:
		return g.pick("date", "value-quantity", "value-string", "code", "code-value-quantity") + ":missing=" + g.pick("true", "false")
	case 7:
		for range n {
			alts = append(alts, token()+"$"+prefix()+g.date())
		}
		return "code-value-date=" + strings.Join(alts, ",")
	default:
		for range n {
			alts = append(alts, prefix()+g.date())
		}
		return "date=" + strings.Join(alts, ",")
	}
}

// checkScansCoverMatches builds resources and a condition from data and
// checks that the scans cover the matches, exactly when they say so.
func checkScansCoverMatches(t *testing.T, data []byte) {
	g := &planGen{b: data}
	resources := map[string]string{}
	for i := range 1 + g.n(8) {
		id := fmt.Sprintf("o%d", i)
		resources[id] = g.resource()
	}
	query := g.condition()
	c, err := planCondition(t, "Observation", query)
	if err != nil {
		return // a value the parser refuses (a bad date, an empty part ...)
	}
	fx := newPlanFixture(t, "Observation", resources)
	fx.check(t, c, "Observation?"+query)
	if t.Failed() {
		for id, body := range resources {
			t.Logf("%s: %s", id, body)
		}
	}
}

func FuzzScansCoverMatches(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x01\x00\x02\x01\x05\x03\x01\x02\x03\x04\x00\x00\x00\x00"))
	f.Add([]byte("\x02\x02\x01\x03\x02\x01\x05\x01\x02\x00\x01\x03\x04\x05\x06\x07\x08\x09\x00\x01"))
	f.Add([]byte("\x05\x01\x03\x02\x01\x00\x04\x02\x03\x05\x02\x01\x00\x06\x07\x02\x05\x04\x03\x02"))
	f.Add([]byte("garbage in, fhir out: \x00\xff\x10\x20\x30\x40\x50\x60\x70\x80\x90"))
	rng := rand.New(rand.NewPCG(4, 2))
	for range 16 {
		b := make([]byte, 96)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(checkScansCoverMatches)
}

// TestScansCoverMatchesRandom runs the fuzz property over a fixed set of
// pseudo-random inputs, so that every plain test run covers many shapes.
func TestScansCoverMatchesRandom(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 200
	}
	rng := rand.New(rand.NewPCG(20, 26))
	for i := range n {
		b := make([]byte, 128)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkScansCoverMatches(t, b) })
		if t.Failed() {
			return
		}
	}
}
