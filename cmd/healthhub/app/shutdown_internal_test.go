package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func startOnLoopback(t *testing.T, cfg Config) (base string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	cfg.DataDir = t.TempDir()
	cfg.AuthOff = true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	return "http://" + cfg.Addr + "/fhir", func() error { cancel(); return <-done }
}

// TestShutdownLetsWritesFinish: a write whose body is still arriving
// when the server is told to stop completes and gets its 201; afterwards
// no goroutine of the server is left.
func TestShutdownLetsWritesFinish(t *testing.T) {
	before := runtime.NumGoroutine()
	base, stop := startOnLoopback(t, Config{ShutdownTimeout: 5 * time.Second})
	hc := &http.Client{Transport: &http.Transport{}}
	// warm up: some indexed writes and a search
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodPost, base+"/Patient", strings.NewReader(fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"F%d"}]}`, i)))
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, base+"/Patient", pr)
	req.Header.Set("Content-Type", "application/fhir+json")
	var wg sync.WaitGroup
	var status int
	var body []byte
	wg.Go(func() {
		resp, err := hc.Do(req)
		if err != nil {
			t.Errorf("in-flight write: %v", err)
			return
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	})
	pw.Write([]byte(`{"resourceType":"Patient",`))
	time.Sleep(200 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(200 * time.Millisecond)
	pw.Write([]byte(`"active":true}`))
	pw.Close()
	wg.Wait()
	if status != http.StatusCreated {
		t.Errorf("in-flight write: %d %s, want 201", status, bytes.TrimSpace(body))
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: %v", err)
	}
	hc.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Serve returned, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestSecondSignalStopsAtOnce: SIGINT stops accepting and waits up to
// --shutdown-timeout for in-flight requests; a second SIGINT (an operator
// pressing Ctrl-C again) stops waiting: the requests are cut off and the
// database is closed now, not when the timeout ends.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// The test signals its own process: should serve not be catching the
	// signals (it failed to start, or returned), this keeps SIGINT from
	// ending every test of the package; the test fails on its own terms.
	absorb := make(chan os.Signal, 4)
	signal.Notify(absorb, os.Interrupt)
	defer signal.Stop(absorb)
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"serve", "--auth", "off", "--addr", addr, "--data", t.TempDir(), "--shutdown-timeout", "30s"}, &out, &out)
	}()
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		// Serving, and this server: another test may have taken the port.
		if strings.Contains(out.String(), "healthhub serving") {
			if conn, err = net.Dial("tcp", addr); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not up: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer conn.Close()
	// An in-flight write whose body never arrives.
	fmt.Fprintf(conn, "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{\"resourceType\":")
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("serve returned %s after the second SIGINT, want at once", d)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("serve did not return\n%s", out.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
