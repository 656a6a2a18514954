package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"healthhub/store"
)

// The server signs access tokens with ES256 keys: generating one takes
// microseconds (an RSA key, a second), and the tokens stay short.
const serverAlg = "ES256"

// MaxTokenLifetime caps --token-lifetime. A rotated key stays valid this
// long, so every token it signed expires before it goes.
const MaxTokenLifetime = time.Hour

// signingKey is one server key. Keys live in the store with their private
// part (PKCS#8): protect the data directory as you protect the tokens it
// can mint.
type signingKey struct {
	kid      string
	priv     *ecdsa.PrivateKey
	created  time.Time
	retireAt time.Time // zero: not retiring
}

type keyRecord struct {
	Alg      string    `json:"alg"`
	Created  time.Time `json:"created"`
	RetireAt time.Time `json:"retire_at,omitzero"`
	PKCS8    []byte    `json:"pkcs8"`
}

// keyRing is the server's keys: the newest that is not retiring signs,
// every one still valid verifies.
type keyRing struct {
	signer *signingKey
	byKID  map[string]*signingKey
	jwks   []byte // the public keys as a JWK Set
}

// loadKeys reads the server's keys, drops those retired before now, and
// generates the first key when there is none to sign with.
func loadKeys(ctx context.Context, st store.AuthStore, now time.Time) (*keyRing, error) {
	keys, err := readKeys(ctx, st)
	if err != nil {
		return nil, err
	}
	var live []*signingKey
	for _, k := range keys {
		if !k.retireAt.IsZero() && !now.Before(k.retireAt) {
			if err := st.DeleteSigningKey(ctx, k.kid); err != nil {
				return nil, err
			}
			continue
		}
		live = append(live, k)
	}
	if !slices.ContainsFunc(live, func(k *signingKey) bool { return k.retireAt.IsZero() }) {
		k, err := newSigningKey(ctx, st, now)
		if err != nil {
			return nil, err
		}
		live = append(live, k)
	}
	return newKeyRing(live)
}

func readKeys(ctx context.Context, st store.AuthStore) ([]*signingKey, error) {
	var keys []*signingKey
	err := st.SigningKeys(ctx, func(kid string, rec []byte) error {
		var r keyRecord
		if err := json.Unmarshal(rec, &r); err != nil {
			return fmt.Errorf("auth: signing key %s: %w", kid, err)
		}
		pk, err := x509.ParsePKCS8PrivateKey(r.PKCS8)
		if err != nil {
			return fmt.Errorf("auth: signing key %s: %w", kid, err)
		}
		ec, ok := pk.(*ecdsa.PrivateKey)
		if !ok || r.Alg != serverAlg {
			return fmt.Errorf("auth: signing key %s is not an %s key", kid, serverAlg)
		}
		keys = append(keys, &signingKey{kid: kid, priv: ec, created: r.Created, retireAt: r.RetireAt})
		return nil
	})
	return keys, err
}

func newSigningKey(ctx context.Context, st store.AuthStore, now time.Time) (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	jwk, err := PublicJWK(&priv.PublicKey, "")
	if err != nil {
		return nil, err
	}
	k := &signingKey{kid: jwk.Kid, priv: priv, created: now.UTC()}
	if err := putKey(ctx, st, k); err != nil {
		return nil, err
	}
	return k, nil
}

func putKey(ctx context.Context, st store.AuthStore, k *signingKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return err
	}
	rec, err := json.Marshal(keyRecord{Alg: serverAlg, Created: k.created, RetireAt: k.retireAt, PKCS8: der})
	if err != nil {
		return err
	}
	return st.PutSigningKey(ctx, k.kid, rec)
}

func newKeyRing(keys []*signingKey) (*keyRing, error) {
	kr := &keyRing{byKID: map[string]*signingKey{}}
	set := JWKS{Keys: []JWK{}}
	for _, k := range keys {
		kr.byKID[k.kid] = k
		if k.retireAt.IsZero() && (kr.signer == nil || k.created.After(kr.signer.created)) {
			kr.signer = k
		}
		jwk, err := PublicJWK(&k.priv.PublicKey, k.kid)
		if err != nil {
			return nil, err
		}
		jwk.Use, jwk.Alg = "sig", serverAlg
		set.Keys = append(set.Keys, jwk)
	}
	slices.SortFunc(set.Keys, func(a, b JWK) int { return strings.Compare(a.Kid, b.Kid) })
	var err error
	kr.jwks, err = json.Marshal(set)
	return kr, err
}

// RotateKeys adds a new signing key and marks every other key to retire
// after MaxTokenLifetime, when the last token it signed has expired. Run it
// against a stopped server's data; the server picks the new key up when it
// starts. It returns the new key's kid.
func RotateKeys(ctx context.Context, st store.AuthStore, now time.Time) (string, error) {
	keys, err := readKeys(ctx, st)
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if k.retireAt.IsZero() {
			k.retireAt = now.Add(MaxTokenLifetime).UTC()
			if err := putKey(ctx, st, k); err != nil {
				return "", err
			}
		}
	}
	k, err := newSigningKey(ctx, st, now)
	if err != nil {
		return "", err
	}
	return k.kid, nil
}
