package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"healthhub/store"
)

// Config for the authorization server.
type Config struct {
	// BaseURL is the FHIR base (http://host:port/fhir). It is the access
	// tokens' issuer and audience; the auth endpoints are at its root.
	BaseURL string
	// TokenLifetime of access tokens; DefaultTokenLifetime when zero.
	TokenLifetime time.Duration
	Logger        *slog.Logger
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// DefaultTokenLifetime: SMART says access tokens SHOULD NOT live longer
// than five minutes.
const DefaultTokenLifetime = 5 * time.Minute

// Assertion rules (SMART backend services, RFC 7523).
const (
	maxAssertionLifetime = 5 * time.Minute
	clockSkew            = 15 * time.Second
	maxAssertionBytes    = 16 << 10
	maxFormBytes         = 64 << 10
	assertionType        = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Algorithms accepted on client assertions. HS* and none are not among
// them: the parser refuses any other alg before a key is looked at.
var assertionAlgs = []string{"RS384", "ES384", "RS256", "ES256"}

// Server is the SMART authorization server and the resource server's token
// check. Its handlers are plain http.Handlers; app mounts them.
type Server struct {
	base     string // FHIR base URL, issuer and audience of access tokens
	root     string // base without /fhir: where /auth/... is served
	lifetime time.Duration
	log      *slog.Logger
	now      func() time.Time
	st       store.AuthStore
	clients  *Registry
	keys     *keyRing

	assertions *jwt.Parser
	tokens     *jwt.Parser
	cache      tokenCache
}

// New opens the registry and the signing keys (generating the first).
func New(ctx context.Context, st store.AuthStore, cfg Config) (*Server, error) {
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = DefaultTokenLifetime
	}
	if cfg.TokenLifetime < time.Second || cfg.TokenLifetime > MaxTokenLifetime {
		return nil, fmt.Errorf("token lifetime %s: between 1s and %s", cfg.TokenLifetime, MaxTokenLifetime)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		base:     strings.TrimRight(cfg.BaseURL, "/"),
		lifetime: cfg.TokenLifetime,
		log:      cfg.Logger,
		now:      cfg.Now,
		st:       st,
	}
	s.root = strings.TrimSuffix(s.base, "/fhir")
	var err error
	if s.clients, err = OpenRegistry(ctx, st); err != nil {
		return nil, err
	}
	if s.keys, err = loadKeys(ctx, st, s.now()); err != nil {
		return nil, err
	}
	s.assertions = jwt.NewParser(
		jwt.WithValidMethods(assertionAlgs),
		jwt.WithAudience(s.TokenURL()),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(s.now),
		jwt.WithStrictDecoding(),
		// An assertion issued in the future (beyond the leeway) comes
		// from a clock that is wrong, or was made to be used later.
		jwt.WithIssuedAt(),
	)
	s.tokens = jwt.NewParser(
		jwt.WithValidMethods([]string{serverAlg}),
		jwt.WithIssuer(s.base),
		jwt.WithAudience(s.base),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(s.now),
	)
	s.cache.init()
	return s, nil
}

// Clients is the client registry.
func (s *Server) Clients() *Registry { return s.clients }

// TokenURL is the token endpoint, the audience client assertions name.
func (s *Server) TokenURL() string { return s.root + "/auth/token" }

// OAuthError is an OAuth 2.0 error response (RFC 6749 §5.2).
type OAuthError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Challenge   string `json:"-"` // the WWW-Authenticate scheme of a 401; Bearer when empty
}

func (e *OAuthError) Error() string { return e.Code + ": " + e.Description }

func invalidClient(format string, args ...any) *OAuthError {
	return &OAuthError{http.StatusUnauthorized, "invalid_client", fmt.Sprintf(format, args...), ""}
}

func invalidRequest(format string, args ...any) *OAuthError {
	return &OAuthError{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, args...), ""}
}

// tokenResponse is the success answer of the token endpoint.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	// Patient is the patient context (SMART echoes the launch patient so);
	// present when patient/ scopes were granted.
	Patient string `json:"patient,omitempty"`
}

// accessClaims are the claims of the access tokens this server signs.
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	// Patient confines the token's patient/ scopes to this Patient's
	// compartment.
	Patient string `json:"patient,omitempty"`

	grants   *grants   // Scope parsed, set when verified
	retireAt time.Time // when the key that signed it retires; zero: not retiring
}

