package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"

	"healthhub/store"
)

func testRegistry(t *testing.T) *Registry {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := OpenRegistry(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func seedFile(t *testing.T, clients ...map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(clients)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func newKeySet(t *testing.T) (json.RawMessage, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := KeySet(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parseJWKS(set)
	if err != nil || len(keys) != 1 {
		t.Fatalf("key set: %v", err)
	}
	return set, keys[0].kid
}

// TestKeysFollowTheRecord: a token request that read the client before a
// reload rotated its key must not leave the old key cached for the new
// record (found by review): the next request, with the new record, gets
// the new key.
func TestKeysFollowTheRecord(t *testing.T) {
	ctx := context.Background()
	r := testRegistry(t)
	oldSet, oldKid := newKeySet(t)
	newSet, newKid := newKeySet(t)
	if _, err := r.Seed(ctx, seedFile(t, map[string]any{"client_id": "c", "jwks": oldSet, "scope": "system/*.rs"})); err != nil {
		t.Fatal(err)
	}
	before, err := r.Get("c") // a request in flight holds this
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Seed(ctx, seedFile(t, map[string]any{"client_id": "c", "jwks": newSet, "scope": "system/*.rs"})); err != nil {
		t.Fatal(err)
	}
	if keys, err := r.clientKeys(ctx, before, false); err != nil || len(keys) != 1 || keys[0].kid != oldKid {
		t.Fatalf("keys of the record read before the reload: %v %v", keys, err)
	}
	now, err := r.Get("c")
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := r.clientKeys(ctx, now, false); err != nil || len(keys) != 1 || keys[0].kid != newKid {
		t.Errorf("keys of the current record: %v %v, want only kid %s", keys, err, newKid)
	}
}

// TestSeedDisables: the clients file disables a client and enables it
// again; a client an operator disabled stays disabled whatever the file
// says, until the operator enables it.
func TestSeedDisables(t *testing.T) {
	ctx := context.Background()
	r := testRegistry(t)
	set, _ := newKeySet(t)
	seed := func(disabled bool) {
		t.Helper()
		if _, err := r.Seed(ctx, seedFile(t, map[string]any{"client_id": "c", "jwks": set, "scope": "system/*.rs", "disabled": disabled})); err != nil {
			t.Fatal(err)
		}
	}
	disabled := func() bool {
		t.Helper()
		c, err := r.Get("c")
		if err != nil {
			t.Fatal(err)
		}
		return c.Disabled
	}
	seed(false)
	seed(true)
	if !disabled() {
		t.Fatal("the file disabled the client: still enabled")
	}
	seed(false)
	if disabled() {
		t.Fatal("the file enabled the client it had disabled: still disabled")
	}
	if err := r.SetDisabled(ctx, "c", true); err != nil {
		t.Fatal(err)
	}
	seed(false)
	if !disabled() {
		t.Fatal("the file enabled a client an operator disabled")
	}
	seed(true)
	seed(false)
	if !disabled() {
		t.Fatal("the file's disable and enable lifted an operator's disable")
	}
	if err := r.SetDisabled(ctx, "c", false); err != nil {
		t.Fatal(err)
	}
	if disabled() {
		t.Fatal("the operator enabled the client: still disabled")
	}
}
