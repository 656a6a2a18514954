package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// compactTxSize bounds what one transaction of Compact copies, so that its
// memory stays bounded on a file of many gigabytes.
const compactTxSize = 64 << 20

// Compact rewrites the store file in dir into a new file that holds its
// live pages only, and puts it in the original's place. The store must
// not be open.
//
// Why: bbolt keeps freed pages for reuse and writes its whole list of them
// at every commit, 8 bytes a page. A reindex frees the pages of the
// dropped indexes (and, in files written before index entries were
// derived, of every rix record): 518,805 pages (2 GB) in the 100,000
// Patient / 1,000,000 Observation data set, whose every commit then wrote
// a 4 MB list, and creates ran at a third of their speed until writes had
// used the pages again (BENCHMARKS.md, "After a reindex").
//
// The original is locked from before the copy until the new file has
// taken its name, so a server that starts meanwhile is refused, or, if
// its wait for the lock outlasts the copy, opens the new file (Open
// checks that the file it locked is still the one in place); on any
// failure the original stays as it was and the partial copy is removed.
// An error with after set comes once the new file is in place: only
// syncing the directory failed.
func Compact(dir string) (before, after int64, err error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return 0, 0, fmt.Errorf("store: compact: %w", err) // and bolt.Open would create it
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("%w: %s (is another healthhub serving it?)", ErrLocked, path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer src.Close()
	if err := src.View(func(tx *bolt.Tx) error {
		before = tx.Size()
		if tx.Bucket(bucketMeta) == nil {
			return fmt.Errorf("store: %s is not a healthhub store", path)
		}
		return nil
	}); err != nil {
		return 0, 0, err
	}

	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, err
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(tmp)
		}
	}()
	info, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	// The copy takes the original's permissions: an operator may have
	// widened them for a backup agent's group, say.
	dst, err := bolt.Open(tmp, info.Mode().Perm(), &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return 0, 0, fmt.Errorf("store: create %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, info.Mode().Perm()); err != nil { // past the umask
		dst.Close()
		return 0, 0, err
	}
	// And its owner: a reindex run as root must not leave a file the
	// server's own user cannot open.
	if err := chownLike(tmp, info); err != nil {
		dst.Close()
		return 0, 0, fmt.Errorf("store: compact %s: give the copy the original's owner: %w", path, err)
	}
	// Each of Compact's transactions commits with an fsync, so the copy is
	// durable once it returns.
	err = bolt.Compact(dst, src, compactTxSize)
	if err == nil {
		err = dst.View(func(tx *bolt.Tx) error { after = tx.Size(); return nil })
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: compact %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, 0, fmt.Errorf("store: compact %s: %w", path, err)
	}
	keep = true
	// The rename is durable once the directory is.
	if err := syncDir(dir); err != nil {
		return before, after, fmt.Errorf("store: compact %s: the new file is in place, but: %w", path, err)
	}
	return before, after, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
