package search_test

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"healthhub/fhir"
	"healthhub/fhir/search"
)

var (
	registryOnce sync.Once
	registry     *search.Registry
	registryErr  error
)

// testRegistry is the official registry plus Observation?test-number, a
// number parameter: R4 defines none for the types the server indexes.
func testRegistry(t testing.TB) *search.Registry {
	registryOnce.Do(func() {
		registry, registryErr = search.Load()
		if registryErr == nil {
			search.AddParamForTest(registry, "Observation", &search.Param{Code: "test-number", Type: search.Number, Expression: "Observation.value"})
		}
	})
	if registryErr != nil {
		t.Fatal(registryErr)
	}
	return registry
}

func parse(t testing.TB, typ, raw string, strict bool) (*search.Query, error) {
	t.Helper()
	values, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("%s?%s: bad test query: %v", typ, raw, err)
	}
	return search.ParseQuery(testRegistry(t), typ, values, strict)
}

// describe renders what a Query says, one part per condition, so a table
// line can state the expected parse in a form a reader can check.
func describe(q *search.Query) string {
	var parts []string
	if q.Type == "" {
		parts = append(parts, "types="+strings.Join(q.Types, ","))
	}
	for _, c := range q.Conditions {
		parts = append(parts, describeCondition(c.Key(), c))
	}
	for _, c := range append(append([]search.Chain(nil), q.Chains...), q.Has...) {
		parts = append(parts, describeCondition(c.Key(), c.Condition))
	}
	for _, s := range q.Sort {
		dir := "asc"
		if s.Descending {
			dir = "desc"
		}
		parts = append(parts, "sort "+s.Param.Code+" "+dir)
	}
	if q.Count != search.DefaultCount {
		parts = append(parts, "count="+strconv.Itoa(q.Count))
	}
	if q.Total != "" {
		parts = append(parts, "total="+string(q.Total))
	}
	if q.Summary != "" {
		parts = append(parts, "summary="+string(q.Summary))
	}
	if len(q.Elements) > 0 {
		parts = append(parts, "elements="+strings.Join(q.Elements, ","))
	}
	for _, inc := range q.Include {
		parts = append(parts, describeInclude("include", inc))
	}
	for _, inc := range q.RevInclude {
		parts = append(parts, describeInclude("revinclude", inc))
	}
	if q.Cursor != "" {
		parts = append(parts, "cursor="+q.Cursor)
	}
	if len(q.Ignored) > 0 {
		parts = append(parts, "ignored="+strings.Join(q.Ignored, ","))
	}
	return strings.Join(parts, "; ")
}

func describeInclude(name string, inc search.Include) string {
	s := name + " " + inc.String()
	if inc.Iterate {
		s += " iterate"
	}
	return s
}

func describeCondition(key string, c search.Condition) string {
	if c.Modifier == search.ModMissing {
		return fmt.Sprintf("%s=%v", key, c.Missing)
	}
	ops := make([]string, len(c.Operands))
	for i, o := range c.Operands {
		ops[i] = describeOperand(c.Param, c.Modifier, o)
	}
	return key + ": " + strings.Join(ops, " OR ")
}

func describeOperand(p *search.Param, mod search.Modifier, o search.Operand) string {
	switch p.Type {
	case search.Number:
		return string(o.Prefix) + " " + o.Number.Text
	case search.Date:
		return fmt.Sprintf("%s [%s,%s)", o.Prefix, o.Date.Start.Format(time.RFC3339Nano), o.Date.End.Format(time.RFC3339Nano))
	case search.String, search.URI:
		return strconv.Quote(o.Text)
	case search.Token:
		switch mod {
		case search.ModText:
			return "text " + strconv.Quote(o.Text)
		case search.ModOfType:
			return fmt.Sprintf("type %q|%q value %q", o.Token.System, o.Token.Code, o.Token.Value)
		}
		return describeToken(o.Token)
	case search.Reference:
		if mod == search.ModIdentifier {
			return "identifier " + describeToken(o.Token)
		}
		var f []string
		for _, kv := range [][2]string{{"type", o.Ref.Type}, {"id", o.Ref.ID}, {"version", o.Ref.Version}, {"url", o.Ref.URL}} {
			if kv[1] != "" {
				f = append(f, kv[0]+"="+kv[1])
			}
		}
		return "ref " + strings.Join(f, " ")
	case search.Quantity:
		s := string(o.Prefix) + " " + o.Number.Text
		if o.Token.System != "" || o.Token.Code != "" {
			s += fmt.Sprintf(" %q|%q", o.Token.System, o.Token.Code)
		}
		return s
	case search.Composite:
		parts := make([]string, len(o.Parts))
		for i, part := range o.Parts {
			parts[i] = describeOperand(p.Components[i].Param, search.ModNone, part)
		}
		return "(" + strings.Join(parts, " $ ") + ")"
	}
	return "?"
}

func describeToken(t search.TokenOperand) string {
	if !t.SystemGiven {
		return "code " + strconv.Quote(t.Code)
	}
	return fmt.Sprintf("%q|%q", t.System, t.Code)
}

