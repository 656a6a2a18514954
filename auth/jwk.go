package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// JWK is one JSON Web Key (RFC 7517) of the kinds SMART uses: RSA and EC
// public keys. Private members are refused on registration: a client's
// registered key set must hold public keys only.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	// RSA
	N string `json:"n,omitempty"`
	E string `json:"e,omitempty"`
	// EC
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	// D is a private member; present only to refuse it.
	D string `json:"d,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// publicKey is a parsed JWK.
type publicKey struct {
	kid string
	alg string           // the JWK's alg: the only one it signs with; "" any that fits
	key crypto.PublicKey // *rsa.PublicKey or *ecdsa.PublicKey
}

// fits reports whether k can check a signature made with alg: RSA keys for
// RS*, EC keys on alg's own curve for ES*, and a key that names its
// algorithm for that one only (RFC 7517 §4.4).
func (k publicKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		return alg == "RS256" || alg == "RS384"
	case *ecdsa.PublicKey:
		return alg == "ES256" && key.Curve == elliptic.P256() || alg == "ES384" && key.Curve == elliptic.P384()
	}
	return false
}

var b64 = base64.RawURLEncoding

// parseJWKS parses a key set. Keys of other kinds (e.g. OKP), and keys
// for encryption (use other than "sig"), are skipped, not refused, so a
// client may publish keys for other servers or uses in the same set; a
// key set with no usable key, a key without kid, a private key or two
// keys with one kid and kty is an error.
func parseJWKS(raw []byte) ([]publicKey, error) {
	var set JWKS
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("JWK Set does not parse: %w", err)
	}
	var out []publicKey
	seen := map[string]bool{}
	for i, k := range set.Keys {
		if k.D != "" {
			return nil, fmt.Errorf("key %d (%q) is a private key: register public keys only", i, k.Kid)
		}
		if k.Kty != "RSA" && k.Kty != "EC" || k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Kid == "" {
			return nil, fmt.Errorf("key %d has no kid", i)
		}
		if seen[k.Kty+" "+k.Kid] {
			return nil, fmt.Errorf("two %s keys have kid %q", k.Kty, k.Kid)
		}
		seen[k.Kty+" "+k.Kid] = true
		pk, err := k.public()
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.Kid, err)
		}
		out = append(out, publicKey{kid: k.Kid, alg: k.Alg, key: pk})
	}
	if len(out) == 0 {
		return nil, errors.New(`JWK Set has no RSA or EC key for signatures (use "sig" or none)`)
	}
	return out, nil
}

func (k JWK) public() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("RSA key needs base64url n and e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 are needed", pub.N.BitLen())
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, errors.New("RSA key has an invalid exponent")
		}
		return pub, nil
	case "EC":
		var curve elliptic.Curve
		var size int
		switch k.Crv {
		case "P-256":
			curve, size = elliptic.P256(), 32
		case "P-384":
			curve, size = elliptic.P384(), 48
		default:
			return nil, fmt.Errorf("EC curve %q: P-256 or P-384 are accepted", k.Crv)
		}
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("EC key needs base64url x and y of %d bytes", size)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("EC key: %w", err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("kty %q is not supported", k.Kty)
}

// PublicJWK renders a public key as a JWK with kid; kid "" takes the RFC
// 7638 thumbprint.
func PublicJWK(pub crypto.PublicKey, kid string) (JWK, error) {
	var k JWK
	switch key := pub.(type) {
	case *rsa.PublicKey:
		k = JWK{Kty: "RSA", N: b64.EncodeToString(key.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(key.E)).Bytes())}
	case *ecdsa.PublicKey:
		raw, err := key.Bytes()
		if err != nil {
			return JWK{}, err
		}
		size := (len(raw) - 1) / 2
		switch key.Curve {
		case elliptic.P256():
			k.Crv = "P-256"
		case elliptic.P384():
			k.Crv = "P-384"
		default:
			return JWK{}, errors.New("EC keys must be on P-256 or P-384")
		}
		k.Kty, k.X, k.Y = "EC", b64.EncodeToString(raw[1:1+size]), b64.EncodeToString(raw[1+size:])
	default:
		return JWK{}, fmt.Errorf("%T keys are not supported: use RSA or EC", pub)
	}
	if kid == "" {
		kid = k.Thumbprint()
	}
	k.Kid = kid
	return k, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of k, base64url.
func (k JWK) Thumbprint() string {
	var canon string
	switch k.Kty {
	case "RSA":
		canon = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, k.E, k.N)
	case "EC":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Crv, k.X, k.Y)
	}
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}

// AlgFor is the assertion alg healthhub's tools sign with for a key: RS384
// for RSA, ES256 or ES384 by curve.
func AlgFor(pub crypto.PublicKey) (string, error) {
	switch key := pub.(type) {
	case *rsa.PublicKey:
		return "RS384", nil
	case *ecdsa.PublicKey:
		switch key.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		}
	}
	return "", fmt.Errorf("%T keys are not supported: use RSA or EC P-256/P-384", pub)
}
