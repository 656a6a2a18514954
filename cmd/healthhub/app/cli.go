package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"healthhub/fhir/interaction"
	"healthhub/fhir/search"
	"healthhub/store"
)

const usage = `healthhub: a FHIR R4 server for a regional health information exchange.

Usage:
  healthhub serve [flags]     start the server (healthhub serve --help for flags)
  healthhub reindex [flags]   rebuild every search index from the stored resources
                              (after a search definition changed; the server must be stopped)
  healthhub import [flags] FILE|DIR ...
                              load FHIR NDJSON files (Bulk Data, Synthea) into the data
                              directory (the server must be stopped)
  healthhub help              show this help

The server keeps everything in one bbolt file (healthhub.db) in its data
directory; no other server is needed.
` + authUsage

// Main runs the command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		ctx, now, stop := shutdownSignals()
		defer stop()
		return serve(ctx, now, args[1:], stdout, stderr)
	case "reindex":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return reindex(ctx, args[1:], stdout, stderr)
	case "import":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return importCmd(ctx, args[1:], stdout, stderr)
	case "clients", "keys", "token":
		return authCommand(context.Background(), args[0], args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "healthhub: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// ServeGCPercent is the GOGC serve runs with unless GOGC is set: its live
// heap is small (schemas, paging snapshots) and nearly everything it
// allocates lives for one request, so collecting four times less often
// than the default costs ~20% less CPU per write and per read
// (BENCHMARKS.md) for a heap that peaks at about five times the live one.
// GOMEMLIMIT, when set, still bounds it.
const ServeGCPercent = 400

// ServeHeapFloor is the smallest heap goal serve lets the collector aim
// for unless GOGC is set: while the live heap is under a fifth of it, GOGC
// rises above ServeGCPercent so that collections come ~4x less often, which
// took the p99 of reads paced at 10,000 a second on two cores from over
// 5 ms in 4 of 10 runs to 1 of 10 (heapfloor.go; BENCHMARKS.md, "The
// collector and the read tail"). The price is up to this much memory that
// a smaller goal would have returned; GOMEMLIMIT, when set, bounds it.
const ServeHeapFloor = 256 << 20

// ServeProcsPerCPU is how many Go processors serve runs per CPU unless
// GOMAXPROCS is set. Every write waits for one goroutine, the group
// commit's leader, which blocks in fdatasync and then needs a processor
// back: with one per CPU it queues behind the requests parsing, validating
// and extracting index values, and the commit path, the one serial stage,
// idles while they run. With two per CPU there is mostly one free, and the
// kernel's scheduler, which favours a thread that has slept, runs it
// promptly: +20% writes a second, indexed or not, and a lower read p99 on
// two cores (BENCHMARKS.md, "The commit path").
const ServeProcsPerCPU = 2

// TuneRuntime gives the Go runtime serve's settings, ServeGCPercent with
// ServeHeapFloor and ServeProcsPerCPU, except where GOGC or GOMAXPROCS says
// otherwise; restore puts back what it changed (for benchmarks that
// measure as serve runs). Calls that overlap (serves run in one test
// process) share the first one's settings, and the last restore puts back
// what was there before it.
func TuneRuntime() (restore func()) {
	tuning.Lock()
	defer tuning.Unlock()
	if tuning.users++; tuning.users == 1 {
		tuning.restore = tuneRuntime()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			tuning.Lock()
			defer tuning.Unlock()
			if tuning.users--; tuning.users == 0 {
				tuning.restore()
			}
		})
	}
}

var tuning struct {
	sync.Mutex
	users   int
	restore func()
}

func tuneRuntime() (restore func()) {
	gc, procs := -1, 0
	stopFloor := func() {}
	if os.Getenv("GOGC") == "" {
		gc = debug.SetGCPercent(ServeGCPercent)
		stopFloor = startHeapFloor(ServeGCPercent, ServeHeapFloor)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		procs = runtime.GOMAXPROCS(ServeProcsPerCPU * runtime.GOMAXPROCS(0))
	}
	return func() {
		stopFloor()
		if gc != -1 {
			debug.SetGCPercent(gc)
		}
		if procs != 0 {
			runtime.GOMAXPROCS(procs)
		}
	}
}

// shutdownSignals returns ctx, which ends at the first SIGTERM or SIGINT
// (stop gracefully), and now, which ends at the second (stop waiting for
// in-flight requests); stop releases the signals.
func shutdownSignals() (ctx, now context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	now, cancelNow := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			select {
			case <-sigs:
				if n == 0 {
					cancel()
					continue
				}
				cancelNow()
				return
			case <-done:
				return
			}
		}
	}()
	return ctx, now, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
		cancelNow()
	}
}

