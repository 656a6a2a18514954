package interaction_test

import (
	"strconv"
	"testing"

	"healthhub/auth"
	"healthhub/fhir"
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

// TestEverythingPatientDeletedBetweenPages: a later page of a deleted
// patient's record is 410, as its first page would be.
func TestEverythingPatientDeletedBetweenPages(t *testing.T) {
	svc := newService(t)
	p := auth.Local()
	for _, r := range []struct{ typ, id, body string }{
		{"Patient", "p1", `{"resourceType":"Patient","id":"p1"}`},
		{"Observation", "o1", `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"a"},"subject":{"reference":"Patient/p1"}}`},
		{"Observation", "o2", `{"resourceType":"Observation","id":"o2","status":"final","code":{"text":"b"},"subject":{"reference":"Patient/p1"}}`},
	} {
		if _, _, err := svc.Update(ctx, p, r.typ, r.id, []byte(r.body), 0); err != nil {
			t.Fatal(err)
		}
	}
	page, err := svc.Everything(ctx, p, interaction.EverythingRequest{ID: "p1", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Delete(ctx, p, "Patient", "p1", 0); err != nil {
		t.Fatal(err)
	}
	_, err = svc.Everything(ctx, p, interaction.EverythingRequest{ID: "p1", Count: 1, Cursor: page.Snapshot + ".1"})
	if fhir.KindOf(err) != fhir.Gone {
		t.Errorf("page 2 after the patient was deleted: %v, want 410", err)
	}
}
