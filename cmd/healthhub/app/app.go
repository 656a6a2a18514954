// Package app wires healthhub together: configuration, the store, the
// service and REST layers, health and metrics endpoints, and the HTTP
// server's life cycle. cmd/healthhub's main only calls Main; tests start the
// whole server in-process through New and Serve.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"healthhub/auth"
	"healthhub/fhir/interaction"
	"healthhub/fhir/rest"
	"healthhub/fhir/search"
	"healthhub/fhir/validate"
	"healthhub/store"
)

// Version is the software version reported in the CapabilityStatement.
var Version = "0.1.0-dev"

// Config is everything serve needs; zero values take the defaults below.
type Config struct {
	Addr            string // listen address
	DataDir         string // directory of the bbolt file
	BaseURL         string // absolute FHIR base; derived from the listener when empty
	MaxBody         int64  // request body limit in bytes
	ShutdownTimeout time.Duration
	// BodyIdleTimeout: how long a request body may pause before the
	// connection is dropped (deadline.go); DefaultBodyIdleTimeout when 0.
	BodyIdleTimeout time.Duration
	Logger          *slog.Logger
	// MaxBundleEntries bounds the entries of a transaction or batch Bundle
	// (more: 413). MaxBody applies to the Bundle too, and is usually the
	// first limit reached: at the defaults, a Bundle of 10,000 entries fits
	// only if its entries average under ~1.6 kB.
	MaxBundleEntries int
	// ConditionalDelete is "single" (a conditional delete matching several
	// resources is 412) or "multiple" (it deletes them all).
	ConditionalDelete string
	// AuthOff runs every request as an all-powerful local principal
	// (--auth=off, local experiments only). Auth is on by default.
	AuthOff bool
	// ClientsFile seeds the client registry (a JSON array; idempotent).
	ClientsFile string
	// TokenLifetime of access tokens; auth.DefaultTokenLifetime when zero.
	TokenLifetime time.Duration
}

// Defaults.
const (
	DefaultAddr              = "127.0.0.1:8080"
	DefaultDataDir           = "./data"
	DefaultMaxBody           = 16 << 20
	DefaultShutdownTimeout   = 15 * time.Second
	DefaultMaxBundleEntries  = 10_000
	DefaultConditionalDelete = "single"
)

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.BodyIdleTimeout == 0 {
		c.BodyIdleTimeout = DefaultBodyIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxBundleEntries == 0 {
		c.MaxBundleEntries = DefaultMaxBundleEntries
	}
	if c.ConditionalDelete == "" {
		c.ConditionalDelete = DefaultConditionalDelete
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--addr %q: want host:port, such as 127.0.0.1:8080 or :8080", c.Addr)
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("--addr %q: %v", c.Addr, err)
	}
	if c.MaxBody < 1024 {
		return fmt.Errorf("--max-body %d is too small: at least 1024 bytes", c.MaxBody)
	}
	if c.ShutdownTimeout < 0 {
		return errors.New("--shutdown-timeout must not be negative")
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(c.BaseURL, "?#") || u.User != nil {
			return fmt.Errorf("--base-url %q: an absolute http(s) URL without query or fragment, such as https://fhir.example.org/fhir", c.BaseURL)
		}
	}
	if c.MaxBundleEntries < 1 {
		return fmt.Errorf("--max-bundle-entries %d: at least 1", c.MaxBundleEntries)
	}
	if c.ConditionalDelete != "single" && c.ConditionalDelete != "multiple" {
		return fmt.Errorf("--conditional-delete %q: use single or multiple", c.ConditionalDelete)
	}
	if c.TokenLifetime != 0 && (c.TokenLifetime < time.Second || c.TokenLifetime > auth.MaxTokenLifetime) {
		return fmt.Errorf("--token-lifetime %s: between 1s and %s", c.TokenLifetime, auth.MaxTokenLifetime)
	}
	if c.AuthOff && c.ClientsFile != "" {
		return errors.New("--clients needs auth: drop --auth=off")
	}
	return nil
}

// App is a running healthhub.
type App struct {
	cfg      Config
	store    *store.Bolt
	registry *search.Registry
	auth     *auth.Server // nil: auth off
	handler  http.Handler
}

