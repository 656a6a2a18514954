package app

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"healthhub/fhir/search"
	"healthhub/store"
)

// TestReadyzAnswersWhenTheDatabaseDoesNot: /readyz bounds its check of
// the database (2 s) and answers 503 when the database does not answer in
// time, rather than hanging with it. The database stops answering here as
// it does in production when the file outgrows its mapping while a long
// read is open: the write that grows it waits for the read to end before
// remapping, and every new read waits behind it.
func TestReadyzAnswersWhenTheDatabaseDoesNot(t *testing.T) {
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
	defer srv.Close()

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
	defer func() {
		close(release)
		<-readDone
		<-written
		st.Close()
	}()
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
	hc := &http.Client{Timeout: 6 * time.Second}
	for {
		select {
		case <-written:
			t.Fatal("the write finished: the database did not stall")
		default:
		}
		start := time.Now()
		resp, err := hc.Get(srv.URL + "/readyz")
		took := time.Since(start)
		if err != nil {
			t.Fatalf("GET /readyz while the database does not answer: %v after %s", err, took.Round(time.Millisecond))
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && took < time.Second {
			time.Sleep(20 * time.Millisecond) // the write is not waiting yet
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable || took > 4*time.Second {
			t.Errorf("GET /readyz while the database does not answer: %d after %s, want 503 within about 2 s", resp.StatusCode, took.Round(time.Millisecond))
		}
		return
	}
}
