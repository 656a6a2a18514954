package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"healthhub/store"
)

// Client is a registered backend-services client. Its JSON form is both the
// stored record and an entry of the --clients seed file.
type Client struct {
	ID           string          `json:"client_id"`
	Name         string          `json:"name,omitempty"`
	Organization string          `json:"organization,omitempty"`
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	JWKSURI      string          `json:"jwks_uri,omitempty"`
	Scope        string          `json:"scope"` // allowed scopes, space-separated
	BreakGlass   bool            `json:"break_glass,omitempty"`
	// PurposeOfUse is the default when a request names none.
	PurposeOfUse string `json:"purpose_of_use,omitempty"`
	// Disabled: the client gets no token, and its tokens stop working.
	Disabled bool `json:"disabled,omitempty"`
	// DisabledByFile: the --clients file disabled it, and may enable it
	// again; a client an operator disabled stays so until an operator
	// enables it. Set by Seed only.
	DisabledByFile bool `json:"disabled_by_file,omitempty"`
}

// DefaultPurposeOfUse is a client's purpose of use when it registered none.
const DefaultPurposeOfUse = "TREAT"

// ErrUnknownClient: no client has that id.
var ErrUnknownClient = errors.New("unknown client")

// Validate checks a registration before it is stored, and compacts the
// inline key set.
func (c *Client) Validate() error {
	if !validClientID(c.ID) {
		return fmt.Errorf("client_id %q: 1 to 128 printable ASCII characters, no spaces", c.ID)
	}
	hasSet := len(c.JWKS) > 0 && string(c.JWKS) != "null"
	switch {
	case hasSet && c.JWKSURI != "":
		return fmt.Errorf("client %s: give jwks or jwks_uri, not both", c.ID)
	case hasSet:
		if _, err := parseJWKS(c.JWKS); err != nil {
			return fmt.Errorf("client %s: jwks: %w", c.ID, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, c.JWKS); err != nil {
			return err
		}
		c.JWKS = buf.Bytes()
	case c.JWKSURI != "":
		if err := checkJWKSURI(c.JWKSURI); err != nil {
			return fmt.Errorf("client %s: jwks_uri: %w", c.ID, err)
		}
	default:
		return fmt.Errorf("client %s: a jwks or a jwks_uri is needed", c.ID)
	}
	scopes := strings.Fields(c.Scope)
	if len(scopes) == 0 {
		return fmt.Errorf("client %s: scope (the scopes it may be granted) is empty", c.ID)
	}
	for _, s := range scopes {
		if _, err := ParseScope(s); err != nil {
			return fmt.Errorf("client %s: %w", c.ID, err)
		}
	}
	c.Scope = strings.Join(scopes, " ")
	if c.PurposeOfUse != "" && !validPurpose(c.PurposeOfUse) {
		return fmt.Errorf("client %s: purpose_of_use %q is not a code", c.ID, c.PurposeOfUse)
	}
	return nil
}

func validClientID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// validPurpose: HL7 PurposeOfUse codes are upper-case letters (TREAT,
// ETREAT, PUBHLTH, HOPERAT ...).
func validPurpose(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// checkJWKSURI wants https; plain http only for a loopback host (tests,
// a key server on the same machine).
func checkJWKSURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("%q: use https (http only for loopback)", s)
}

// Registry is the client registry: the records in the store, cached in
// memory. The server is the only writer while it runs (the CLI works on a
// stopped server's data), so the cache never goes stale.
type Registry struct {
	st   store.AuthStore
	http *http.Client

	mu      sync.RWMutex
	clients map[string]*Client
	keys    map[string]*keyCache // parsed keys per client id
}

// keyCache holds a client's parsed keys; for a jwks_uri, when they were
// fetched.
type keyCache struct {
	mu      sync.Mutex
	source  string // the jwks_uri or inline set the keys came from
	keys    []publicKey
	fetched time.Time
	failed  time.Time // last failed fetch: no other before jwksMinRefetch
	lastErr error
}

// jwks_uri caching: keys are kept this long, and an unknown kid refetches
// at most this often (a client that rotated its keys is picked up at once;
// a stream of bad kids does not become a stream of fetches).
const (
	jwksTTL        = 10 * time.Minute
	jwksMinRefetch = 30 * time.Second
	jwksMaxBytes   = 256 << 10
)

// OpenRegistry loads every client from st.
func OpenRegistry(ctx context.Context, st store.AuthStore) (*Registry, error) {
	r := &Registry{
		st: st,
		http: &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("jwks_uri: too many redirects")
			}
			return checkJWKSURI(req.URL.String()) // every hop: https, or http to loopback
		}},
		clients: map[string]*Client{},
		keys:    map[string]*keyCache{},
	}
	err := st.Clients(ctx, func(id string, rec []byte) error {
		var c Client
		if err := json.Unmarshal(rec, &c); err != nil {
			return fmt.Errorf("auth: client record %q: %w", id, err)
		}
		r.clients[id] = &c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Get returns a copy of client id.
func (r *Registry) Get(id string) (Client, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.clients[id]
	if !ok {
		return Client{}, ErrUnknownClient
	}
	return *c, nil
}

// List returns every client, by id.
func (r *Registry) List() []Client {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Client, 0, len(r.clients))
	for _, c := range r.clients {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Client) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Put validates and stores c, replacing a client with its id.
func (r *Registry) Put(ctx context.Context, c Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	rec, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := r.st.PutClient(ctx, c.ID, rec); err != nil {
		return err
	}
	r.mu.Lock()
	r.clients[c.ID] = &c
	delete(r.keys, c.ID) // its keys may have changed
	r.mu.Unlock()
	return nil
}

// Remove deletes client id.
func (r *Registry) Remove(ctx context.Context, id string) error {
	if err := r.st.DeleteClient(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ErrUnknownClient
		}
		return err
	}
	r.mu.Lock()
	delete(r.clients, id)
	delete(r.keys, id)
	r.mu.Unlock()
	return nil
}

// SetDisabled disables or re-enables client id.
func (r *Registry) SetDisabled(ctx context.Context, id string, disabled bool) error {
	c, err := r.Get(id)
	if err != nil {
		return err
	}
	c.Disabled, c.DisabledByFile = disabled, false
	return r.Put(ctx, c)
}

// SeedResult counts what Seed did.
type SeedResult struct{ Added, Updated, Unchanged int }

// Seed registers the clients of a seed file (a JSON array of Client). A
// client already registered with the same fields is left alone, so seeding
// twice changes nothing; one whose fields differ is updated. The file can
// disable a client ("disabled": true) and enable again one it disabled,
// but not one an operator disabled (clients disable): only the operator's
// command enables that one.
func (r *Registry) Seed(ctx context.Context, raw []byte) (SeedResult, error) {
	var res SeedResult
	var list []Client
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return res, fmt.Errorf("clients file: want a JSON array of {client_id, name, organization, jwks | jwks_uri, scope, break_glass}: %w", err)
	}
	seen := map[string]bool{}
	for i := range list {
		c := &list[i]
		if err := c.Validate(); err != nil {
			return res, fmt.Errorf("clients file, entry %d: %w", i, err)
		}
		if seen[c.ID] {
			return res, fmt.Errorf("clients file: client_id %q appears twice", c.ID)
		}
		seen[c.ID] = true
	}
	for _, c := range list {
		old, err := r.Get(c.ID)
		existed := err == nil
		c.DisabledByFile = c.Disabled // the file's word; what it says of this field is ignored
		if existed && old.Disabled && !old.DisabledByFile {
			c.Disabled, c.DisabledByFile = true, false // an operator's: it stays
		}
		if existed {
			if sameClient(old, c) {
				res.Unchanged++
				continue
			}
		}
		if err := r.Put(ctx, c); err != nil {
			return res, err
		}
		if existed {
			res.Updated++
		} else {
			res.Added++
		}
	}
	return res, nil
}

