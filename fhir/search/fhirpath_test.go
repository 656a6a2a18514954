package search_test

import (
	"strings"
	"sync"
	"testing"

	"healthhub/fhir/search"
)

var loaded = sync.OnceValues(search.Load)

// mustLoad is the registry, loaded once for all tests (Load parses the whole
// R4 definitions bundle).
func mustLoad(t testing.TB) *search.Registry {
	t.Helper()
	r, err := loaded()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Every expression of every parameter of the exchange's types, and every
// composite component, compiles: the subset covers the registry, and a
// definition outside it fails here rather than indexing nothing.
func TestCompileEveryRegistryExpression(t *testing.T) {
	r := mustLoad(t)
	n := 0
	for _, typ := range search.SearchTypes {
		params := r.Params(typ)
		if len(params) == 0 {
			t.Errorf("%s: no parameters", typ)
		}
		for _, p := range params {
			n++
			if _, err := search.CompilePath(p.Expression); err != nil {
				t.Errorf("%s?%s %q: %v", typ, p.Code, p.Expression, err)
			}
			for _, c := range p.Components {
				n++
				if _, err := search.CompilePath(c.Expression); err != nil {
					t.Errorf("%s?%s component %s %q: %v", typ, p.Code, c.Param.Code, c.Expression, err)
				}
			}
			if p.Type == search.Composite && len(p.Components) == 0 {
				t.Errorf("%s?%s: composite without components", typ, p.Code)
			}
		}
	}
	if err := r.Compile(); err != nil {
		t.Errorf("Compile: %v", err)
	}
	t.Logf("%d expressions compiled", n)
}

func TestCompileRejects(t *testing.T) {
	tests := []struct{ name, expr, want string }{
		{"unknown function", "Patient.name.given.join(',')", "function join() is not supported"},
		{"unknown function at the start", "foo()", "function foo() is not supported"},
		{"indexer", "Patient.name[0]", "indexers are not supported"},
		{"arithmetic", "Observation.value.value + 1", `operator "+" is not supported`},
		{"comparison", "Patient.birthDate < Patient.deceased", `operator "<" is not supported`},
		{"equivalence", "Patient.gender ~ 'male'", `operator "~" is not supported`},
		{"membership", "Patient.gender in Patient.gender", `operator "in" is not supported`},
		{"implies", "Patient.active implies Patient.gender", `operator "implies" is not supported`},
		{"unary minus", "-Patient.active", `unary "-" is not supported`},
		{"date literal", "Patient.birthDate = @2000", `unexpected character '@'`},
		{"unknown variable", "%ucum", "variable %ucum is not supported"},
		{"unclosed call", "Patient.telecom.where(system='email'", `expected ")"`},
		{"unterminated string", "Patient.telecom.where(system='email)", "unterminated string"},
		{"double dot", "Patient..name", "expected a name"},
		{"empty", "", "unexpected end of expression"},
		{"trailing", "Patient.name )", `unexpected ")"`},
		{"argument to first", "Patient.name.first(1)", `expected ")"`},
		{"as without a type", "Observation.value as", "expected a type name"},
		{"comment", "Patient.name // x", "comments are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := search.CompilePath(tt.expr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%q: got error %v, want one containing %q", tt.expr, err, tt.want)
			}
		})
	}
}

const patientJSON = `{
  "resourceType": "Patient", "id": "p1",
  "meta": {"profile": ["http://example.org/p"], "lastUpdated": "2024-01-02T03:04:05Z"},
  "contained": [{"resourceType": "Practitioner", "id": "gp"}],
  "identifier": [{"system": "urn:mrn", "value": "123"}, {"value": "x"}],
  "active": true,
  "name": [{"family": "Müller", "given": ["Anna", null, "Maria"]}, {"family": "Smith", "given": ["Anna"]}],
  "_birthDate": {"extension": [{"url": "http://example.org/x", "valueString": "y"}]},
  "birthDate": "1980-05-17",
  "deceasedBoolean": false,
  "telecom": [{"system": "phone", "value": "555-1"}, {"system": "email", "value": "a@b.org"}, {"system": "email", "value": "c@d.org"}],
  "generalPractitioner": [{"reference": "#gp"}, {"reference": "Organization/o1"}],
  "link": [{"other": {"reference": "Patient/p2"}, "type": "seealso"}]
}`