// ServeMmapSize is the address space serve reserves for its database file
// (store.Options.InitialMmapSize; not memory). bbolt remaps the file as it
// grows past its mapping, and a remap waits for every open read
// transaction, while every write waits for the remap: a long search, a
// $everything or the preparation of an index fold (tens of ms) then
// stalls all writes. With the reservation that happens only past 1 GiB,
// once per further GiB. Where the address space is limited (ulimit -v,
// systemd's LimitAS=) and the reservation does not fit, serve maps the
// file as it grows instead, and says so (openServeStore). The file starts
// at ~16 MiB with it (bbolt grows a file in 16 MiB steps once its mapping
// is that large; the space is allocated as it is written).
const ServeMmapSize = 1 << 30

// openStore opens the store in dir for the services built with reg: with
// their Indexer, which every opener of the file must give (the file keeps
// no copy of the index entries the Indexer derives).
func openStore(dir string, reg *search.Registry, o store.Options) (*store.Bolt, error) {
	o.Indexer = interaction.NewIndexer(reg)
	return store.Open(dir, o)
}

// OpenStore opens the store in dir as serve does, with the Indexer of the
// official search parameters, for a program or test that reads or writes
// a stopped server's data (openStore).
func OpenStore(dir string, o store.Options) (*store.Bolt, error) {
	reg, err := search.Load()
	if err != nil {
		return nil, err
	}
	return openStore(dir, reg, o)
}

// openServeStore opens the store in dir with ServeMmapSize reserved, or
// without the reservation when the process may not map that much (ENOMEM:
// an address-space limit), with a warning.
func openServeStore(dir string, log *slog.Logger, open func(string, store.Options) (*store.Bolt, error)) (*store.Bolt, error) {
	st, err := open(dir, store.Options{InitialMmapSize: ServeMmapSize})
	if errors.Is(err, syscall.ENOMEM) {
		log.Warn("no address space for the database file's 1 GiB reservation (an address-space limit such as ulimit -v?): mapping it as it grows, so long reads can stall writes while it does",
			"err", err.Error())
		st, err = open(dir, store.Options{})
	}
	return st, err
}

// New opens the store and builds the handler. baseURL must be final: when
// cfg.BaseURL is empty, pass the address the listener got.
func New(cfg Config) (*App, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg, err := search.Load()
	if err != nil {
		return nil, err
	}
	st, err := openServeStore(cfg.DataDir, cfg.Logger, func(dir string, o store.Options) (*store.Bolt, error) {
		return openStore(dir, reg, o)
	})
	if err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = BaseURLFor(cfg.Addr)
	}
	a := &App{cfg: cfg, store: st, registry: reg}
	if err := a.openAuth(); err != nil {
		st.Close()
		return nil, err
	}
	a.handler = a.routes()
	return a, nil
}

