package rest

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"healthhub/auth"
	"healthhub/conformance"
	"healthhub/fhir/interaction"
	"healthhub/fhir/search"
)

// Config for the REST layer.
type Config struct {
	// BaseURL is the absolute FHIR base, e.g. http://127.0.0.1:8080/fhir,
	// used in Location, fullUrl and links.
	BaseURL string
	MaxBody int64
	Version string
	Logger  *slog.Logger
	// Registry receives the request metrics; nil: not registered.
	Registry prometheus.Registerer
	// Search is the search-parameter registry the CapabilityStatement
	// declares; nil: no search.
	Search *search.Registry
	// MaxBundleEntries bounds the entries of a transaction or batch; 0: no
	// limit.
	MaxBundleEntries int
	// MultipleDeletes lets a conditional delete delete every match (else
	// more than one match is 412).
	MultipleDeletes bool
	// Auth checks each request's bearer token; nil: auth is off and every
	// request runs as auth.Local(), with a Warning header on every response.
	Auth *auth.Server
}

// Handlers serves the FHIR REST API over a Service.
type Handlers struct {
	svc     *interaction.Service
	base    string
	maxBody int64
	log     *slog.Logger
	metrics *metrics
	auth    *auth.Server

	bundleOpts interaction.BundleOptions

	routes      []route
	interaction map[string]string // "METHOD /path/pattern" -> interaction code
	capability  []byte
	allowOnly   map[string]string // fixed paths and the only methods they take (NoMethod's Allow)
}

// route is one registered FHIR endpoint; the CapabilityStatement and the
// metrics' interaction label are derived from this table.
type route struct {
	method, path string
	code         string // FHIR interaction code
	level        string // instance | type | system | operation (an instance operation on Patient)
	handle       gin.HandlerFunc
}

