//go:build unix

package store_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"healthhub/store"
)

// TestCompactKeepsOwner: the compacted file has the original's owner and
// group. An operator may run the reindex as root for a server that runs
// as its own user, which could not open a file root owns.
func TestCompactKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give the file another owner")
	}
	dir := closedStoreWithPatient(t)
	path := filepath.Join(dir, store.FileName)
	if err := os.Chown(path, 4321, 4322); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Compact(dir); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); !ok || st.Uid != 4321 || st.Gid != 4322 {
		t.Errorf("the compacted file's owner: %+v, want 4321:4322, the original's", info.Sys())
	}
}