// openAuth starts the authorization server (auth on) or warns (auth off).
func (a *App) openAuth() error {
	log := a.cfg.Logger
	if a.cfg.AuthOff {
		log.Warn("AUTHENTICATION IS OFF (--auth=off): every request runs as an all-powerful local principal; use only for local experiments on a loopback address")
		return nil
	}
	ctx := context.Background()
	as, err := auth.New(ctx, a.store, auth.Config{BaseURL: a.cfg.BaseURL, TokenLifetime: a.cfg.TokenLifetime, Logger: log})
	if err != nil {
		return err
	}
	a.auth = as
	if a.cfg.ClientsFile != "" {
		res, err := a.seedClients(ctx)
		if err != nil {
			return err
		}
		log.Info("clients seeded", "file", a.cfg.ClientsFile, "added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged)
	}
	if len(as.Clients().List()) == 0 {
		log.Warn("no client is registered, so every FHIR request will get 401: stop the server and run `healthhub clients add --data " + a.cfg.DataDir + " --id my-client --scope 'system/*.cruds' --generate-key my-client.pem`, or start with --clients FILE (see README)")
	}
	return nil
}

func (a *App) seedClients(ctx context.Context) (auth.SeedResult, error) {
	raw, err := os.ReadFile(a.cfg.ClientsFile)
	if err != nil {
		return auth.SeedResult{}, fmt.Errorf("--clients: %w", err)
	}
	res, err := a.auth.Clients().Seed(ctx, raw)
	if err != nil {
		return res, fmt.Errorf("--clients %s: %w", a.cfg.ClientsFile, err)
	}
	return res, nil
}

// ReloadClients seeds the client registry from the --clients file again,
// while serving (serve does it on SIGHUP): a new hospital system, a
// rotated key, a changed scope or a client the file now disables takes
// effect without a restart. A file that does not read or validate changes
// nothing.
func (a *App) ReloadClients(ctx context.Context) (auth.SeedResult, error) {
	if a.auth == nil || a.cfg.ClientsFile == "" {
		return auth.SeedResult{}, errors.New("no --clients file to reload (or auth is off)")
	}
	return a.seedClients(ctx)
}

// BaseURLFor derives the FHIR base from a listen address.
func BaseURLFor(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr + "/fhir"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/fhir"
}

func (a *App) routes() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		a.storeCollector(),
	)
	baseURL := a.cfg.BaseURL
	v := validate.New()
	// Load the schema now, not on the first client's request (~0.2 s).
	_ = v.Validate("Patient", []byte(`{"resourceType":"Patient"}`))
	svc := interaction.New(a.store, v, a.registry)
	svc.SetBaseURL(baseURL)
	h := rest.New(svc, rest.Config{
		BaseURL:  baseURL,
		MaxBody:  a.cfg.MaxBody,
		Version:  Version,
		Logger:   a.cfg.Logger,
		Registry: reg,
		Search:   a.registry,

		MaxBundleEntries: a.cfg.MaxBundleEntries,
		MultipleDeletes:  a.cfg.ConditionalDelete == "multiple",
		Auth:             a.auth,
	})

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	e.Use(h.Middleware()...)
	e.NoRoute(h.NoRoute)
	e.NoMethod(h.NoMethod)
	get := e.GET // HEAD too: rest.ServeHEAD
	get("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	get("/readyz", a.ready)
	get("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	if a.auth != nil {
		smart := gin.WrapH(a.auth.SMARTConfigHandler())
		get("/.well-known/smart-configuration", smart)
		get("/fhir/.well-known/smart-configuration", smart)
		e.POST("/auth/token", gin.WrapH(a.auth.TokenHandler()))
		e.POST("/auth/introspect", gin.WrapH(a.auth.IntrospectHandler()))
		get("/auth/jwks", gin.WrapH(a.auth.JWKSHandler()))
	}
	h.Register(e.Group("/fhir"))
	return e
}

// ready answers whether the database answers a read within ReadyTimeout.
// Ping checks its context only before it starts: a read that waits in
// bbolt (for a remap of the growing file, which waits for the reads under
// way) would hold the probe as long, so it is not waited for past the
// timeout; it ends with the stall.
func (a *App) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), ReadyTimeout)
	defer cancel()
	pinged := make(chan error, 1)
	go func() { pinged <- a.store.Ping(ctx) }()
	var err error
	select {
	case err = <-pinged:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// ReadyTimeout bounds /readyz's read of the database: no answer by then is
// 503.
const ReadyTimeout = 2 * time.Second

// storeCollector exports the database's size and transaction counts.
func (a *App) storeCollector() prometheus.Collector {
	return &storeMetrics{st: a.store,
		size:    prometheus.NewDesc("healthhub_db_size_bytes", "Size of the bbolt database file in use.", nil, nil),
		txs:     prometheus.NewDesc("healthhub_db_transactions_total", "Database transactions by kind.", []string{"kind"}, nil),
		failed:  prometheus.NewDesc("healthhub_db_write_failures_total", "Write transactions that did not commit (including refused preconditions).", nil, nil),
		commits: prometheus.NewDesc("healthhub_db_commits_total", "bbolt commits (one per group commit of concurrent writes).", nil, nil),
		pages:   prometheus.NewDesc("healthhub_db_page_writes_total", "Page writes at commits (a page, or a run of overflow pages, each).", nil, nil),
		jkeys:   prometheus.NewDesc("healthhub_index_journal_keys", "Search-index keys in the index journal, not yet folded into the index B+trees.", nil, nil),
		folds:   prometheus.NewDesc("healthhub_index_journal_folds_total", "Folds of the index journal into the index B+trees.", nil, nil),
		planned: prometheus.NewDesc("healthhub_index_journal_folds_planned_total", "Folds of the index journal whose writes were computed before their write transaction.", nil, nil),
		foldSec: prometheus.NewDesc("healthhub_index_journal_fold_seconds_total", "Time the folds of the index journal took; writes arriving meanwhile wait.", nil, nil),
		planSec: prometheus.NewDesc("healthhub_index_journal_fold_plan_seconds_total", "Time preparing the folds' writes took, from a snapshot while writes carried on.", nil, nil),
	}
}

type storeMetrics struct {
	st                                                                         *store.Bolt
	size, txs, failed, commits, pages, jkeys, folds, planned, foldSec, planSec *prometheus.Desc
}

func (m *storeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.size, m.txs, m.failed, m.commits, m.pages, m.jkeys, m.folds, m.planned, m.foldSec, m.planSec} {
		ch <- d
	}
}