func sameClient(a, b Client) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// clientKeys returns the parsed keys of c: from its inline set, parsed
// once, or from its jwks_uri, fetched and cached. refresh asks for a
// refetch of a jwks_uri (an unknown kid), which happens at most every
// jwksMinRefetch.
func (r *Registry) clientKeys(ctx context.Context, c Client, refresh bool) ([]publicKey, error) {
	r.mu.Lock()
	kc := r.keys[c.ID]
	if kc == nil {
		kc = &keyCache{}
		r.keys[c.ID] = kc
	}
	r.mu.Unlock()

	kc.mu.Lock()
	defer kc.mu.Unlock()
	// A caller holding the record from before a Put (a reload of the
	// clients file while it requests a token) must not leave the old keys
	// cached under the new record: keys count only for the source they came
	// from.
	if source := c.JWKSURI + "\x00" + string(c.JWKS); kc.source != source {
		kc.source, kc.keys, kc.fetched, kc.failed = source, nil, time.Time{}, time.Time{}
	}
	if c.JWKSURI == "" {
		if kc.keys == nil {
			keys, err := parseJWKS(c.JWKS)
			if err != nil {
				return nil, err
			}
			kc.keys = keys
		}
		return kc.keys, nil
	}
	age := time.Since(kc.fetched)
	if kc.keys != nil && age < jwksTTL && !(refresh && age >= jwksMinRefetch) {
		return kc.keys, nil
	}
	// A fetch is due. After a failed one, none for jwksMinRefetch, whatever
	// asks (anyone can send a token request naming the client).
	if !kc.failed.IsZero() && time.Since(kc.failed) < jwksMinRefetch {
		if kc.keys != nil && age < jwksTTL {
			return kc.keys, nil
		}
		return nil, kc.lastErr
	}
	keys, err := r.fetchJWKS(ctx, c.JWKSURI)
	if err != nil {
		kc.failed, kc.lastErr = time.Now(), err
		if kc.keys != nil && age < jwksTTL {
			return kc.keys, nil // keep what we had; the refetch was a bonus
		}
		return nil, err
	}
	kc.keys, kc.fetched, kc.failed = keys, time.Now(), time.Time{}
	return keys, nil
}

func (r *Registry) fetchJWKS(ctx context.Context, uri string) ([]publicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks_uri: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, errors.New("fetch jwks_uri: key set larger than 256 KiB")
	}
	return parseJWKS(body)
}
