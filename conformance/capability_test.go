package conformance_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
	"healthhub/conformance"
	"healthhub/fhir/search"
	"healthhub/fhir/validate"
)

type capabilityStatement struct {
	ResourceType string   `json:"resourceType"`
	Status       string   `json:"status"`
	Kind         string   `json:"kind"`
	FHIRVersion  string   `json:"fhirVersion"`
	Format       []string `json:"format"`
	Date         string   `json:"date"`
	Software     struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"software"`
	Implementation struct {
		URL string `json:"url"`
	} `json:"implementation"`
	Rest []struct {
		Mode     string `json:"mode"`
		Resource []struct {
			Type        string `json:"type"`
			Interaction []struct {
				Code string `json:"code"`
			} `json:"interaction"`
			Versioning        string                        `json:"versioning"`
			ReadHistory       bool                          `json:"readHistory"`
			UpdateCreate      bool                          `json:"updateCreate"`
			ConditionalRead   string                        `json:"conditionalRead"`
			ConditionalCreate bool                          `json:"conditionalCreate"`
			ConditionalUpdate bool                          `json:"conditionalUpdate"`
			ConditionalDelete string                        `json:"conditionalDelete"`
			SearchParam       []struct{ Name, Type string } `json:"searchParam"`
		} `json:"resource"`
		Interaction []struct {
			Code string `json:"code"`
		} `json:"interaction"`
	} `json:"rest"`
}

// TestCapabilityStatement: GET /metadata describes what the server really
// does, and is a valid R4 CapabilityStatement.
func TestCapabilityStatement(t *testing.T) {
	s := startServer(t, app.Config{})
	r := do(t, "GET", s.base+"/metadata", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /metadata: status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q, want application/fhir+json", ct)
	}
	if err := validate.New().Validate("CapabilityStatement", r.body); err != nil {
		t.Errorf("the CapabilityStatement is not valid R4: %v", err)
	}
	var cs capabilityStatement
	if err := json.Unmarshal(r.body, &cs); err != nil {
		t.Fatal(err)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || cs.Kind != "instance" || cs.Status != "active" {
		t.Errorf("resourceType %q fhirVersion %q kind %q status %q, want CapabilityStatement 4.0.1 instance active",
			cs.ResourceType, cs.FHIRVersion, cs.Kind, cs.Status)
	}
	if cs.Software.Name != "healthhub" || cs.Software.Version != app.Version {
		t.Errorf("software %+v, want healthhub %s", cs.Software, app.Version)
	}
	if cs.Implementation.URL != s.base {
		t.Errorf("implementation.url %q, want %q", cs.Implementation.URL, s.base)
	}
	if !contains(cs.Format, "application/fhir+json") && !contains(cs.Format, "json") {
		t.Errorf("format %v names no JSON", cs.Format)
	}
	for _, f := range cs.Format {
		if strings.Contains(f, "xml") {
			t.Errorf("format %v claims XML, which is 406", cs.Format)
		}
	}
	if len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" {
		t.Fatalf("rest: want one server entry, got %d", len(cs.Rest))
	}
	rest := cs.Rest[0]

	var system []string
	for _, i := range rest.Interaction {
		system = append(system, i.Code)
	}
	if !contains(system, "history-system") {
		t.Errorf("system interactions %v lack history-system", system)
	}
	for _, w := range []string{"transaction", "batch"} {
		if !contains(system, w) {
			t.Errorf("system interactions %v lack %s", system, w)
		}
	}
	// search-system is served by GET [base] and POST [base]/_search: one
	// interaction, declared once.
	if n := slices.Index(system, "search-system"); n < 0 || slices.Contains(system[n+1:], "search-system") {
		t.Errorf("system interactions %v: want search-system exactly once", system)
	}

	// Every R4 type, each with the interactions the server has.
	want := []string{"read", "vread", "create", "update", "patch", "delete", "history-instance", "history-type"}
	types := map[string]bool{}
	for _, res := range rest.Resource {
		if types[res.Type] {
			t.Errorf("%s is listed twice", res.Type)
		}
		types[res.Type] = true
		var got []string
		for _, i := range res.Interaction {
			got = append(got, i.Code)
		}
		for _, w := range want {
			if !contains(got, w) {
				t.Errorf("%s: interactions %v lack %s", res.Type, got, w)
			}
		}
		searchable := slices.Contains(search.SearchTypes, res.Type)
		// Conditional interactions select by search: claimed where search is.
		condDelete := "not-supported"
		if searchable {
			condDelete = "single" // the default of serve --conditional-delete
		}
		if res.ConditionalCreate != searchable || res.ConditionalUpdate != searchable || res.ConditionalDelete != condDelete {
			t.Errorf("%s: conditionalCreate %v conditionalUpdate %v conditionalDelete %q, want %v %v %q",
				res.Type, res.ConditionalCreate, res.ConditionalUpdate, res.ConditionalDelete, searchable, searchable, condDelete)
		}
		if contains(got, "search-type") != searchable {
			t.Errorf("%s: claims search-type %v, want %v (search answers %v)", res.Type, contains(got, "search-type"), searchable, search.SearchTypes)
		}
		if searchable {
			// Every declared parameter is one search accepts, strictly.
			for _, sp := range res.SearchParam {
				q := s.base + "/" + res.Type + "?" + sp.Name + ":missing=false&_summary=count"
				if r := do(t, "GET", q, nil, "Prefer", "handling=strict"); r.status != http.StatusOK {
					t.Errorf("%s declares %s (%s), but a strict search on it answers %d %s", res.Type, sp.Name, sp.Type, r.status, r.body)
				}
			}
			if len(res.SearchParam) < 10 {
				t.Errorf("%s: only %d search parameters declared", res.Type, len(res.SearchParam))
			}
		} else if len(res.SearchParam) > 0 {
			t.Errorf("%s: claims %d search parameters, but is not searchable", res.Type, len(res.SearchParam))
		}
		if res.Versioning != "versioned-update" || !res.ReadHistory || !res.UpdateCreate {
			t.Errorf("%s: versioning %q readHistory %v updateCreate %v, want versioned-update true true",
				res.Type, res.Versioning, res.ReadHistory, res.UpdateCreate)
		}
		if res.ConditionalRead != "full-support" && res.ConditionalRead != "modified-since" && res.ConditionalRead != "not-match" {
			t.Errorf("%s: conditionalRead %q, but If-None-Match and If-Modified-Since work", res.Type, res.ConditionalRead)
		}
		if res.Type == "Patient" && len(got) != len(want)+1 {
			t.Errorf("Patient: interactions %v, want exactly %v", got, want)
		}
	}
	all := conformance.ResourceTypes()
	for _, typ := range all {
		if !types[typ] {
			t.Errorf("%s is an R4 resource type but is not listed", typ)
		}
	}
	if len(types) != len(all) {
		var extra []string
		for typ := range types {
			if !conformance.IsResourceType(typ) {
				extra = append(extra, typ)
			}
		}
		sort.Strings(extra)
		t.Errorf("%d types listed, want %d; not R4: %v", len(types), len(all), extra)
	}
	for _, typ := range indepthTypes {
		if !types[typ] {
			t.Errorf("%s is not listed", typ)
		}
	}

	// What it claims is true: a claimed type answers read and history-type
	// (404 for an unknown id, 200 for history), not 405 or an unknown type.
	for _, typ := range []string{"Patient", "Encounter", "Observation", "Appointment", "Organization", "Library", "VisionPrescription"} {
		if r := do(t, "GET", s.base+"/"+typ+"/nobody", nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s/nobody: status %d, want 404", typ, r.status)
		} else if issues, err := outcomeIssues(r); err != nil || issues[0].Code != "not-found" {
			t.Errorf("GET %s/nobody: %s, want a not-found issue", typ, r.body)
		}
		if r := do(t, "GET", s.base+"/"+typ+"/_history", nil); r.status != http.StatusOK {
			t.Errorf("GET %s/_history: status %d, want 200", typ, r.status)
		}
	}
	// ... and search, not claimed on other types, is not served there.
	if r := do(t, "GET", s.base+"/Library?name=x", nil); r.status == http.StatusOK {
		t.Errorf("GET /Library (search) answered 200, but search-type is not claimed on Library")
	}

	// The same statement every time, in any accepted JSON format.
	r2 := do(t, "GET", s.base+"/metadata?_format=json", nil)
	if string(r2.body) != string(r.body) {
		t.Errorf("GET /metadata?_format=json differs from GET /metadata")
	}
}