const (
	y1980 = "[1980-01-01T00:00:00Z,1981-01-01T00:00:00Z)"
	loinc = "http://loinc.org"
	ucum  = "http://unitsofmeasure.org"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name, typ, query, want string
	}{
		// number (Observation?test-number, added by testRegistry) x prefix
		{"number", "Observation", "test-number=5", "test-number: eq 5"},
		{"number fraction", "Observation", "test-number=ge5.40", "test-number: ge 5.40"},
		{"number exponent", "Observation", "test-number=1e2", "test-number: eq 1e2"},
		{"number negative", "Observation", "test-number=lt-0.5E-3", "test-number: lt -0.5E-3"},
		{"number eq written", "Observation", "test-number=eq7", "test-number: eq 7"},
		{"number sa eb ap ne", "Observation", "test-number=sa1,eb2,ap3,ne4", "test-number: sa 1 OR eb 2 OR ap 3 OR ne 4"},
		{"number missing", "Observation", "test-number:missing=true", "test-number:missing=true"},

		// date x prefix and precision
		{"date year", "Patient", "birthdate=1980", "birthdate: eq " + y1980},
		{"date month ge", "Patient", "birthdate=ge1980-02", "birthdate: ge [1980-02-01T00:00:00Z,1980-03-01T00:00:00Z)"},
		{"date day lt", "Patient", "birthdate=lt1980-02-29", "birthdate: lt [1980-02-29T00:00:00Z,1980-03-01T00:00:00Z)"},
		{"date seconds gt", "Patient", "_lastUpdated=gt2024-03-01T10:00:00Z", "_lastUpdated: gt [2024-03-01T10:00:00Z,2024-03-01T10:00:01Z)"},
		{"date zone sa", "Encounter", "date=sa2024-03-01T10:00:00%2B02:00", "date: sa [2024-03-01T08:00:00Z,2024-03-01T08:00:01Z)"},
		{"date unencoded plus", "Encounter", "date=le2024-03-01T10:00:00+02:00", "date: le [2024-03-01T08:00:00Z,2024-03-01T08:00:01Z)"},
		{"date no zone is UTC", "Encounter", "date=eb2024-03-01T10:00", "date: eb [2024-03-01T10:00:00Z,2024-03-01T10:01:00Z)"},
		{"date fraction", "Appointment", "date=ap2024-03-01T10:00:00.5-05:00", "date: ap [2024-03-01T15:00:00.5Z,2024-03-01T15:00:00.6Z)"},
		{"date ne OR", "Patient", "birthdate=ne1980,1990", "birthdate: ne " + y1980 + " OR eq [1990-01-01T00:00:00Z,1991-01-01T00:00:00Z)"},
		{"date AND range", "Observation", "date=ge2024-01&date=lt2024-02", "date: ge [2024-01-01T00:00:00Z,2024-02-01T00:00:00Z); date: lt [2024-02-01T00:00:00Z,2024-03-01T00:00:00Z)"},
		{"date missing", "Patient", "birthdate:missing=false", "birthdate:missing=false"},

		// string x modifier, escaping, OR and AND
		{"string", "Patient", "family=Sm", `family: "Sm"`},
		{"string exact", "Patient", "family:exact=Smith", `family:exact: "Smith"`},
		{"string contains", "Patient", "family:contains=mit", `family:contains: "mit"`},
		{"string missing", "Patient", "family:missing=true", "family:missing=true"},
		{"string OR", "Patient", "family=Smith,Jones", `family: "Smith" OR "Jones"`},
		{"string escaped comma", "Patient", `family=O\,Brien,Li`, `family: "O,Brien" OR "Li"`},
		{"string escapes", "Patient", `family=a\|b\$c\\d`, `family: "a|b$c\\d"`},
		{"string plain pipe and dollar", "Patient", `family=a|b$c`, `family: "a|b$c"`},
		{"string odd backslash", "Patient", `family=a\b`, `family: "a\\b"`},
		{"string AND", "Patient", "given=Ann&given=Mary", `given: "Ann"; given: "Mary"`},
		{"string no prefix", "Patient", "family=gene", `family: "gene"`},
		{"empty value dropped", "Patient", "family=&given=x", `given: "x"`},
		{"empty alternatives dropped", "Patient", "family=a,,b,", `family: "a" OR "b"`},

		// token x modifier and form
		{"token code", "Patient", "gender=male", `gender: code "male"`},
		{"token system|code", "Patient", "identifier=http://sys|123", `identifier: "http://sys"|"123"`},
		{"token |code", "Patient", "identifier=|123", `identifier: ""|"123"`},
		{"token system|", "Patient", "identifier=http://sys|", `identifier: "http://sys"|""`},
		{"token escaped pipe", "Patient", `identifier=urn:oid:1.2|a\|b`, `identifier: "urn:oid:1.2"|"a|b"`},
		{"token OR", "Observation", "code=" + loinc + "|1234-5," + loinc + "|2345-6", `code: "http://loinc.org"|"1234-5" OR "http://loinc.org"|"2345-6"`},
		{"token not", "Patient", "gender:not=male", `gender:not: code "male"`},
		{"token text", "Observation", "code:text=blood glucose", `code:text: text "blood glucose"`},
		{"token text keeps pipe", "Observation", "code:text=a|b", `code:text: text "a|b"`},
		{"token of-type", "Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|123", `identifier:of-type: type "http://terminology.hl7.org/CodeSystem/v2-0203"|"MR" value "123"`},
		{"token missing", "Patient", "active:missing=true", "active:missing=true"},
		{"token ge is a code", "Observation", "status=gen", `status: code "gen"`},
		{"_id", "Patient", "_id=a,b", `_id: code "a" OR code "b"`},
		{"_tag", "Patient", "_tag=http://s|x", `_tag: "http://s"|"x"`},

		// reference x form and modifier
		{"reference type/id", "Patient", "general-practitioner=Practitioner/1", "general-practitioner: ref type=Practitioner id=1"},
		{"reference id, one target", "Patient", "organization=1", "organization: ref type=Organization id=1"},
		{"reference id, several targets", "Observation", "subject=123", "subject: ref id=123"},
		{"reference type modifier", "Observation", "subject:Patient=123", "subject:Patient: ref type=Patient id=123"},
		{"reference type modifier and type", "Observation", "subject:Patient=Patient/123", "subject:Patient: ref type=Patient id=123"},
		{"reference version", "Observation", "subject=Patient/123/_history/2", "subject: ref type=Patient id=123 version=2"},
		{"reference absolute", "Observation", "subject=http://other.org/fhir/Patient/123", "subject: ref type=Patient id=123 url=http://other.org/fhir/Patient/123"},
		{"reference absolute version", "Observation", "subject=https://x/Patient/1/_history/3", "subject: ref type=Patient id=1 version=3 url=https://x/Patient/1/_history/3"},
		{"reference urn", "Observation", "subject=urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", "subject: ref url=urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},
		{"reference identifier", "Observation", "subject:identifier=http://sys|123", `subject:identifier: identifier "http://sys"|"123"`},
		{"reference identifier value", "Observation", "subject:identifier=123", `subject:identifier: identifier code "123"`},
		{"reference missing", "Observation", "subject:missing=true", "subject:missing=true"},
		{"reference OR", "Observation", "patient=Patient/1,2", "patient: ref type=Patient id=1 OR ref type=Patient id=2"},

		// quantity x prefix and form
		{"quantity", "Observation", "value-quantity=5.4", "value-quantity: eq 5.4"},
		{"quantity system code", "Observation", "value-quantity=ge5.4|" + ucum + "|mg", `value-quantity: ge 5.4 "http://unitsofmeasure.org"|"mg"`},
		{"quantity unit", "Observation", "value-quantity=lt5.4||mg", `value-quantity: lt 5.4 ""|"mg"`},
		{"quantity empty unit", "Observation", "value-quantity=5.4||", "value-quantity: eq 5.4"},
		{"quantity exponent ap", "Observation", "value-quantity=ap5.40e-3|" + ucum + "|g", `value-quantity: ap 5.40e-3 "http://unitsofmeasure.org"|"g"`},
		{"quantity gt le sa eb ne", "Encounter", "length=gt1,le2,sa3,eb4,ne5", "length: gt 1 OR le 2 OR sa 3 OR eb 4 OR ne 5"},
		{"quantity missing", "Observation", "value-quantity:missing=true", "value-quantity:missing=true"},

		// uri x modifier
		{"uri", "Patient", "_profile=http://hl7.org/fhir/StructureDefinition/vitalsigns", `_profile: "http://hl7.org/fhir/StructureDefinition/vitalsigns"`},
		{"uri above", "Patient", "_profile:above=http://a/b/c", `_profile:above: "http://a/b/c"`},
		{"uri below", "Patient", "_source:below=http://a/", `_source:below: "http://a/"`},
		{"uri missing", "Patient", "_source:missing=true", "_source:missing=true"},

		// composite
		{"composite quantity", "Observation", "code-value-quantity=" + loinc + "|8480-6$gt100", `code-value-quantity: ("http://loinc.org"|"8480-6" $ gt 100)`},
		{"composite quantity unit", "Observation", "code-value-quantity=" + loinc + "|8480-6$lt60|" + ucum + "|mm[Hg]", `code-value-quantity: ("http://loinc.org"|"8480-6" $ lt 60 "http://unitsofmeasure.org"|"mm[Hg]")`},
		{"composite component", "Observation", "component-code-value-quantity=" + loinc + "|8462-4$ge90", `component-code-value-quantity: ("http://loinc.org"|"8462-4" $ ge 90)`},
		{"composite concept", "Observation", "code-value-concept=" + loinc + "|x$http://snomed.info/sct|y", `code-value-concept: ("http://loinc.org"|"x" $ "http://snomed.info/sct"|"y")`},
		{"composite date", "Observation", "code-value-date=x$ge1980", `code-value-date: (code "x" $ ge ` + y1980 + ")"},
		{"composite escaped dollar", "Observation", `code-value-string=x$ab\$c`, `code-value-string: (code "x" $ "ab$c")`},
		{"composite OR", "Observation", "combo-code-value-quantity=a$1,b$2", `combo-code-value-quantity: (code "a" $ eq 1) OR (code "b" $ eq 2)`},
		{"composite missing", "Observation", "code-value-quantity:missing=true", "code-value-quantity:missing=true"},

		// chains
		{"chain typed", "Observation", "subject:Patient.name=peter", `subject:Patient.name: "peter"`},
		{"chain one target", "Observation", "patient.identifier=http://sys|1", `patient:Patient.identifier: "http://sys"|"1"`},
		{"chain indexed target", "Observation", "encounter.status=finished", `encounter:Encounter.status: code "finished"`},
		{"chain only indexed type with param", "Observation", "subject.name=x", `subject:Patient.name: "x"`},
		{"chain two links", "Observation", "patient.organization.name=Acme", `patient:Patient.organization:Organization.name: "Acme"`},
		{"chain modifier at end", "Observation", "subject:Patient.name:exact=Peter", `subject:Patient.name:exact: "Peter"`},
		{"chain date", "Observation", "patient.birthdate=ge1980", "patient:Patient.birthdate: ge " + y1980},
		{"chain missing", "Observation", "patient.organization:missing=true", "patient:Patient.organization:missing=true"},

		// _has
		{"has", "Patient", "_has:Observation:patient:code=1234-5", `_has:Observation:patient:code: code "1234-5"`},
		{"has modifier", "Patient", "_has:Observation:subject:code:text=glucose", `_has:Observation:subject:code:text: text "glucose"`},
		{"has date", "Patient", "_has:Encounter:patient:date=ge2024", "_has:Encounter:patient:date: ge [2024-01-01T00:00:00Z,2025-01-01T00:00:00Z)"},
		{"has nested", "Patient", "_has:Observation:patient:_has:Observation:has-member:status=final", `_has:Observation:patient:_has:Observation:has-member:status: code "final"`},
		{"has then chain", "Patient", "_has:Observation:patient:encounter.status=finished", `_has:Observation:patient:encounter:Encounter.status: code "finished"`},

		// result parameters
		{"sort", "Patient", "_sort=-birthdate,family", "sort birthdate desc; sort family asc"},
		{"sort repeated", "Patient", "_sort=family&_sort=-_lastUpdated", "sort family asc; sort _lastUpdated desc"},
		{"count", "Patient", "_count=5", "count=5"},
		{"count zero", "Patient", "_count=0", "count=0"},
		{"count default", "Patient", "_count=20", ""},
		{"count capped", "Patient", "_count=5000", "count=1000"},
		{"count huge capped", "Patient", "_count=99999999999999999999", "count=1000"},
		{"total", "Patient", "_total=accurate", "total=accurate"},
		{"summary", "Patient", "_summary=count", "summary=count"},
		{"summary false", "Patient", "_summary=false", "summary=false"},
		{"elements", "Patient", "_elements=name,Patient.gender,name", "elements=name,gender"},
		{"include", "Observation", "_include=Observation:patient", "include Observation:patient"},
		{"include target", "Observation", "_include=Observation:subject:Patient", "include Observation:subject:Patient"},
		{"include iterate", "Observation", "_include=Observation:patient&_include:iterate=Patient:organization", "include Observation:patient; include Patient:organization iterate"},
		{"include recurse", "Observation", "_include:recurse=Patient:organization", "include Patient:organization iterate"},
		{"include wildcard", "Observation", "_include=*", "include Observation:*"},
		{"include type wildcard", "Observation", "_include=Observation:*", "include Observation:*"},
		{"include comma list", "Observation", "_include=Observation:patient,Observation:encounter", "include Observation:patient; include Observation:encounter"},
		{"include duplicate", "Observation", "_include=Observation:patient&_include=Observation:patient", "include Observation:patient"},
		{"revinclude", "Patient", "_revinclude=Observation:subject", "revinclude Observation:subject"},
		{"revinclude iterate", "Patient", "_revinclude:iterate=Observation:has-member", "revinclude Observation:has-member iterate"},
		{"revinclude wildcard", "Patient", "_revinclude=*", "revinclude *"},
		{"contained false", "Patient", "_contained=false&_containedType=container", ""},
		{"format and pretty", "Patient", "_format=json&_pretty=true", ""},
		{"cursor", "Patient", "_cursor=opaque-123", "cursor=opaque-123"},

		// lenient: unknown and unsupported parameters are ignored
		{"unknown", "Patient", "foo=bar&family=x", `family: "x"; ignored=foo`},
		{"unsupported _text", "Patient", "_text=x", "ignored=_text"},
		{"unknown modifier owner", "Patient", "foo:exact=x", "ignored=foo:exact"},
		{"revinclude of unindexed type", "Patient", "_revinclude=Provenance:target", "ignored=_revinclude=Provenance:target"},
		{"include unknown param", "Observation", "_include=Observation:nope", "ignored=_include=Observation:nope"},
		{"chain to unindexed type", "Observation", "subject:Group.name=x", "ignored=subject:Group.name"},
		{"chain unknown end", "Observation", "patient.foo=x", "ignored=patient.foo"},
		{"has unindexed type", "Patient", "_has:Condition:patient:code=x", "ignored=_has:Condition:patient:code"},
		{"_type in type search", "Patient", "_type=Patient", "ignored=_type"},

		// system-level search
		{"system", "", "_id=1&_lastUpdated=ge2024", "types=Patient,Encounter,Observation,Appointment,Organization,Practitioner; _id: code \"1\"; _lastUpdated: ge [2024-01-01T00:00:00Z,2025-01-01T00:00:00Z)"},
		{"system _type", "", "_type=Observation,Patient&_tag=x", `types=Observation,Patient; _tag: code "x"`},
		{"system type param ignored", "", "_type=Observation,Patient&name=x", "types=Observation,Patient; ignored=name"},
		{"system has ignored", "", "_has:Observation:patient:code=x", "types=Patient,Encounter,Observation,Appointment,Organization,Practitioner; ignored=_has:Observation:patient:code"},
		{"system include", "", "_type=Observation&_include=Observation:patient", "types=Observation; include Observation:patient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parse(t, tt.typ, tt.query, false)
			if err != nil {
				t.Fatalf("%s?%s: %v", tt.typ, tt.query, err)
			}
			if got := describe(q); got != tt.want {
				t.Errorf("%s?%s:\n got %s\nwant %s", tt.typ, tt.query, got, tt.want)
			}
			checkRoundTrip(t, q)
		})
	}
}