// New builds the handlers.
func New(svc *interaction.Service, cfg Config) *Handlers {
	h := &Handlers{
		svc:         svc,
		base:        strings.TrimRight(cfg.BaseURL, "/"),
		maxBody:     cfg.MaxBody,
		log:         cfg.Logger,
		metrics:     newMetrics(cfg.Registry),
		auth:        cfg.Auth,
		interaction: map[string]string{},
		bundleOpts:  interaction.BundleOptions{MaxEntries: cfg.MaxBundleEntries, MultipleDeletes: cfg.MultipleDeletes},
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.routes = []route{
		{http.MethodGet, "/metadata", "capabilities", "system", h.metadata},
		{http.MethodGet, "/_history", "history-system", "system", h.history},
		{http.MethodGet, "", "search-system", "system", h.search},
		{http.MethodPost, "/_search", "search-system", "system", h.search},
		// Bundle.type decides between transaction and batch; both are
		// declared (see capabilityStatement).
		{http.MethodPost, "", "transaction", "system", h.bundle},
		{http.MethodPost, "/:type", "create", "type", h.create}, // If-None-Exist: conditional create
		{http.MethodGet, "/:type", "search-type", "type", h.search},
		{http.MethodPut, "/:type", "update", "type", h.conditionalUpdate},
		{http.MethodDelete, "/:type", "delete", "type", h.conditionalDelete},
		{http.MethodPatch, "/:type", "patch", "type", h.patch},
		{http.MethodPost, "/:type/_search", "search-type", "type", h.search},
		{http.MethodGet, "/:type/_history", "history-type", "type", h.history},
		{http.MethodGet, "/:type/:id", "read", "instance", h.read},
		{http.MethodPut, "/:type/:id", "update", "instance", h.update},
		{http.MethodDelete, "/:type/:id", "delete", "instance", h.delete},
		{http.MethodPatch, "/:type/:id", "patch", "instance", h.patch},
		{http.MethodGet, "/:type/:id/_history", "history-instance", "instance", h.history},
		{http.MethodGet, "/:type/:id/_history/:vid", "vread", "instance", h.vread},
		{http.MethodGet, "/:type/:id/$everything", "everything", "operation", h.everything},
		{http.MethodPost, "/:type/:id/$everything", "everything", "operation", h.everythingPost},
	}
	h.capability = h.capabilityStatement(cfg.Version, cfg.Search, cfg.Auth)
	return h
}

// operationDefinitions are the canonical definitions of the operations
// the route table serves.
var operationDefinitions = map[string]string{
	"everything": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
}

func (h *Handlers) capabilityStatement(version string, reg *search.Registry, as *auth.Server) []byte {
	c := conformance.Capability{
		Software:        "healthhub",
		Version:         version,
		BaseURL:         h.base,
		Date:            time.Now(),
		Formats:         []string{mimeFHIRJSON, "json"},
		ResourceTypes:   conformance.ResourceTypes(),
		ConditionalRead: "full-support",
		UpdateCreate:    true,
	}
	if as != nil {
		c.OAuthToken, c.OAuthIntrospect = as.OAuthURIs()
	}
	for _, r := range h.routes {
		switch {
		case r.level == "operation":
			op := conformance.Operation{Type: "Patient", Name: r.code, Definition: operationDefinitions[r.code]}
			if !slices.Contains(c.Operations, op) { // served by GET and POST
				c.Operations = append(c.Operations, op)
			}
		case r.code == "transaction":
			c.SystemInteractions = append(c.SystemInteractions, "transaction", "batch")
		case r.level == "system":
			if r.code != "capabilities" && !slices.Contains(c.SystemInteractions, r.code) { // search-system: GET and POST
				c.SystemInteractions = append(c.SystemInteractions, r.code)
			}
		case r.code == "search-type":
			// declared per searchable type below, with its parameters
		case !slices.Contains(c.TypeInteractions, r.code):
			c.TypeInteractions = append(c.TypeInteractions, r.code)
		}
		// The type-level forms of the write routes are the conditional ones.
		switch {
		case r.level != "type":
		case r.code == "create":
			c.ConditionalCreate = true // create honors If-None-Exist
		case r.code == "update":
			c.ConditionalUpdate = true
		case r.code == "delete":
			c.ConditionalDelete = "single"
			if h.bundleOpts.MultipleDeletes {
				c.ConditionalDelete = "multiple"
			}
		}
	}
	if reg != nil {
		c.Search = map[string][]conformance.SearchParam{}
		c.SearchInclude, c.SearchRevInclude = map[string][]string{}, map[string][]string{}
		for _, t := range search.SearchTypes {
			c.SearchInclude[t] = []string{"*"}
			c.SearchRevInclude[t] = []string{"*"}
		}
		for _, t := range search.SearchTypes {
			for _, p := range reg.Params(t) {
				c.Search[t] = append(c.Search[t], conformance.SearchParam{Name: p.Code, Definition: p.URL, Type: string(p.Type)})
				if p.Type != search.Reference {
					continue
				}
				c.SearchInclude[t] = append(c.SearchInclude[t], t+":"+p.Code)
				for _, target := range p.Targets {
					if slices.Contains(search.SearchTypes, target) { // _revinclude from t to target's matches
						c.SearchRevInclude[target] = append(c.SearchRevInclude[target], t+":"+p.Code)
					}
				}
			}
		}
	}
	return conformance.CapabilityStatement(c)
}

// Register mounts the FHIR API on g (the /fhir group).
func (h *Handlers) Register(g *gin.RouterGroup) {
	for _, r := range h.routes {
		h.interaction[r.method+" "+g.BasePath()+r.path] = r.code
		g.Handle(r.method, r.path, h.authorized(r.code, h.negotiated(r.handle)))
	}
	// Without these, POST /metadata would reach create as type "metadata",
	// DELETE /_history a conditional delete of type "_history", GET
	// /_search a search of type "_search".
	h.allowOnly = map[string]string{}
	for _, path := range []string{"/metadata", "/_history"} {
		h.allowOnly[g.BasePath()+path] = "GET, HEAD"
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			g.Handle(m, path, h.NoMethod)
		}
	}
	h.allowOnly[g.BasePath()+"/_search"] = "POST"
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		g.Handle(m, "/_search", h.NoMethod)
	}
}

// negotiated refuses, before any work, a request for a format we do not write.
func (h *Handlers) negotiated(next gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := negotiate(c); err != nil {
			h.writeError(c, err)
			return
		}
		next(c)
	}
}

// NoRoute answers paths that are not part of the API.
func (h *Handlers) NoRoute(c *gin.Context) {
	h.writeOutcome(c, http.StatusNotFound, issue("not-found", "no such endpoint: "+c.Request.Method+" "+c.Request.URL.Path))
}

// NoMethod answers a known path with a method it does not take.
func (h *Handlers) NoMethod(c *gin.Context) {
	if allow, ok := h.allowOnly[c.Request.URL.Path]; ok {
		// gin's Allow would list the methods routed here only to be refused.
		c.Header("Allow", allow)
	}
	h.writeOutcome(c, http.StatusMethodNotAllowed, issue("not-supported", c.Request.Method+" is not supported on "+c.Request.URL.Path))
}

func (h *Handlers) metadata(c *gin.Context) {
	h.writeJSON(c, http.StatusOK, h.capability)
}
