package conformance_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"healthhub/cmd/healthhub/app"
	"healthhub/store"
)

// healthhub reindex rebuilds the indexes of a stopped server's data, and
// searches answer the same afterwards; on a data dir in use it refuses.
func TestReindexCommand(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, app.Config{DataDir: dir})
	for _, id := range []string{"r1", "r2", "r3"} {
		do(t, http.MethodPut, s.base+"/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","gender":"female"}`))
	}
	do(t, http.MethodDelete, s.base+"/Patient/r3", nil)

	var out bytes.Buffer
	if code := app.Main([]string{"reindex", "--data", dir}, &out, &out); code == 0 {
		t.Errorf("reindex on a data dir in use: exit 0, want a refusal:\n%s", out.String())
	}
	s.stop()

	out.Reset()
	if code := app.Main([]string{"reindex", "--data", dir}, &out, &out); code != 0 || !strings.Contains(out.String(), "reindexed 3 resources") {
		t.Fatalf("reindex: exit %d:\n%s", code, out.String())
	}
	s2 := startServer(t, app.Config{DataDir: dir})
	ids, total := searchAll(t, s2, "Patient?gender=female")
	if total != 2 || len(ids) != 2 {
		t.Errorf("after reindex: %v (total %d), want r1 and r2", ids, total)
	}
}

// healthhub reindex --from-scratch drops the indexes and builds them from
// the stored resources alone. One that did not finish leaves the file
// refused, by serve and by a plain reindex alike, naming the command that
// repairs it, rather than let searches answer from a half-built index.
func TestReindexFromScratch(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, app.Config{DataDir: dir})
	for _, id := range []string{"f1", "f2", "f3"} {
		do(t, http.MethodPut, s.base+"/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","gender":"female"}`))
	}
	do(t, http.MethodPut, s.base+"/Patient/f3", []byte(`{"resourceType":"Patient","id":"f3","gender":"male"}`))
	s.stop()

	// An interrupted rebuild: the indexes are dropped and never rebuilt.
	st, err := store.Open(dir, store.Options{RebuildIndexes: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st, err := store.Open(dir, store.Options{}); !errors.Is(err, store.ErrIndexesIncomplete) {
		if err == nil {
			st.Close()
		}
		t.Fatalf("open after an interrupted rebuild: %v, want ErrIndexesIncomplete", err)
	}
	// serve runs as a child: in this process it would retune the runtime
	// under the parallel tests.
	c := spawnChild(t, dir)
	select {
	case <-c.done:
	case <-time.After(childStartTimeout):
		t.Fatal("serve after an interrupted rebuild is still running")
	}
	if log, _ := os.ReadFile(c.logPath); c.state.Success() || !strings.Contains(string(log), "--from-scratch") {
		t.Errorf("serve after an interrupted rebuild: %v, want a refusal naming reindex --from-scratch:\n%s", c.state, log)
	}
	var out bytes.Buffer
	if code := app.Main([]string{"reindex", "--data", dir}, &out, &out); code == 0 || !strings.Contains(out.String(), "--from-scratch") {
		t.Errorf("plain reindex after an interrupted rebuild: exit %d, want a refusal:\n%s", code, out.String())
	}

	out.Reset()
	if code := app.Main([]string{"reindex", "--from-scratch", "--data", dir}, &out, &out); code != 0 || !strings.Contains(out.String(), "reindexed 3 resources") {
		t.Fatalf("reindex --from-scratch: exit %d:\n%s", code, out.String())
	}
	s2 := startServer(t, app.Config{DataDir: dir})
	if ids, total := searchAll(t, s2, "Patient?gender=female"); total != 2 || len(ids) != 2 {
		t.Errorf("female after the rebuild: %v (total %d), want f1 and f2", ids, total)
	}
	if ids, _ := searchAll(t, s2, "Patient?gender=male"); len(ids) != 1 {
		t.Errorf("male after the rebuild: %v, want f3", ids)
	}
}