// serve runs the server until ctx ends, then lets in-flight requests
// finish for up to --shutdown-timeout, or until now ends.
func serve(ctx, now context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var logFormat string
	fs.StringVar(&cfg.Addr, "addr", DefaultAddr, "address to listen on (host:port); loopback by default")
	fs.StringVar(&cfg.DataDir, "data", DefaultDataDir, "directory of the database file, created if missing")
	fs.StringVar(&cfg.BaseURL, "base-url", "", "absolute FHIR base URL used in Location, fullUrl and links (default http://<addr>/fhir)")
	fs.Int64Var(&cfg.MaxBody, "max-body", DefaultMaxBody, "largest request body accepted, in bytes (larger: 413)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "how long in-flight requests may finish after SIGTERM/SIGINT")
	fs.IntVar(&cfg.MaxBundleEntries, "max-bundle-entries", DefaultMaxBundleEntries, "most entries in a transaction or batch Bundle (more: 413); --max-body applies to the Bundle too")
	fs.StringVar(&cfg.ConditionalDelete, "conditional-delete", DefaultConditionalDelete, "single: a conditional delete matching several resources is 412; multiple: it deletes them all")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	authFlags(fs, &cfg)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: healthhub serve [flags]\n\nStarts the FHIR R4 server; the API is at <base-url> (/fhir), with /healthz, /readyz and /metrics beside it.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "healthhub serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.ShutdownTimeout <= 0 { // Config reads 0 as the default; a flag of 0 is a mistake
		fmt.Fprintf(stderr, "healthhub serve: --shutdown-timeout %s: give a positive duration such as 15s\n", cfg.ShutdownTimeout)
		return 2
	}
	defer TuneRuntime()() // restored when serve returns: it may run inside another program (tests)
	lw := newLogWriter(stderr, logFlushInterval, logBufferSize)
	defer lw.Close() // every return below flushes the log
	var lh slog.Handler
	switch logFormat {
	case "text":
		lh = slog.NewTextHandler(lw, nil)
	case "json":
		lh = slog.NewJSONHandler(lw, nil)
	default:
		fmt.Fprintf(stderr, "healthhub serve: --log-format %q: use text or json\n", logFormat)
		return 2
	}
	cfg.Logger = slog.New(promptHandler{lh, lw})
	log := cfg.Logger
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "healthhub serve: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Addr, "error", err)
		return 1
	}
	cfg.Addr = ln.Addr().String() // the real port when :0 was asked
	a, err := New(cfg)
	if err != nil {
		ln.Close()
		log.Error("cannot start", "error", err)
		return 1
	}
	base := cfg.BaseURL
	if base == "" {
		base = BaseURLFor(cfg.Addr)
	}
	log.Info("healthhub serving", "addr", cfg.Addr, "base_url", base, "data", cfg.DataDir, "version", Version)
	if cfg.ClientsFile != "" {
		stop := reloadClientsOnHangup(ctx, a, log)
		defer stop()
	}
	start := time.Now()
	if err := a.ServeUntil(ctx, now, ln); err != nil {
		log.Error("server stopped", "error", err)
		return 1
	}
	log.Info("stopped cleanly", "uptime", time.Since(start).Round(time.Second).String())
	return 0
}

func reindex(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", DefaultDataDir, "directory of the database file")
	// Every reindex starts from nothing: the index entries of a resource
	// are derived from it by the running code (store.Indexer), which
	// cannot tell what other code put in the index before.
	fromScratch := fs.Bool("from-scratch", true, "accepted for older scripts: every reindex drops the search indexes and builds them again\nfrom the stored resources alone")
	compact := fs.Bool("compact", true, "then rewrite the file without the pages the old indexes held (needs free disk space for a\ncopy of the data; without it, writes are slow until those pages are used again)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: healthhub reindex [flags]\n\nDrops the search indexes and builds them again from every stored resource, after\nan upgrade that changed the search parameters or their extraction (serve then\nrefuses the file until this has run), or when they are damaged. Stop the server\nfirst; it refuses the file until the rebuild has finished.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "healthhub reindex: unexpected argument %q (the data directory is --data DIR)\n", fs.Arg(0))
		return 2
	}
	if !*fromScratch {
		fmt.Fprintln(stderr, "healthhub reindex: every reindex is from scratch (--from-scratch=false is not possible)")
		return 2
	}
	reg, err := search.Load()
	if err != nil {
		fmt.Fprintf(stderr, "healthhub reindex: %v\n", err)
		return 1
	}
	st, err := openStore(*dataDir, reg, store.Options{RebuildIndexes: true})
	if err != nil {
		fmt.Fprintf(stderr, "healthhub reindex: %v\n", err)
		return 1
	}
	start := time.Now()
	prog := newProgress(stderr)
	n, err := interaction.New(st, nil, reg).Reindex(ctx, func(typ string, done int) {
		prog.show(func(time.Duration) string { return fmt.Sprintf("reindexing %s: %d", typ, done) })
	})
	prog.clear()
	if err == nil {
		err = st.IndexesRebuilt(ctx)
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "healthhub reindex: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "reindexed %d resources in %s\n", n, time.Since(start).Round(time.Millisecond))
	if !*compact {
		return 0
	}
	// The dropped indexes' pages are free now: bbolt would write their
	// list at every commit until writes had used them again.
	start = time.Now()
	before, after, err := store.Compact(*dataDir)
	switch {
	case err != nil && after > 0:
		fmt.Fprintf(stderr, "healthhub reindex: compacted the file from %d MB to %d MB, but: %v\n", before>>20, after>>20, err)
		return 0
	case err != nil:
		// The indexes are rebuilt and the file serves; only its free
		// pages remain.
		fmt.Fprintf(stderr, "healthhub reindex: the indexes are rebuilt, but the file was not compacted: %v\n", err)
		return 0
	}
	fmt.Fprintf(stdout, "compacted the file from %d MB to %d MB in %s\n", before>>20, after>>20, time.Since(start).Round(time.Millisecond))
	return 0
}

// reloadClientsOnHangup reloads the --clients file whenever the process
// gets SIGHUP, until ctx ends or stop is called: onboarding a hospital
// system, rotating its key or disabling it needs no restart (the clients
// commands need the server stopped, as they open its file).
func reloadClientsOnHangup(ctx context.Context, a *App, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-hup:
				res, err := a.ReloadClients(ctx)
				if err != nil {
					log.Error("clients not reloaded: the registry is unchanged", "error", err)
					continue
				}
				log.Info("clients reloaded", "added", res.Added, "updated", res.Updated, "unchanged", res.Unchanged)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