// TokenHandler serves POST /auth/token.
func (s *Server) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := s.token(r)
		if err != nil {
			var oe *OAuthError
			if !errors.As(err, &oe) {
				s.log.ErrorContext(r.Context(), "token endpoint", "error", err)
				oe = &OAuthError{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error"}
			}
			if oe.Status == http.StatusUnauthorized {
				// RFC 6749 §5.2: a 401 names the scheme the client may use.
				scheme := oe.Challenge
				if scheme == "" {
					scheme = "Bearer"
				}
				w.Header().Set("WWW-Authenticate", scheme+` realm="healthhub"`)
			}
			writeJSON(w, oe.Status, oe)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

func (s *Server) token(r *http.Request) (*tokenResponse, error) {
	form, err := readForm(r)
	if err != nil {
		return nil, err
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		if gt == "" {
			return nil, invalidRequest("grant_type is missing; backend services use client_credentials")
		}
		return nil, &OAuthError{Status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: "only client_credentials is supported"}
	}
	if scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " "); scheme != "" {
		// RFC 6749 §5.2: 401 with a challenge of the scheme the client used.
		return nil, &OAuthError{http.StatusUnauthorized, "invalid_client", "authenticate with a private_key_jwt client_assertion, not the Authorization header", scheme}
	}
	if form.Get("client_assertion_type") != assertionType {
		return nil, invalidRequest("client_assertion_type must be %s", assertionType)
	}
	assertion := form.Get("client_assertion")
	if assertion == "" {
		return nil, invalidRequest("client_assertion is missing")
	}
	if len(assertion) > maxAssertionBytes {
		return nil, invalidRequest("client_assertion is larger than %d bytes", maxAssertionBytes)
	}
	c, err := s.authenticateClient(r.Context(), assertion)
	if err != nil {
		return nil, err
	}
	if id := form.Get("client_id"); id != "" && id != c.ID {
		return nil, invalidClient("client_id does not match the assertion's issuer")
	}
	// patient is a healthhub extension of the backend services request:
	// there is no launch to carry the patient context, so the client names
	// the patient its patient/ scopes are for. auth knows it as an id
	// string only; the FHIR service decides what its compartment holds.
	patient := form.Get("patient")
	if _, given := form["patient"]; given && !validID(patient) {
		return nil, invalidRequest("patient must be a Patient id: 1 to 64 of A-Z a-z 0-9 - .")
	}
	granted, err := Grant(form.Get("scope"), strings.Fields(c.Scope), patient != "")
	if err != nil {
		var se *ScopeError
		if errors.As(err, &se) {
			return nil, &OAuthError{Status: http.StatusBadRequest, Code: "invalid_scope", Description: se.Reason}
		}
		return nil, err
	}
	if patient != "" && !HasPatientScope(granted) {
		// A patient with no patient/ scope to confine would be ignored;
		// the client likely expects it to limit the token, so say so.
		return nil, invalidRequest("patient is given, but no patient/ scope was granted: it would not limit the token")
	}
	scope := strings.Join(granted, " ")
	tok, err := s.issue(c.ID, scope, patient)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(r.Context(), "token issued", "client_id", c.ID, "scope", scope, "patient_confined", patient != "") // the patient id is patient data: not logged
	return &tokenResponse{AccessToken: tok, TokenType: "bearer", ExpiresIn: int(s.lifetime / time.Second), Scope: scope, Patient: patient}, nil
}

// validID is the FHIR id syntax: 1 to 64 of A-Z a-z 0-9 - and '.'.
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// readForm parses the form body. A repeated parameter is refused, as RFC
// 6749 §3.2 says.
func readForm(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, invalidRequest("use POST")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest("the form does not parse")
	}
	for k, vs := range r.PostForm {
		if len(vs) > 1 {
			return nil, invalidRequest("parameter %q is repeated", k)
		}
	}
	return r.PostForm, nil
}

// headerAlg reads the alg of a JWT's header without trusting anything
// else in it, so a refused alg gets its own clear error.
func headerAlg(token string) string {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return ""
	}
	raw, err := b64.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return ""
	}
	return h.Alg
}

