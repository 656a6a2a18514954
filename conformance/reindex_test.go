package conformance_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

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
	// Then the file is rewritten without the old indexes' pages, and
	// nothing is left of the copy.
	if !strings.Contains(out.String(), "compacted the file from") {
		t.Errorf("reindex: no compaction reported:\n%s", out.String())
	}
	// Its progress goes to a file (not a terminal) as lines, not one line
	// of carriage returns.
	if strings.Contains(out.String(), "\r") {
		t.Errorf("reindex wrote carriage returns to a file:\n%q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, store.FileName+".compact")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the compaction's copy is left behind: %v", err)
	}
	s2 := startServer(t, app.Config{DataDir: dir})
	ids, total := searchAll(t, s2, "Patient?gender=female")
	if total != 2 || len(ids) != 2 {
		t.Errorf("after reindex: %v (total %d), want r1 and r2", ids, total)
	}
}

// healthhub reindex drops the indexes and builds them from the stored
// resources alone (--from-scratch, which used to ask for that, is still
// accepted). One that did not finish leaves the file refused by serve,
// naming the command that repairs it, rather than let searches answer from
// a half-built index.
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
	if log, _ := os.ReadFile(c.logPath); c.state.Success() || !strings.Contains(string(log), "healthhub reindex") {
		t.Errorf("serve after an interrupted rebuild: %v, want a refusal naming healthhub reindex:\n%s", c.state, log)
	}
	var out bytes.Buffer
	if code := app.Main([]string{"reindex", "--from-scratch", "--compact=false", "--data", dir}, &out, &out); code != 0 || !strings.Contains(out.String(), "reindexed 3 resources") {
		t.Fatalf("reindex --from-scratch: exit %d:\n%s", code, out.String())
	}
	if strings.Contains(out.String(), "compacted") {
		t.Errorf("reindex --compact=false compacted:\n%s", out.String())
	}
	s2 := startServer(t, app.Config{DataDir: dir})
	if ids, total := searchAll(t, s2, "Patient?gender=female"); total != 2 || len(ids) != 2 {
		t.Errorf("female after the rebuild: %v (total %d), want f1 and f2", ids, total)
	}
	if ids, _ := searchAll(t, s2, "Patient?gender=male"); len(ids) != 1 {
		t.Errorf("male after the rebuild: %v, want f3", ids)
	}
}

// A data directory indexed with other search parameter definitions or
// another extraction of them (its recorded fingerprint differs) is refused
// by serve, naming the command that rebuilds the indexes; after healthhub
// reindex it serves, and searches find what the resources hold.
func TestServeRefusesIndexesOfOtherDefinitions(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, app.Config{DataDir: dir})
	for _, id := range []string{"g1", "g2"} {
		do(t, http.MethodPut, s.base+"/Patient/"+id, []byte(`{"resourceType":"Patient","id":"`+id+`","gender":"female"}`))
	}
	do(t, http.MethodPut, s.base+"/Patient/g2", []byte(`{"resourceType":"Patient","id":"g2","gender":"male"}`))
	s.stop()

	// As an older healthhub with other definitions would have left it.
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("indexer"), []byte("v0-other")) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := spawnChild(t, dir)
	select {
	case <-c.done:
	case <-time.After(childStartTimeout):
		t.Fatal("serve with indexes of other definitions is still running")
	}
	if log, _ := os.ReadFile(c.logPath); c.state.Success() || !strings.Contains(string(log), "healthhub reindex") {
		t.Errorf("serve with indexes of other definitions: %v, want a refusal naming healthhub reindex:\n%s", c.state, log)
	}

	var out bytes.Buffer
	if code := app.Main([]string{"reindex", "--data", dir}, &out, &out); code != 0 || !strings.Contains(out.String(), "reindexed 2 resources") {
		t.Fatalf("reindex: exit %d:\n%s", code, out.String())
	}
	s2 := startServer(t, app.Config{DataDir: dir})
	if ids, _ := searchAll(t, s2, "Patient?gender=female"); len(ids) != 1 {
		t.Errorf("female after the rebuild: %v, want g1", ids)
	}
	if ids, _ := searchAll(t, s2, "Patient?gender=male"); len(ids) != 1 {
		t.Errorf("male after the rebuild: %v, want g2", ids)
	}
}