func (m *storeMetrics) Collect(ch chan<- prometheus.Metric) {
	s := m.st.Stats()
	ch <- prometheus.MustNewConstMetric(m.size, prometheus.GaugeValue, float64(s.SizeBytes))
	ch <- prometheus.MustNewConstMetric(m.txs, prometheus.CounterValue, float64(s.ReadTxs), "read")
	ch <- prometheus.MustNewConstMetric(m.txs, prometheus.CounterValue, float64(s.WriteTxs), "write")
	ch <- prometheus.MustNewConstMetric(m.failed, prometheus.CounterValue, float64(s.FailedWrites))
	ch <- prometheus.MustNewConstMetric(m.commits, prometheus.CounterValue, float64(s.Commits))
	ch <- prometheus.MustNewConstMetric(m.pages, prometheus.CounterValue, float64(s.PageWrites))
	ch <- prometheus.MustNewConstMetric(m.jkeys, prometheus.GaugeValue, float64(s.JournalKeys))
	ch <- prometheus.MustNewConstMetric(m.folds, prometheus.CounterValue, float64(s.JournalFolds))
	ch <- prometheus.MustNewConstMetric(m.planned, prometheus.CounterValue, float64(s.JournalFoldsPlanned))
	ch <- prometheus.MustNewConstMetric(m.foldSec, prometheus.CounterValue, s.JournalFoldTime.Seconds())
	ch <- prometheus.MustNewConstMetric(m.planSec, prometheus.CounterValue, s.JournalFoldPlanTime.Seconds())
}

// Handler is the whole HTTP API.
func (a *App) Handler() http.Handler { return a.handler }

// Serve answers on ln until ctx ends, then stops accepting, lets in-flight
// requests finish (bounded by ShutdownTimeout) and closes the store.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	return a.ServeUntil(ctx, context.Background(), ln)
}

// ServeUntil is Serve, except that in-flight requests are cut off as soon
// as now ends (serve: a second SIGTERM or SIGINT) rather than when
// ShutdownTimeout has passed.
func (a *App) ServeUntil(ctx, now context.Context, ln net.Listener) error {
	h := bodyIdleDeadline(rest.ServeHEAD(a.handler), a.cfg.BodyIdleTimeout)
	var inflight atomic.Int64 // handlers running (cutOff waits for them)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inflight.Add(1)
			defer inflight.Add(-1)
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		// A client that stops reading a response holds its handler and
		// buffers; a large $everything page to a slow client takes seconds.
		WriteTimeout:   WriteTimeout,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		a.Close()
		return err
	case <-ctx.Done():
	}
	a.cfg.Logger.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(now, a.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	cut := true
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		a.cfg.Logger.Warn("in-flight requests did not finish in time; closing them")
		_ = srv.Close()
	case errors.Is(err, context.Canceled):
		a.cfg.Logger.Warn("told again to stop: closing in-flight requests now")
		_ = srv.Close()
	default:
		cut = false
	}
	cerr := a.Close()
	if cut {
		a.waitCutOff(&inflight)
	}
	if cerr != nil {
		return cerr
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// CutOffWait bounds how long ServeUntil waits, once it has cut off the
// requests in flight and closed the store, for their handlers to return.
// Each then writes its access log line, which a return before would lose
// with the process: a transaction cut off may have committed (closing the
// store waits for a commit under way) while its client got no answer, and
// the log is where an operator finds out. The store refuses their
// transactions once closed, so what they have left is quick.
const CutOffWait = 2 * time.Second

// waitCutOff waits up to CutOffWait for the handlers still running.
func (a *App) waitCutOff(inflight *atomic.Int64) {
	deadline := time.Now().Add(CutOffWait)
	for inflight.Load() > 0 {
		if time.Now().After(deadline) {
			a.cfg.Logger.Warn("requests cut off are still running; their log lines are lost", "requests", inflight.Load())
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Close closes the store (waiting for open transactions).
func (a *App) Close() error { return a.store.Close() }
