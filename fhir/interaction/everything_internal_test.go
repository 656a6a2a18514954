package interaction

// White-box: $everything must widen a patient through the linkedPatients
// seam (the master patient index plugs in there), like search does.

import (
	"context"
	"slices"
	"testing"

	"healthhub/auth"
	"healthhub/store"
)

func TestEverythingWidensToLinkedPatients(t *testing.T) {
	s := newTestService(t)
	ctx, p := context.Background(), auth.Local()
	for _, b := range []string{
		`{"resourceType":"Patient","id":"a"}`,
		`{"resourceType":"Patient","id":"b"}`,
		`{"resourceType":"Patient","id":"c"}`,
		`{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`,
		`{"resourceType":"Observation","id":"ob","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`,
		`{"resourceType":"Observation","id":"oc","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/c"}}`,
	} {
		obj := struct{ ResourceType, ID string }{}
		_ = jsonUnmarshal(b, &obj)
		if _, _, err := s.Update(ctx, p, obj.ResourceType, obj.ID, []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
	keys := func() []string {
		page, err := s.Everything(ctx, p, EverythingRequest{ID: "a"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range page.Matches {
			out = append(out, r.Path())
		}
		slices.Sort(out)
		return out
	}
	if got := keys(); !slices.Equal(got, []string{"Observation/oa", "Patient/a"}) {
		t.Errorf("without links: %v", got)
	}
	s.linkedPatients = func(_ store.Tx, id string) ([]string, error) {
		if id == "a" {
			return []string{"a", "b"}, nil
		}
		return []string{id}, nil
	}
	if got := keys(); !slices.Equal(got, []string{"Observation/oa", "Observation/ob", "Patient/a", "Patient/b"}) {
		t.Errorf("with a linked to b: %v, want a's and b's records", got)
	}
}
