package conformance_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
)

// BenchmarkHandler runs reads and vreads through the whole handler (gin,
// the middleware, auth, the store, the access log formatted as text to
// nowhere) without TCP, net/http's connection handling or a client: the
// part of a request's CPU that this code decides, measured without the
// noise of the kernel and of whatever else runs on the machine.
//
//	go test -run '^$' -bench Handler -benchmem ./conformance/
func BenchmarkHandler(b *testing.B) {
	dir, _ := seedBenchData(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.New(app.Config{
		Addr: ln.Addr().String(), DataDir: dir, ClientsFile: harnessClientsFile, TokenLifetime: time.Hour,
		Logger: slog.New(slog.NewTextHandler(discard{}, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	root := "http://" + ln.Addr().String()
	token, err := harnessToken(context.Background(), root, harnessScope)
	if err != nil {
		b.Fatal(err)
	}
	h := a.Handler()
	for _, bc := range []struct {
		name string
		path func(i int) string
	}{
		{"read", func(i int) string { return "/fhir/Patient/bench-" + strconv.Itoa(i%benchPatients) }},
		{"vread", func(i int) string {
			return "/fhir/Patient/bench-h" + strconv.Itoa(i%benchHistories) + "/_history/" + strconv.Itoa(1+i%benchVersions)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			reqs := make([]*http.Request, 64)
			for i := range reqs {
				r, err := http.NewRequest(http.MethodGet, root+bc.path(i*7), nil)
				if err != nil {
					b.Fatal(err)
				}
				r.Header.Set("Accept", "application/fhir+json")
				r.Header.Set("Authorization", "Bearer "+token)
				reqs[i] = r
			}
			w := &leanWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			cpu := clientCPU(b)
			for b.Loop() {
				clear(w.h)
				w.status = 0
				h.ServeHTTP(w, reqs[i%len(reqs)])
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
				i++
			}
			// The process's CPU (GC included), which other load on the
			// machine disturbs less than the wall time.
			b.ReportMetric(float64((clientCPU(b)-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// leanWriter is a ResponseWriter that keeps only the status.
type leanWriter struct {
	h      http.Header
	status int
}

func (w *leanWriter) Header() http.Header { return w.h }

func (w *leanWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *leanWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
