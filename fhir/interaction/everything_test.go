package interaction_test

import (
	"strconv"
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
)

// TestEverythingIncludesAResourceVersionOnce: Practitioner/pr and
// Practitioner/pr/_history/1, its current version, are one resource to include.
func TestEverythingIncludesAResourceVersionOnce(t *testing.T) {
	svc := newService(t)
	p := auth.Local()
	put := func(typ, id, body string) {
		t.Helper()
		if _, _, err := svc.Update(ctx, p, typ, id, []byte(body), 0); err != nil {
			t.Fatal(err)
		}
	}
	put("Patient", "p1", `{"resourceType":"Patient","id":"p1"}`)
	put("Practitioner", "pr", `{"resourceType":"Practitioner","id":"pr","name":[{"family":"X"}]}`)
	put("Observation", "o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"a"},"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/pr"}]}`)
	put("Observation", "o2", `{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"b"},"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Practitioner/pr/_history/1"}]}`)
	for _, req := range []interaction.EverythingRequest{
		{ID: "p1"},
		{ID: "p1", Types: []string{"Practitioner"}},
	} {
		page, err := svc.Everything(ctx, p, req)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, r := range append(page.Matches, page.Included...) {
			seen[r.Path()+"@"+strconv.FormatUint(r.VersionID, 10)]++
		}
		if n := seen["Practitioner/pr@1"]; n != 1 {
			t.Errorf("types %v: Practitioner/pr version 1 served %d times, want once", req.Types, n)
		}
	}
}
