package interaction

// White-box: the master patient index is not built yet, so this test plugs
// a fake linkedPatients in to show the seam widens searches as intended.

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"testing"

	"healthhub/auth"
	"healthhub/store"
)

func TestPatientReferencesWidenToLinkedPatients(t *testing.T) {
	s := newTestService(t)
	ctx, p := context.Background(), auth.Local()
	for _, b := range []string{
		`{"resourceType":"Observation","id":"oa","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`,
		`{"resourceType":"Observation","id":"ob","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/b"}}`,
		`{"resourceType":"Observation","id":"oc","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/c"}}`,
	} {
		obj := struct{ ID string }{}
		_ = jsonUnmarshal(b, &obj)
		if _, _, err := s.Update(ctx, p, "Observation", obj.ID, []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
	ids := func() []string {
		page, err := s.Search(ctx, p, "Observation", url.Values{"subject": {"Patient/a"}}, true)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range page.Matches {
			out = append(out, r.ID)
		}
		slices.Sort(out)
		return out
	}
	if got := ids(); !slices.Equal(got, []string{"oa"}) {
		t.Errorf("without links: %v, want [oa]", got)
	}
	s.linkedPatients = func(_ store.Tx, id string) ([]string, error) {
		if id == "a" {
			return []string{"a", "b"}, nil
		}
		return []string{id}, nil
	}
	if got := ids(); !slices.Equal(got, []string{"oa", "ob"}) {
		t.Errorf("with a linked to b: %v, want [oa ob]", got)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
