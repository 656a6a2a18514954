package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
)

// TestJWKUseAndAlg: a key for encryption (use "enc") is not one that
// verifies client assertions, and a key that names its algorithm checks
// signatures made with that one only (RFC 7517 §4.2, §4.4).
func TestJWKUseAndAlg(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := PublicJWK(&key.PublicKey, "k1")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := PublicJWK(&rsaKey.PublicKey, "k1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, use, alg string
		jwk            JWK
		wantKeys       int
		fits           map[string]bool // alg -> fits
	}{
		{"no use, no alg", "", "", ec, 1, map[string]bool{"ES256": true, "ES384": false}},
		{"use sig", "sig", "", ec, 1, map[string]bool{"ES256": true}},
		{"use enc", "enc", "", ec, 0, nil},
		{"use enc, RSA", "enc", "", rs, 0, nil},
		{"RSA, no alg", "", "", rs, 1, map[string]bool{"RS256": true, "RS384": true}},
		{"RSA, alg RS256", "sig", "RS256", rs, 1, map[string]bool{"RS256": true, "RS384": false}},
		{"alg of another family", "", "RS256", ec, 1, map[string]bool{"ES256": false, "RS256": false}},
	}
	// A set of encryption keys alone says why none is usable.
	enc := ec
	enc.Use = "enc"
	raw, err := json.Marshal(JWKS{Keys: []JWK{enc}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseJWKS(raw); err == nil || !strings.Contains(err.Error(), `use "sig"`) {
		t.Errorf("a set of encryption keys: %v, want an error naming use \"sig\"", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.jwk
			k.Use, k.Alg = tc.use, tc.alg
			other, err := PublicJWK(&key.PublicKey, "k2") // so that the set is never empty
			if err != nil {
				t.Fatal(err)
			}
			other.Use = "sig"
			raw, err := json.Marshal(JWKS{Keys: []JWK{k, other}})
			if err != nil {
				t.Fatal(err)
			}
			keys, err := parseJWKS(raw)
			if err != nil {
				t.Fatal(err)
			}
			var got []publicKey
			for _, pk := range keys {
				if pk.kid == "k1" {
					got = append(got, pk)
				}
			}
			if len(got) != tc.wantKeys {
				t.Fatalf("keys with kid k1: %d, want %d", len(got), tc.wantKeys)
			}
			for alg, want := range tc.fits {
				if f := got[0].fits(alg); f != want {
					t.Errorf("fits(%s) = %v, want %v", alg, f, want)
				}
			}
		})
	}
}