// checkRoundTrip parses q.SelfParams again, strictly: the canonical form
// holds only what was understood, and must say the same.
func checkRoundTrip(t *testing.T, q *search.Query) {
	t.Helper()
	again, err := search.ParseQuery(testRegistry(t), q.Type, q.SelfParams, true)
	if err != nil {
		t.Fatalf("SelfParams %s do not parse again: %v", q.SelfParams.Encode(), err)
	}
	if a, b := dump(q), dump(again); a != b {
		t.Fatalf("SelfParams %s parse to a different query:\n got %s\nwant %s", q.SelfParams.Encode(), b, a)
	}
}

// dump prints everything in q but Ignored, for equality checks. Param
// pointers print as addresses, which is right: both come from one registry.
func dump(q *search.Query) string {
	c := *q
	c.Ignored = nil
	return fmt.Sprintf("%+v", c)
}

// TestPrefixes runs every prefix on every type that takes one.
func TestPrefixes(t *testing.T) {
	for _, pre := range []string{"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"} {
		want := search.Prefix(pre)
		if pre == "" {
			want = search.PrefixEq
		}
		for _, tt := range []struct{ typ, key, value string }{
			{"Observation", "test-number", "2.5"},
			{"Patient", "birthdate", "1980-02"},
			{"Observation", "value-quantity", "2.5|" + ucum + "|mg"},
			{"Observation", "code-value-quantity", "c$" + pre + "2.5"},
		} {
			value := pre + tt.value
			if tt.key == "code-value-quantity" {
				value = tt.value
			}
			q, err := search.ParseQuery(testRegistry(t), tt.typ, url.Values{tt.key: {value}}, true)
			if err != nil {
				t.Errorf("%s?%s=%s: %v", tt.typ, tt.key, value, err)
				continue
			}
			o := q.Conditions[0].Operands[0]
			if len(o.Parts) > 0 {
				o = o.Parts[1]
			}
			if o.Prefix != want {
				t.Errorf("%s?%s=%s: got prefix %q, want %q", tt.typ, tt.key, value, o.Prefix, want)
			}
		}
	}
}

