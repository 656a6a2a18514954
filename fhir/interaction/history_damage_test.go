package interaction_test

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"healthhub/auth"
	"healthhub/fhir"
	"healthhub/fhir/interaction"
	"healthhub/fhir/validate"
	"healthhub/store"
)

// TestHistoryOfADamagedStoreIsNotNotFound: a log entry that points at no
// version, or a resource missing one of its version records, is damage (the
// store's Check reports both), a 500 with the cause in the log; it must not
// be answered as "not found" (404: unknown type, id or version) for a
// resource that exists, nor for a system history, which has no id at all.
func TestHistoryOfADamagedStoreIsNotNotFound(t *testing.T) {
	newService(t) // loads the registry
	for _, c := range []struct {
		name   string
		damage func(tx *bolt.Tx) error
		req    interaction.HistoryRequest
	}{
		{"dangling log entry, system history", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("log")).Put([]byte{0, 0, 0, 0, 0, 0, 0, 99}, append([]byte{0, 0, 0, 0, 0, 0, 0, 7}, "Patient\x00a"...))
		}, interaction.HistoryRequest{}},
		{"missing version record, instance history", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("ver")).Bucket([]byte("Patient")).Delete(append([]byte("a\x00"), 0, 0, 0, 0, 0, 0, 0, 1))
		}, interaction.HistoryRequest{Type: "Patient", ID: "a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			svc := interaction.New(st, validate.New(), registry)
			for range 2 {
				if _, _, err := svc.Update(ctx, auth.Local(), "Patient", "a", []byte(`{"resourceType":"Patient","id":"a"}`), 0); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(c.damage); err != nil {
				t.Fatal(err)
			}
			db.Close()
			st, err = store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Check(ctx); err == nil {
				t.Fatal("Check does not see the damage")
			}
			svc = interaction.New(st, validate.New(), registry)
			_, err = svc.History(ctx, auth.Local(), c.req)
			if err == nil || fhir.KindOf(err) == fhir.NotFound {
				t.Errorf("history of a damaged store: %v (kind %v), want an internal error", err, fhir.KindOf(err))
			}
		})
	}
}
