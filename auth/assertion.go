package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// This file is the client side of the token endpoint: what `healthhub
// token` and the tests use to ask for an access token.

// SignAssertion signs a client assertion for a token request: iss = sub =
// clientID, aud = tokenURL, a random jti, exp four minutes ahead (under the
// five minutes servers allow). kid "" takes the key's RFC 7638 thumbprint,
// which is the kid `healthhub clients add --public-key/--generate-key`
// registers.
func SignAssertion(key crypto.Signer, kid, clientID, tokenURL string, now time.Time) (string, error) {
	alg, err := AlgFor(key.Public())
	if err != nil {
		return "", err
	}
	if kid == "" {
		jwk, err := PublicJWK(key.Public(), "")
		if err != nil {
			return "", err
		}
		kid = jwk.Kid
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	t := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.RegisteredClaims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  jwt.ClaimStrings{tokenURL},
		ExpiresAt: jwt.NewNumericDate(now.Add(4 * time.Minute)),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        hex.EncodeToString(jti[:]),
	})
	t.Header["kid"] = kid
	return t.SignedString(key)
}

// RequestToken posts a client-credentials token request with assertion and
// returns the access token and the granted scope. patient, when not "",
// names the Patient that patient/ scopes are confined to. An OAuth error
// answer comes back as *OAuthError.
func RequestToken(ctx context.Context, hc *http.Client, tokenURL, assertion, scope, patient string) (token, granted string, err error) {
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {assertionType},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	}
	if patient != "" {
		form.Set("patient", patient)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		oe := &OAuthError{Status: resp.StatusCode}
		if json.Unmarshal(body, oe) != nil || oe.Code == "" {
			return "", "", fmt.Errorf("token endpoint: status %d", resp.StatusCode)
		}
		return "", "", oe
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", "", errors.New("token endpoint: the answer has no access_token")
	}
	return tr.AccessToken, tr.Scope, nil
}

// ParsePrivateKeyPEM reads an RSA or EC private key in PEM (PKCS#8, PKCS#1
// or SEC 1).
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: want a PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%T keys are not supported: use RSA or EC", key)
}

// ParsePublicKeyPEM reads a PEM PUBLIC KEY (PKIX).
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("want a PEM PUBLIC KEY block")
	}
	return x509.ParsePKIXPublicKey(block.Bytes)
}

// KeySet renders public keys as a JWK Set, each with its thumbprint as kid.
func KeySet(pubs ...crypto.PublicKey) ([]byte, error) {
	set := JWKS{}
	for _, p := range pubs {
		k, err := PublicJWK(p, "")
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, k)
	}
	return json.Marshal(set)
}
