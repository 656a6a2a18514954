package interaction

// White-box: a fake linkedPatients shows that a principal confined to a
// patient's compartment reaches the records linked to its patient (the
// master patient index will link them) and nothing else.

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"testing"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/store"
)

func TestConfinedPrincipalReachesLinkedPatients(t *testing.T) {
	s := newTestService(t)
	ctx := context.Background()
	for _, b := range []string{
		`{"resourceType":"Patient","id":"a"}`,
		`{"resourceType":"Patient","id":"b"}`,
		`{"resourceType":"Patient","id":"c"}`,
		`{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`,
		`{"resourceType":"Observation","id":"ob","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`,
		`{"resourceType":"Observation","id":"oc","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/c"}}`,
	} {
		var obj struct{ ResourceType, ID string }
		_ = jsonUnmarshal(b, &obj)
		if _, _, err := s.Update(ctx, auth.Local(), obj.ResourceType, obj.ID, []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
	s.linkedPatients = func(_ store.Tx, id string) ([]string, error) {
		if id == "a" {
			return []string{"a", "b"}, nil
		}
		return []string{id}, nil
	}
	p := auth.Principal{Client: "portal", Patient: "a", Scopes: []string{"patient/*.cruds"}}

	page, err := s.Search(ctx, p, "Observation", url.Values{}, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range page.Matches {
		got = append(got, r.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"oa", "ob"}) {
		t.Errorf("search: %v, want [oa ob]", got)
	}
	if _, err := s.Read(ctx, p, "Patient", "b"); err != nil {
		t.Errorf("read of a linked patient: %v", err)
	}
	var fe *fhir.Error
	if _, err := s.Read(ctx, p, "Observation", "oc"); !errors.As(err, &fe) || fe.Kind != fhir.NotFound {
		t.Errorf("read outside the compartment: %v, want not found", err)
	}
	if _, err := s.Everything(ctx, p, EverythingRequest{ID: "b"}); err != nil {
		t.Errorf("$everything of a linked patient: %v", err)
	}
	if _, err := s.Everything(ctx, p, EverythingRequest{ID: "c"}); !errors.As(err, &fe) || fe.Kind != fhir.NotFound {
		t.Errorf("$everything of another patient: %v, want not found", err)
	}
	// A write for a linked patient is in the compartment; PATCH is held to
	// it like any write.
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`
	if _, err := s.Create(ctx, p, "Observation", []byte(obs)); err != nil {
		t.Errorf("create for a linked patient: %v", err)
	}
	patch := []byte(`[{"op":"replace","path":"/subject/reference","value":"Patient/c"}]`)
	if _, err := s.Patch(ctx, p, "Observation", "oa", nil, patch, 0); !errors.As(err, &fe) || fe.Kind != fhir.Forbidden {
		t.Errorf("patch moving a record out of the compartment: %v, want forbidden", err)
	}
}