const observationJSON = `{
  "resourceType": "Observation", "id": "o1", "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "Blood pressure"},
  "subject": {"reference": "Patient/p1"},
  "performer": [
    {"reference": "http://other.org/fhir/Practitioner/d1/_history/3"},
    {"reference": "urn:uuid:7f2a", "type": "Patient"},
    {"reference": "urn:uuid:8a3b"},
    {"reference": "Group/g1"},
    {"type": "Patient", "identifier": {"system": "urn:mrn", "value": "9"}}
  ],
  "effectivePeriod": {"start": "2024-01-01T10:00:00Z"},
  "valueQuantity": {"value": 120.50, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 120, "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 80, "code": "mm[Hg]"}},
    {"code": {"text": "note"}, "valueString": "fine"},
    {"code": {"text": "when"}, "valueDateTime": "2024-01-01"}
  ]
}`

func TestEvaluate(t *testing.T) {
	docs := map[string]*search.Document{}
	for name, src := range map[string]string{
		"patient":     patientJSON,
		"observation": observationJSON,
		"alive":       `{"resourceType":"Patient"}`,
		"dead":        `{"resourceType":"Patient","deceasedBoolean":true}`,
		"died":        `{"resourceType":"Patient","deceasedDateTime":"2020-02-02"}`,
		"encounter":   `{"resourceType":"Encounter","statusHistory":[{"status":"planned"}],"classHistory":[{"class":{"code":"AMB"}}]}`,
		"org":         `{"resourceType":"Organization","name":"Acme","alias":["Acme","ACME Inc"]}`,
		"weird":       "{\"resourceType\":\"Basic\",\"div\":1,\"n\":[1.0,1,\"1\"],\"x\":{\"y\":[{\"z\":true},{\"z\":false}]}}",
	} {
		d, err := search.ParseDocument([]byte(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		docs[name] = d
	}
	tests := []struct {
		doc, expr string
		want      string // items' JSON joined by " ; "
	}{
		// Paths, roots and flattening.
		{"patient", "Patient.name.given", `"Anna" ; "Maria" ; "Anna"`},
		{"patient", "Patient.name.family", `"Müller" ; "Smith"`},
		{"patient", "Resource.id", `"p1"`},
		{"patient", "DomainResource.meta.profile", `"http://example.org/p"`},
		{"patient", "Observation.status", ``},
		{"patient", "Patient.birthDate", `"1980-05-17"`},
		{"patient", "Patient.nothing.at.all", ``},
		{"patient", "name.family", `"Müller" ; "Smith"`},
		{"patient", "$this.id", `"p1"`},
		{"patient", "%resource.id", `"p1"`},
		{"patient", "Patient.identifier.value", `"123" ; "x"`},
		// Choice elements.
		{"observation", "Observation.value", `{"value":120.50,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}`},
		{"observation", "(Observation.value as Quantity).value", `120.50`},
		{"observation", "Observation.value as CodeableConcept", ``},
		{"observation", "Observation.value is Quantity", `true`},
		{"observation", "Observation.value is FHIR.Quantity", `true`},
		{"observation", "Observation.value is string", `false`},
		{"observation", "Observation.value.as(Quantity).unit", `"mmHg"`},
		{"observation", "Observation.value.ofType(Quantity).code", `"mm[Hg]"`},
		{"observation", "Observation.effective", `{"start":"2024-01-01T10:00:00Z"}`},
		{"observation", "(Observation.component.value as Quantity).value", `120 ; 80`},
		{"observation", "Observation.component.value.as(string)", `"fine"`},
		{"observation", "Observation.component.value.as(DateTime)", `"2024-01-01"`},
		{"observation", "Observation.component.value.as(System.String)", `"fine"`},
		{"observation", "(Observation.value as CodeableConcept).text", ``},
		{"observation", "Observation.code.text", `"Blood pressure"`},
		{"encounter", "Encounter.status", ``}, // statusHistory is not a choice of status
		{"encounter", "Encounter.class", ``},
		{"died", "(Patient.deceased as dateTime)", `"2020-02-02"`},
		{"dead", "(Patient.deceased as dateTime)", ``},
		// where, resolve, exists.
		{"patient", "Patient.telecom.where(system='email').value", `"a@b.org" ; "c@d.org"`},
		{"patient", "Patient.telecom.where(system='phone')", `{"system":"phone","value":"555-1"}`},
		{"patient", "Patient.telecom.where(system='fax')", ``},
		{"patient", "Patient.generalPractitioner.where(resolve() is Organization)", `{"reference":"Organization/o1"}`},
		{"patient", "Patient.generalPractitioner.where(resolve() is Practitioner)", `{"reference":"#gp"}`},
		{"patient", "Patient.link.other.where(resolve() is Patient).reference", `"Patient/p2"`},
		{"observation", "Observation.subject.where(resolve() is Patient)", `{"reference":"Patient/p1"}`},
		{"observation", "Observation.performer.where(resolve() is Patient).reference", `"urn:uuid:7f2a"`},
		{"observation", "Observation.performer.where(resolve() is Patient).identifier.value", `"9"`},
		{"observation", "Observation.performer.where(resolve() is Practitioner).reference", `"http://other.org/fhir/Practitioner/d1/_history/3"`},
		{"observation", "Observation.performer.where(resolve() is Group).reference", `"Group/g1"`},
		{"patient", "Patient.telecom.exists()", `true`},
		{"patient", "Patient.photo.exists()", `false`},
		{"patient", "Patient.telecom.exists(system='email')", `true`},
		{"patient", "Patient.photo.empty()", `true`},
		{"patient", "Patient.telecom.first().value", `"555-1"`},
		{"patient", "Patient.active.not()", `false`},
		// The deceased expression over its four cases.
		{"alive", "Patient.deceased.exists() and Patient.deceased != false", `false`},
		{"patient", "Patient.deceased.exists() and Patient.deceased != false", `false`},
		{"dead", "Patient.deceased.exists() and Patient.deceased != false", `true`},
		{"died", "Patient.deceased.exists() and Patient.deceased != false", `true`},
		// Three-valued logic and equality.
		{"alive", "Patient.active and true", ``},
		{"alive", "Patient.active or true", `true`},
		{"alive", "Patient.active or false", ``},
		{"alive", "Patient.active and false", `false`},
		{"patient", "Patient.active xor false", `true`},
		{"patient", "Patient.active = true", `true`},
		{"patient", "Patient.gender = 'male'", ``},
		{"patient", "Patient.name.given = 'Anna'", `false`}, // three items against one
		{"weird", "n.first() = 1", `true`},
		{"weird", "n.first() = 1.00", `true`},
		{"weird", "n.first() = '1'", `false`},
		{"weird", "x.y.where(z).z", `true`},
		{"weird", "x.y.where(z.not()).z", `false`},
		{"weird", "`div`", `1`},
		{"weird", "{}", ``},
		// Union removes repeats.
		{"org", "Organization.name | Organization.alias", `"Acme" ; "ACME Inc"`},
		{"observation", "Observation.code.coding.code | Observation.component.code.coding.code", `"85354-9" ; "8480-6" ; "8462-4"`},
		{"observation", "(Observation | Observation.component).code.text", `"Blood pressure" ; "note" ; "when"`},
		{"patient", "Patient.name.given | Patient.name.given", `"Anna" ; "Maria"`},
	}
	for _, tt := range tests {
		t.Run(tt.doc+" "+tt.expr, func(t *testing.T) {
			p, err := search.CompilePath(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range p.Evaluate(docs[tt.doc]) {
				got = append(got, it.JSON())
			}
			if g := strings.Join(got, " ; "); g != tt.want {
				t.Errorf("%s over %s: got %s, want %s", tt.expr, tt.doc, g, tt.want)
			}
		})
	}
}

func TestItemTypes(t *testing.T) {
	d, err := search.ParseDocument([]byte(observationJSON))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ expr, want string }{
		{"Observation.value", "Quantity"},
		{"Observation.component.value", "Quantity Quantity string dateTime"},
		{"Observation.status", "string"},
		{"Observation", "Observation"},
		{"Observation.subject.resolve()", "Patient"},
		{"Observation.code", ""},
		{"Observation.value.value", "decimal"},
		{"Observation.component.value.value", "integer integer"},
		{"Observation.value.exists()", "boolean"},
	}
	for _, tt := range tests {
		p, err := search.CompilePath(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range p.Evaluate(d) {
			got = append(got, it.Type())
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("%s: got types %q, want %q", tt.expr, g, tt.want)
		}
	}
}

// A composite component is evaluated relative to each focus item.
func TestEvaluateAt(t *testing.T) {
	d, err := search.ParseDocument([]byte(observationJSON))
	if err != nil {
		t.Fatal(err)
	}
	focus := mustPath(t, "Observation.component").Evaluate(d)
	code, value := mustPath(t, "code.coding.code"), mustPath(t, "value.as(Quantity).value")
	var got []string
	for i := range focus {
		var c, v []string
		for _, it := range code.EvaluateAt(d, focus[i:i+1]) {
			c = append(c, it.String())
		}
		for _, it := range value.EvaluateAt(d, focus[i:i+1]) {
			v = append(v, it.String())
		}
		got = append(got, strings.Join(c, ",")+"="+strings.Join(v, ","))
	}
	if g, want := strings.Join(got, " "), "8480-6=120 8462-4=80 = ="; g != want {
		t.Errorf("components: got %q, want %q", g, want)
	}
}

func mustPath(t testing.TB, expr string) *search.Path {
	t.Helper()
	p, err := search.CompilePath(expr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
