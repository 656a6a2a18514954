package interaction_test

import (
	"context"
	"net/url"
	"slices"
	"sync"
	"testing"

	"healthhub/auth"
	"healthhub/fhir/interaction"
	"healthhub/fhir/validate"
	"healthhub/store"
)

// preparingStore records the resources PrepareReplace is asked about.
type preparingStore struct {
	store.Store
	mu    sync.Mutex
	calls []string
}

func (p *preparingStore) PrepareReplace(ctx context.Context, typ, id string) {
	p.mu.Lock()
	p.calls = append(p.calls, typ+"/"+id)
	p.mu.Unlock()
	p.Store.PrepareReplace(ctx, typ, id)
}

func (p *preparingStore) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.calls
	p.calls = nil
	slices.Sort(out)
	return out
}

// TestWritesPrepareTheVersionsTheyReplace: every write that replaces
// versions (update, delete, a conditional delete of several, a
// transaction's DELETE and PUT) asks the store to prepare for them outside
// its commit (store.Bolt.PrepareReplace).
func TestWritesPrepareTheVersionsTheyReplace(t *testing.T) {
	newService(t) // loads registry
	st, err := store.Open(t.TempDir(), store.Options{Indexer: interaction.NewIndexer(registry), VerifyIndexer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ps := &preparingStore{Store: st}
	svc := interaction.New(ps, validate.New(), registry)
	ctx, p := context.Background(), auth.Local()
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		body := `{"resourceType":"Patient","id":"` + id + `","identifier":[{"system":"urn:s","value":"two"}]}`
		if id >= "c" {
			body = `{"resourceType":"Patient","id":"` + id + `"}`
		}
		if _, _, err := svc.Update(ctx, p, "Patient", id, []byte(body), 0); err != nil {
			t.Fatal(err)
		}
	}
	ps.take()

	if _, _, err := svc.Update(ctx, p, "Patient", "c", []byte(`{"resourceType":"Patient","id":"c","gender":"male"}`), 0); err != nil {
		t.Fatal(err)
	}
	if got := ps.take(); !slices.Equal(got, []string{"Patient/c"}) {
		t.Errorf("update: prepared %v", got)
	}
	if _, err := svc.Delete(ctx, p, "Patient", "d", 0); err != nil {
		t.Fatal(err)
	}
	if got := ps.take(); !slices.Equal(got, []string{"Patient/d"}) {
		t.Errorf("delete: prepared %v", got)
	}
	if _, err := svc.ConditionalDelete(ctx, p, "Patient", url.Values{"identifier": {"urn:s|two"}}, 0, true); err != nil {
		t.Fatal(err)
	}
	if got := ps.take(); !slices.Equal(got, []string{"Patient/a", "Patient/b"}) {
		t.Errorf("conditional delete of two: prepared %v", got)
	}
	if err := st.Check(ctx); err != nil {
		t.Error(err)
	}
}