func TestParseQueryCanonical(t *testing.T) {
	tests := []struct{ typ, query, self string }{
		{"Patient", "birthdate=eq1980&family=O%5C,Brien", `birthdate=1980&family=O%5C%2CBrien`},
		{"Patient", "family=a|b", `family=a%5C%7Cb`},
		{"Observation", "subject.name=x&_count=20&_sort=-date", `_sort=-date&subject%3APatient.name=x`},
		{"Observation", "patient=123", `patient=Patient%2F123`},
		{"Observation", "subject:Patient=Patient/123", `subject%3APatient=123`},
		{"Patient", "foo=1&_format=json&gender=male", `_format=json&gender=male`},
		{"Patient", "_include:recurse=Patient:organization&_count=5000", `_count=1000&_include%3Aiterate=Patient%3Aorganization`},
		{"Encounter", "date=ge2024-03-01T10:00:00+02:00", `date=ge2024-03-01T10%3A00%3A00%2B02%3A00`},
	}
	for _, tt := range tests {
		q, err := parse(t, tt.typ, tt.query, false)
		if err != nil {
			t.Errorf("%s?%s: %v", tt.typ, tt.query, err)
			continue
		}
		if got := q.SelfParams.Encode(); got != tt.self {
			t.Errorf("%s?%s: got self %s, want %s", tt.typ, tt.query, got, tt.self)
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	const (
		value        = "value"
		notSupported = "not-supported"
	)
	tests := []struct {
		name, typ, query string
		strict           bool
		code             string
		param, val       string // both must appear, quoted, in the diagnostics ("" for no value)
	}{
		// malformed values
		{"bad date", "Patient", "birthdate=1980-13", false, value, "birthdate", "1980-13"},
		{"bad day", "Patient", "birthdate=1981-02-29", false, value, "birthdate", "1981-02-29"},
		{"bad prefix", "Patient", "birthdate=xx1980", false, value, "birthdate", "xx1980"},
		{"prefix alone", "Patient", "birthdate=ge", false, value, "birthdate", "ge"},
		{"bad date in OR", "Patient", "birthdate=1980,19800", false, value, "birthdate", "1980,19800"},
		{"bad number", "Observation", "test-number=1.", false, value, "test-number", "1."},
		{"number plus", "Observation", "test-number=%2B1", false, value, "test-number", "+1"},
		{"number huge exponent", "Observation", "test-number=1e5000", false, value, "test-number", "1e5000"},
		{"number prefix unknown", "Observation", "test-number=zz1", false, value, "test-number", "zz1"},
		{"quantity two parts", "Observation", "value-quantity=5.4|mg", false, value, "value-quantity", "5.4|mg"},
		{"quantity not a number", "Observation", "value-quantity=abc", false, value, "value-quantity", "abc"},
		{"quantity bad prefix", "Observation", "value-quantity=xy5", false, value, "value-quantity", "xy5"},
		{"token three parts", "Patient", "identifier=a|b|c", false, value, "identifier", "a|b|c"},
		{"token bare pipe", "Patient", "identifier=|", false, value, "identifier", "|"},
		{"of-type two parts", "Patient", "identifier:of-type=a|b", false, value, "identifier:of-type", "a|b"},
		{"of-type empty part", "Patient", "identifier:of-type=a||v", false, value, "identifier:of-type", "a||v"},
		{"missing not boolean", "Patient", "active:missing=yes", false, value, "active:missing", "yes"},
		{"reference unknown type", "Observation", "subject=Foo/1", false, value, "subject", "Foo/1"},
		{"reference not a target", "Observation", "subject=Practitioner/1", false, value, "subject", "Practitioner/1"},
		{"reference bad id", "Observation", "subject=Patient/a%20b", false, value, "subject", "Patient/a b"},
		{"reference bad shape", "Observation", "subject=a/b/c", false, value, "subject", "a/b/c"},
		{"reference pipe", "Observation", "subject=http://x|1", false, value, "subject", "http://x|1"},
		{"reference type clash", "Observation", "subject:Patient=Group/1", false, value, "subject:Patient", "Group/1"},
		{"reference URL not a target", "Observation", "patient=http://x/Group/1", false, value, "patient", "http://x/Group/1"},
		{"composite parts", "Observation", "code-value-quantity=x", false, value, "code-value-quantity", "x"},
		{"composite bad part", "Observation", "code-value-quantity=x$abc", false, value, "code-value-quantity", "x$abc"},
		{"composite empty part", "Observation", "code-value-quantity=$5", false, value, "code-value-quantity", "$5"},

		// modifiers that do not fit the type
		{"exact on token", "Patient", "gender:exact=male", false, value, "gender:exact", "male"},
		{"not on string", "Patient", "family:not=x", false, value, "family:not", "x"},
		{"text on string", "Patient", "family:text=x", false, value, "family:text", "x"},
		{"contains on date", "Patient", "birthdate:contains=1980", false, value, "birthdate:contains", "1980"},
		{"exact on number", "Observation", "test-number:exact=1", false, value, "test-number:exact", "1"},
		{"not on quantity", "Observation", "value-quantity:not=1", false, value, "value-quantity:not", "1"},
		{"above on composite", "Observation", "code-value-quantity:above=a$1", false, value, "code-value-quantity:above", "a$1"},
		{"identifier on token", "Patient", "gender:identifier=x", false, value, "gender:identifier", "x"},
		{"type on string", "Patient", "family:Patient=x", false, value, "family:Patient", "x"},
		{"type not a target", "Observation", "subject:Practitioner=1", false, value, "subject:Practitioner", "1"},
		{"unknown modifier", "Observation", "subject:foo=1", false, value, "subject:foo", "1"},
		{"empty modifier", "Patient", "family:=x", false, value, "family:", "x"},
		{"of-type on non-identifier", "Patient", "gender:of-type=a|b|c", false, value, "gender:of-type", "a|b|c"},
		{"missing on uri bad", "Patient", "_profile:contains=x", false, value, "_profile:contains", "x"},

		// known modifiers the server does not answer
		{"token in", "Observation", "code:in=http://vs", false, notSupported, "code:in", "http://vs"},
		{"token not-in", "Observation", "code:not-in=http://vs", false, notSupported, "code:not-in", "http://vs"},
		{"token below", "Observation", "code:below=x", false, notSupported, "code:below", "x"},
		{"token above", "Observation", "code:above=x", false, notSupported, "code:above", "x"},
		{"reference above", "Observation", "subject:above=Patient/1", false, notSupported, "subject:above", "Patient/1"},

		// chains and _has
		{"ambiguous chain", "Observation", "performer.name=x", false, value, "performer.name", "x"},
		{"chain on non-reference", "Patient", "family.name=x", false, value, "family.name", "x"},
		{"chain with modifier", "Observation", "subject:missing.name=x", false, value, "subject:missing.name", "x"},
		{"chain to non-target", "Observation", "subject:Practitioner.name=x", false, value, "subject:Practitioner.name", "x"},
		{"chain empty", "Observation", "subject.=x", false, value, "subject.", "x"},
		{"chain too long", "Observation", "patient.organization.partof.partof.partof.name=x", false, notSupported, "patient.organization.partof.partof.partof.name", "x"},
		{"chain bad end value", "Observation", "patient.birthdate=nope", false, value, "patient.birthdate", "nope"},
		{"has non-reference", "Patient", "_has:Observation:code:status=final", false, value, "_has:Observation:code:status", "final"},
		{"has wrong target", "Patient", "_has:Observation:encounter:code=1", false, value, "_has:Observation:encounter:code", "1"},
		{"has malformed", "Patient", "_has:Observation:patient=1", false, value, "_has:Observation:patient", "1"},
		{"has not a type", "Patient", "_has:Foo:x:y=1", false, value, "_has:Foo:x:y", "1"},

		// result parameters
		{"sort unknown", "Patient", "_sort=foo", false, notSupported, "_sort", "foo"},
		{"sort composite", "Observation", "_sort=code-value-quantity", false, notSupported, "_sort", "code-value-quantity"},
		{"sort twice", "Observation", "_sort=date,-date", false, value, "_sort", "date,-date"},
		{"sort modifier", "Patient", "_sort:asc=family", false, value, "_sort:asc", "family"},
		{"count negative", "Patient", "_count=-1", false, value, "_count", "-1"},
		{"count text", "Patient", "_count=ten", false, value, "_count", "ten"},
		{"count twice", "Patient", "_count=1&_count=2", false, value, "_count", "1,2"},
		{"count modifier", "Patient", "_count:x=5", false, value, "_count:x", "5"},
		{"total", "Patient", "_total=all", false, value, "_total", "all"},
		{"summary", "Patient", "_summary=yes", false, value, "_summary", "yes"},
		{"elements", "Patient", "_elements=na-me", false, value, "_elements", "na-me"},
		{"contained true", "Patient", "_contained=true", false, notSupported, "_contained", "true"},
		{"contained both", "Patient", "_contained=both", false, notSupported, "_contained", "both"},
		{"contained bad", "Patient", "_contained=maybe", false, value, "_contained", "maybe"},
		{"containedType", "Patient", "_containedType=contained", false, notSupported, "_containedType", "contained"},
		{"cursor twice", "Patient", "_cursor=a&_cursor=b", false, value, "_cursor", "a,b"},
		{"include shape", "Observation", "_include=Observation", false, value, "_include", "Observation"},
		{"include not a type", "Observation", "_include=Foo:bar", false, value, "_include", "Foo:bar"},
		{"include non-reference", "Observation", "_include=Observation:status", false, value, "_include", "Observation:status"},
		{"include other source", "Observation", "_include=Patient:organization", false, value, "_include", "Patient:organization"},
		{"include bad target", "Observation", "_include=Observation:subject:Practitioner", false, value, "_include", "Observation:subject:Practitioner"},
		{"include bad modifier", "Observation", "_include:foo=Observation:patient", false, value, "_include:foo", "Observation:patient"},
		{"revinclude not to matches", "Patient", "_revinclude=Observation:encounter", false, value, "_revinclude", "Observation:encounter"},
		{"revinclude target not matches", "Patient", "_revinclude=Observation:subject:Group", false, value, "_revinclude", "Observation:subject:Group"},

		// strict: unknown and unsupported parameters are errors
		{"strict unknown", "Patient", "foo=bar", true, notSupported, "foo", ""},
		{"strict _text", "Patient", "_text=x", true, notSupported, "_text", ""},
		{"strict revinclude", "Patient", "_revinclude=Provenance:target", true, notSupported, "_revinclude", "Provenance:target"},
		{"strict chain to unindexed", "Observation", "subject:Group.name=x", true, notSupported, "subject:Group.name", ""},
		{"strict chain unknown end", "Observation", "patient.foo=x", true, notSupported, "patient.foo", ""},
		{"strict has", "Patient", "_has:Condition:patient:code=x", true, notSupported, "_has:Condition:patient:code", ""},

		// system-level search
		{"system _type", "", "_type=Foo", false, value, "_type", "Foo"},
		{"system _type unindexed", "", "_type=Basic", false, notSupported, "_type", "Basic"},
		{"system strict", "", "_type=Patient,Observation&name=x", true, notSupported, "name", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parse(t, tt.typ, tt.query, tt.strict)
			if err == nil {
				t.Fatalf("%s?%s (strict %v): got %s, want an error", tt.typ, tt.query, tt.strict, describe(q))
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.Invalid || len(fe.Issues) == 0 {
				t.Fatalf("%s?%s: got %T %v, want a *fhir.Error of kind Invalid", tt.typ, tt.query, err, err)
			}
			is := fe.Issues[0]
			if is.Code != tt.code {
				t.Errorf("%s?%s: got code %q, want %q (%s)", tt.typ, tt.query, is.Code, tt.code, is.Diagnostics)
			}
			if !strings.Contains(is.Diagnostics, strconv.Quote(tt.param)) {
				t.Errorf("%s?%s: diagnostics %q do not name parameter %q", tt.typ, tt.query, is.Diagnostics, tt.param)
			}
			if tt.val != "" && !strings.Contains(is.Diagnostics, strconv.Quote(tt.val)) {
				t.Errorf("%s?%s: diagnostics %q do not name value %q", tt.typ, tt.query, is.Diagnostics, tt.val)
			}
		})
	}
}

func TestParseQueryReportsEveryProblem(t *testing.T) {
	_, err := parse(t, "Patient", "birthdate=x&gender:exact=y&foo=1&_count=-1", true)
	var fe *fhir.Error
	if !errors.As(err, &fe) {
		t.Fatalf("got %v, want a *fhir.Error", err)
	}
	var got []string
	for _, is := range fe.Issues {
		got = append(got, is.Code)
	}
	// In key order: _count, birthdate, foo, gender:exact.
	if want := "value value not-supported value"; strings.Join(got, " ") != want {
		t.Errorf("got issue codes %v, want %s: %v", got, want, err)
	}
}

func TestParseQueryUnknownType(t *testing.T) {
	_, err := search.ParseQuery(testRegistry(t), "Basic", url.Values{"code": {"x"}}, false)
	if fhir.KindOf(err) != fhir.NotFound {
		t.Errorf("Basic?code=x: got %v, want a NotFound error", err)
	}
}

func TestParseQueryAmbiguousChainListsTargets(t *testing.T) {
	_, err := parse(t, "Appointment", "actor.name=x", false)
	if err == nil || !strings.Contains(err.Error(), "Practitioner, Patient") || !strings.Contains(err.Error(), "actor:Practitioner.name") {
		t.Errorf("Appointment?actor.name=x: got %v, want an error listing Practitioner, Patient and suggesting actor:Practitioner.name", err)
	}
}

func TestParseQueryStrictAcceptsKnown(t *testing.T) {
	q, err := parse(t, "Observation", "patient=1&code=x&_format=json&_pretty=true&_include=Observation:patient&_count=5", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Ignored) != 0 {
		t.Errorf("strict: ignored %v", q.Ignored)
	}
}

func TestParseQueryStepsAndDefaults(t *testing.T) {
	q, err := parse(t, "Patient", "_has:Observation:patient:encounter.status=finished", false)
	if err != nil {
		t.Fatal(err)
	}
	if q.Count != search.DefaultCount || len(q.Has) != 1 || len(q.Chains) != 0 {
		t.Fatalf("got %s", describe(q))
	}
	steps := q.Has[0].Steps
	want := []struct {
		param, typ string
		reverse    bool
	}{{"patient", "Observation", true}, {"encounter", "Encounter", false}}
	if len(steps) != len(want) {
		t.Fatalf("got %d steps, want %d", len(steps), len(want))
	}
	for i, w := range want {
		if s := steps[i]; s.Param.Code != w.param || s.Type != w.typ || s.Reverse != w.reverse {
			t.Errorf("step %d: got %s %s reverse=%v, want %s %s reverse=%v", i, s.Param.Code, s.Type, s.Reverse, w.param, w.typ, w.reverse)
		}
	}
	if c := q.Has[0].Condition; c.Param.Code != "status" || c.Operands[0].Token.Code != "finished" {
		t.Errorf("condition: got %s", describeCondition(c.Key(), c))
	}
}

func TestQueryNumberRange(t *testing.T) {
	tests := []struct{ in, lo, hi string }{
		{"100", "199/2", "201/2"},
		{"100.00", "19999/200", "20001/200"},
		{"2.0", "39/20", "41/20"},
		{"1e2", "50", "150"},
		{"-0.5", "-11/20", "-9/20"},
		{"5.40e-3", "1079/200000", "1081/200000"},
	}
	for _, tt := range tests {
		n, err := search.ParseQueryNumber(tt.in)
		if err != nil {
			t.Errorf("ParseQueryNumber(%q): %v", tt.in, err)
			continue
		}
		lo, hi := n.Range()
		if lo.RatString() != tt.lo || hi.RatString() != tt.hi {
			t.Errorf("ParseQueryNumber(%q).Range(): got [%s, %s), want [%s, %s)", tt.in, lo.RatString(), hi.RatString(), tt.lo, tt.hi)
		}
	}
	for _, in := range []string{"", "-", ".5", "5.", "1e", "1e+", "+1", "1,5", "0x10", "1e1001", strings.Repeat("1", 65)} {
		if n, err := search.ParseQueryNumber(in); err == nil {
			t.Errorf("ParseQueryNumber(%q): got %s, want an error", in, n)
		}
	}
}

// FuzzParseQuery: no panics; every error is a *fhir.Error with issues;
// a query that parses has SelfParams that parse again, strictly, to an
// equal Query; and a lenient parse that ignored nothing equals the strict
// parse.
func FuzzParseQuery(f *testing.F) {
	for _, s := range [][2]string{
		{"Patient", "name=peter&birthdate=ge1980-02&_count=5&_sort=-birthdate"},
		{"Observation", "code=http://loinc.org|8480-6,|x&value-quantity=ap5.4||mg&subject:Patient.name:exact=A"},
		{"Observation", `code-value-quantity=a\$b$lt6|u|mg&patient.organization.name=x&_include:iterate=Patient:organization`},
		{"Patient", "_has:Observation:patient:code:text=a\\,b&identifier:of-type=s|MR|1&_revinclude=*"},
		{"", "_type=Patient,Observation&_lastUpdated=sa2024-01-01T10:00:00+01:00"},
		{"Encounter", "date=eb2024-03&length=1e2&subject=urn:uuid:x&_elements=id,status&_summary=data&_total=accurate"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, typ, raw string) {
		reg := testRegistry(t)
		values, _ := url.ParseQuery(raw)
		q, err := search.ParseQuery(reg, typ, values, false)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) || len(fe.Issues) == 0 {
				t.Fatalf("%s?%s: error %v is not a *fhir.Error with issues", typ, raw, err)
			}
			return
		}
		again, err := search.ParseQuery(reg, typ, q.SelfParams, true)
		if err != nil {
			t.Fatalf("%s?%s: SelfParams %s do not parse again: %v", typ, raw, q.SelfParams.Encode(), err)
		}
		if a, b := dump(q), dump(again); a != b {
			t.Fatalf("%s?%s: SelfParams %s parse to a different query:\n got %s\nwant %s", typ, raw, q.SelfParams.Encode(), b, a)
		}
		if len(q.Ignored) == 0 {
			strict, err := search.ParseQuery(reg, typ, values, true)
			if err != nil {
				t.Fatalf("%s?%s: lenient parse ignored nothing, strict fails: %v", typ, raw, err)
			}
			if dump(strict) != dump(q) {
				t.Fatalf("%s?%s: strict and lenient parses differ", typ, raw)
			}
		}
	})
}

func BenchmarkParseQuery(b *testing.B) {
	reg := testRegistry(b)
	values, _ := url.ParseQuery("patient=Patient/123&code=http://loinc.org|8480-6,http://loinc.org|8462-4&date=ge2024-01-01&date=lt2024-02-01&_sort=-date&_count=50&_include=Observation:patient")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := search.ParseQuery(reg, "Observation", values, false); err != nil {
			b.Fatal(err)
		}
	}
}
