package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"healthhub/fhir/search"
	"healthhub/store"
)

// stalledDatabase serves an App whose database stops answering reads as
// it does in production when the file outgrows its mapping while a long
// read is open: the write that grows it waits for the read to end before
// remapping, and every new read waits behind it. It returns the server's
// URL once /readyz no longer answers 200 at once; the stall ends at
// cleanup.
func stalledDatabase(t *testing.T) string {
	t.Helper()
	reg, err := search.Load()
	if err != nil {
		t.Fatal(err)
	}
	// Without ServeMmapSize's reservation: the mapping starts small.
	st, err := openStore(t.TempDir(), reg, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := &App{cfg: Config{AuthOff: true, Logger: slog.New(slog.DiscardHandler)}, store: st, registry: reg}
	a.cfg.setDefaults()
	a.handler = a.routes()
	srv := httptest.NewServer(a.handler)

	inRead, release, written := make(chan struct{}), make(chan struct{}), make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- st.View(context.Background(), func(store.Tx) error {
			close(inRead)
			<-release
			return nil
		})
	}()
	<-inRead
	t.Cleanup(func() {
		close(release)
		<-readDone
		<-written
		srv.Close()
		st.Close()
	})
	// A write that outgrows the mapping: it waits for the read.
	given := `"` + strings.Repeat("x", 512<<10) + `"`
	big := `{"resourceType":"Patient","name":[{"given":[` + strings.Repeat(given+",", 7) + given + `]}]}`
	go func() {
		resp, err := http.Post(srv.URL+"/fhir/Patient", "application/fhir+json", strings.NewReader(big))
		if err == nil {
			resp.Body.Close()
		}
		close(written)
	}()
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-written:
			t.Fatal("the write finished: the database did not stall")
		default:
		}
		resp, err := hc.Get(srv.URL + "/readyz")
		if err != nil {
			return srv.URL // waiting
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return srv.URL
		}
		time.Sleep(20 * time.Millisecond) // the write is not waiting yet
	}
}

// TestReadyzAnswersWhenTheDatabaseDoesNot: /readyz bounds its check of
// the database (ReadyTimeout) and answers 503 when the database does not
// answer in time, rather than hanging with it.
func TestReadyzAnswersWhenTheDatabaseDoesNot(t *testing.T) {
	url := stalledDatabase(t)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 6 * time.Second}).Get(url + "/readyz")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("GET /readyz while the database does not answer: %v after %s", err, took.Round(time.Millisecond))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || took > ReadyTimeout+2*time.Second {
		t.Errorf("GET /readyz while the database does not answer: %d after %s, want 503 within about %s", resp.StatusCode, took.Round(time.Millisecond), ReadyTimeout)
	}
}

// TestMetricsAnswerWhenTheDatabaseDoesNot: /metrics needs no database
// transaction, so a scrape during a stall gets the metrics that show it.
func TestMetricsAnswerWhenTheDatabaseDoesNot(t *testing.T) {
	url := stalledDatabase(t)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 6 * time.Second}).Get(url + "/metrics")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("GET /metrics while the database does not answer: %v after %s", err, took.Round(time.Millisecond))
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "healthhub_db_size_bytes") || took > time.Second {
		t.Errorf("GET /metrics while the database does not answer: %d after %s, want 200 with healthhub_db_size_bytes at once", resp.StatusCode, took.Round(time.Millisecond))
	}
}
