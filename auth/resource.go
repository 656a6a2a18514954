package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenError is a request the resource server refuses as unauthenticated:
// no bearer token, or one that does not verify. Description is safe to
// show the caller; it never contains the token.
type TokenError struct {
	Description string
	// Missing: no credentials at all (RFC 6750 §3.1: then the challenge
	// carries no error code).
	Missing bool
}

func (e *TokenError) Error() string { return e.Description }

// Challenge is the WWW-Authenticate value answering e.
func (e *TokenError) Challenge() string {
	if e.Missing {
		return `Bearer realm="healthhub"`
	}
	return `Bearer realm="healthhub", error="invalid_token", error_description="` + strings.ReplaceAll(e.Description, `"`, "'") + `"`
}

// Request headers that shape the Principal.
const (
	HeaderPurposeOfUse = "X-Purpose-Of-Use"
	HeaderRequestUser  = "X-Request-User"
)

// Authenticate turns a request's bearer token into its Principal: the
// client, its organization, the granted scopes, the purpose of use
// (X-Purpose-Of-Use, else the client's default) and the end user
// (X-Request-User). A *TokenError means 401; any other error is a bad
// header (400).
func (s *Server) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Principal{}, &TokenError{Description: "an Authorization: Bearer access token is required", Missing: true}
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Principal{}, &TokenError{Description: "the Authorization header must be: Bearer <access token>"}
	}
	claims, err := s.verify(strings.TrimSpace(tok))
	if err != nil {
		return Principal{}, err
	}
	c, err := s.clients.Get(claims.ClientID)
	if err != nil || c.Disabled {
		// Removed or disabled since the token was issued.
		return Principal{}, &TokenError{Description: "the token's client is no longer registered or is disabled"}
	}
	p := Principal{
		Client:       c.ID,
		Organization: c.Organization,
		Scopes:       strings.Fields(claims.Scope),
		PurposeOfUse: c.PurposeOfUse,
		BreakGlass:   c.BreakGlass,
		Patient:      claims.Patient,
	}
	p.grants = claims.grants
	if p.PurposeOfUse == "" {
		p.PurposeOfUse = DefaultPurposeOfUse
	}
	return WithRequestHeaders(p, r)
}

// WithRequestHeaders returns p with the purpose of use and end user the
// request names (X-Purpose-Of-Use, X-Request-User), if it names them. An
// error is a malformed header (400).
func WithRequestHeaders(p Principal, r *http.Request) (Principal, error) {
	if v := r.Header.Get(HeaderPurposeOfUse); v != "" {
		if !validPurpose(v) {
			return Principal{}, errors.New(HeaderPurposeOfUse + " must be an HL7 PurposeOfUse code such as TREAT, ETREAT, PUBHLTH or HOPERAT")
		}
		p.PurposeOfUse = v
	}
	if v := r.Header.Get(HeaderRequestUser); v != "" {
		if !validUser(v) {
			return Principal{}, errors.New(HeaderRequestUser + " must be at most 256 printable characters")
		}
		p.User = v
	}
	return p, nil
}

func validUser(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// verify checks an access token: our signature (a current or retiring
// key, picked by kid), our issuer and audience, not expired. Verified
// tokens are cached until they expire.
func (s *Server) verify(tok string) (*accessClaims, error) {
	now := s.now()
	if c := s.cache.get(tok); c != nil {
		if !c.retireAt.IsZero() && !now.Before(c.retireAt) {
			return nil, &TokenError{Description: "the access token was signed by a retired key"}
		}
		if now.Before(c.ExpiresAt.Time.Add(clockSkew)) {
			return c, nil
		}
		return nil, &TokenError{Description: "the access token has expired"}
	}
	if len(tok) > maxAssertionBytes {
		return nil, &TokenError{Description: "the access token is too large"}
	}
	var claims accessClaims
	var retireAt time.Time
	_, err := s.tokens.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k := s.keys.byKID[kid]
		if k == nil {
			return nil, errors.New("unknown kid")
		}
		if !k.retireAt.IsZero() && !now.Before(k.retireAt) {
			// Gone from the ring at the next start (loadKeys); until then
			// it must not verify either: a key is rotated out because it
			// may have leaked, and its holder can sign a fresh token.
			return nil, errors.New("retired key")
		}
		retireAt = k.retireAt
		return &k.priv.PublicKey, nil
	})
	if err != nil {
		return nil, &TokenError{Description: tokenProblem(err)}
	}
	if claims.ClientID == "" || claims.ClientID != claims.Subject {
		return nil, &TokenError{Description: "the access token names no client"}
	}
	claims.grants = grantsOf(strings.Fields(claims.Scope), claims.Patient != "")
	claims.retireAt = retireAt // the cache must not outlive the key
	s.cache.put(tok, &claims)
	return &claims, nil
}

func tokenProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the access token has expired"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the access token is malformed"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the access token was issued by another server"
	}
	return "the access token does not verify (not signed by this server)"
}

// introspection is an RFC 7662 response.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Iss       string `json:"iss,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Patient   string `json:"patient,omitempty"` // the patient context, as the token response gave it
}

// IntrospectHandler serves POST /auth/introspect (RFC 7662). The caller
// authenticates with an access token of its own, as RFC 7662 §2.1 allows:
// any registered, enabled client may introspect (a resource server beside
// us is such a client). A token that is expired, unknown, badly signed or
// whose client was disabled is {"active": false}, nothing more. The
// patient context of a token with patient/ scopes is echoed, as SMART's
// token introspection requires.
func (s *Server) IntrospectHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.Authenticate(r); err != nil {
			var te *TokenError
			if errors.As(err, &te) {
				w.Header().Set("WWW-Authenticate", te.Challenge())
				writeJSON(w, http.StatusUnauthorized, &OAuthError{Code: "invalid_token", Description: te.Description})
				return
			}
			writeJSON(w, http.StatusBadRequest, invalidRequest("%s", err.Error()))
			return
		}
		form, err := readForm(r)
		if err != nil {
			var oe *OAuthError
			errors.As(err, &oe)
			writeJSON(w, oe.Status, oe)
			return
		}
		tok := form.Get("token")
		if tok == "" {
			writeJSON(w, http.StatusBadRequest, invalidRequest("token is missing"))
			return
		}
		claims, err := s.verify(tok)
		if err != nil || !s.now().Before(claims.ExpiresAt.Time) { // RFC 7662: active only before exp, no leeway
			writeJSON(w, http.StatusOK, introspection{Active: false})
			return
		}
		if c, err := s.clients.Get(claims.ClientID); err != nil || c.Disabled {
			writeJSON(w, http.StatusOK, introspection{Active: false})
			return
		}
		writeJSON(w, http.StatusOK, introspection{
			Active:    true,
			Scope:     claims.Scope,
			ClientID:  claims.ClientID,
			TokenType: "Bearer",
			Exp:       claims.ExpiresAt.Unix(),
			Iat:       unixOrZero(claims.IssuedAt),
			Iss:       claims.Issuer,
			Sub:       claims.Subject,
			Aud:       s.base,
			Patient:   claims.Patient,
		})
	})
}

func unixOrZero(d *jwt.NumericDate) int64 {
	if d == nil {
		return 0
	}
	return d.Unix()
}

// JWKSHandler serves GET /auth/jwks: the public keys access tokens are
// signed with, retiring ones included.
func (s *Server) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(s.keys.jwks)
	})
}

// ScopesSupported are advertised in the SMART configuration. patient/
// scopes need the patient form parameter of the token request (README).
var ScopesSupported = []string{"system/*.cruds", "system/*.rs", "system/*.read", "system/*.write", "system/*.*",
	"patient/*.cruds", "patient/*.rs", "patient/*.read", "patient/*.write", "patient/*.*"}

// SMARTConfigHandler serves .well-known/smart-configuration, always JSON.
func (s *Server) SMARTConfigHandler() http.Handler {
	doc := map[string]any{
		"issuer":                                s.base,
		"token_endpoint":                        s.TokenURL(),
		"jwks_uri":                              s.root + "/auth/jwks",
		"introspection_endpoint":                s.root + "/auth/introspect",
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384", "RS256", "ES256"},
		"grant_types_supported":                            []string{"client_credentials"},
		"scopes_supported":                                 ScopesSupported,
		"response_types_supported":                         []string{"token"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"capabilities":                                     []string{"client-confidential-asymmetric", "permission-v1", "permission-v2", "permission-patient"},
	}
	b, _ := json.Marshal(doc) // strings and string slices: cannot fail
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(b)
	})
}

// OAuthURIs are the token, introspection and JWKS endpoints, for the
// CapabilityStatement's oauth-uris extension.
func (s *Server) OAuthURIs() (token, introspect string) {
	return s.TokenURL(), s.root + "/auth/introspect"
}