// authenticateClient checks a client assertion and returns its client.
// Every failure is invalid_client: the assertion is how the client
// authenticates (RFC 7523 §3.2).
func (s *Server) authenticateClient(ctx context.Context, assertion string) (Client, error) {
	if alg := headerAlg(assertion); alg != "" && !slices.Contains(assertionAlgs, alg) {
		return Client{}, invalidClient("client_assertion: alg %q is not accepted; use one of %s", alg, strings.Join(assertionAlgs, ", "))
	}
	var c Client
	var claims jwt.RegisteredClaims
	keyfunc := func(t *jwt.Token) (any, error) {
		iss := claims.Issuer
		if iss == "" || claims.Subject != iss {
			return nil, invalidClient("iss and sub must both be the client_id")
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, invalidClient("the assertion header has no kid")
		}
		var err error
		if c, err = s.clients.Get(iss); err != nil {
			return nil, s.unrecognized(ctx, iss, "not registered")
		}
		if c.Disabled {
			return nil, s.unrecognized(ctx, iss, "disabled")
		}
		if jku, ok := t.Header["jku"]; ok && (c.JWKSURI == "" || jku != c.JWKSURI) {
			return nil, s.unrecognized(ctx, iss, "jku is not the client's registered jwks_uri")
		}
		alg := t.Method.Alg()
		pick := func(refresh bool) (any, error) {
			keys, err := s.clients.clientKeys(ctx, c, refresh)
			if err != nil {
				s.log.WarnContext(ctx, "client keys unavailable", "client_id", c.ID, "error", err)
				return nil, s.unrecognized(ctx, c.ID, "its keys cannot be loaded")
			}
			var found []publicKey
			for _, k := range keys {
				if k.kid == kid && k.fits(alg) {
					found = append(found, k)
				}
			}
			if len(found) != 1 {
				return nil, nil
			}
			return found[0].key, nil
		}
		key, err := pick(false)
		if key == nil && err == nil && c.JWKSURI != "" {
			key, err = pick(true) // the client may have rotated its keys
		}
		if err != nil {
			return nil, err
		}
		if key == nil {
			return nil, s.unrecognized(ctx, c.ID, fmt.Sprintf("no single key of the client has kid %q and fits %s", loggedID(kid), alg))
		}
		return key, nil
	}
	_, err := s.assertions.ParseWithClaims(assertion, &claims, keyfunc)
	if err != nil {
		var oe *OAuthError
		if errors.As(err, &oe) {
			return Client{}, oe
		}
		if c.ID != "" && errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			// A key of the client has the assertion's kid: saying that
			// its signature does not verify would tell that the client
			// is registered (kids are thumbprints of public keys).
			return Client{}, s.unrecognized(ctx, c.ID, "the signature does not verify with the key of its kid")
		}
		return Client{}, invalidClient("client_assertion: %s", assertionProblem(err))
	}
	now := s.now()
	if claims.ExpiresAt.Time.After(now.Add(maxAssertionLifetime + clockSkew)) {
		return Client{}, invalidClient("client_assertion: exp is more than 5 minutes ahead")
	}
	if claims.ID == "" || len(claims.ID) > 256 {
		return Client{}, invalidClient("client_assertion: jti is missing or longer than 256 characters")
	}
	// Recorded until the assertion could no longer pass the exp check.
	fresh, err := s.st.UseJTI(ctx, c.ID, claims.ID, claims.ExpiresAt.Time.Add(clockSkew), now)
	if err != nil {
		return Client{}, err
	}
	if !fresh {
		return Client{}, invalidClient("client_assertion: jti was already used")
	}
	return c, nil
}

// unrecognized answers an assertion whose client, or key, the registry
// does not have, or will not use: the same answer for each, so that the
// token endpoint does not tell an unauthenticated caller which clients
// are registered, disabled, or hold which keys. The reason goes to the log,
// for the operator helping a hospital connect.
func (s *Server) unrecognized(ctx context.Context, clientID, reason string) *OAuthError {
	s.log.InfoContext(ctx, "client assertion refused", "client_id", loggedID(clientID), "reason", reason)
	return invalidClient("client_assertion: no registered client and key of this iss and kid verify it")
}

// loggedID bounds an identifier an unauthenticated caller wrote (the
// client_id an assertion claims, its kid) for the log, whose lines it
// would otherwise make kilobytes long: a registered client_id is at most
// 128 bytes.
func loggedID(s string) string {
	if len(s) > 128 {
		return s[:128] + "..."
	}
	return s
}

// assertionProblem says what was wrong with a JWT without echoing it.
func assertionProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed JWT"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature does not verify"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "aud must be the token endpoint URL"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim (exp) is missing"
	}
	return "invalid JWT"
}

// issue signs an access token.
func (s *Server) issue(clientID, scope, patient string) (string, error) {
	now := s.now()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.base,
			Subject:   clientID,
			Audience:  jwt.ClaimStrings{s.base},
			ExpiresAt: jwt.NewNumericDate(now.Add(s.lifetime)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti[:]),
		},
		ClientID: clientID,
		Scope:    scope,
		Patient:  patient,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = s.keys.signer.kid
	return t.SignedString(s.keys.signer.priv)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// tokenCache remembers verified access tokens until they expire, so a
// client that sends the same token many times pays for the signature check
// once. It is bounded: when full it starts over.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]*accessClaims
}

const tokenCacheMax = 10_000

func (c *tokenCache) init() { c.m = map[string]*accessClaims{} }

func (c *tokenCache) get(tok string) *accessClaims {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[tok]
}

func (c *tokenCache) put(tok string, cl *accessClaims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= tokenCacheMax {
		c.m = map[string]*accessClaims{}
	}
	c.m[tok] = cl
}
