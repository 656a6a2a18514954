package conformance_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"healthhub/cmd/healthhub/app"
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
