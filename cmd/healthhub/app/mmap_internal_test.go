package app

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"healthhub/store"
)

// TestOpenServeStoreWithoutAddressSpace: when the 1 GiB reservation does
// not fit (ENOMEM from mmap under an address-space limit), serve opens the
// store without it and warns; other errors are returned as they are.
func TestOpenServeStoreWithoutAddressSpace(t *testing.T) {
	for _, c := range []struct {
		name      string
		fail      error // what the open with the reservation returns
		wantSizes []int
		wantErr   bool
		wantWarn  bool
	}{
		{"fits", nil, []int{ServeMmapSize}, false, false},
		{"address space limited", fmt.Errorf("store: open x: %w", syscall.ENOMEM), []int{ServeMmapSize, 0}, false, true},
		{"locked", store.ErrLocked, []int{ServeMmapSize}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			var sizes []int
			dir := t.TempDir()
			st, err := openServeStore(dir, slog.New(slog.NewTextHandler(&logs, nil)), func(d string, o store.Options) (*store.Bolt, error) {
				sizes = append(sizes, o.InitialMmapSize)
				if o.InitialMmapSize > 0 && c.fail != nil {
					return nil, c.fail
				}
				return store.Open(d, o)
			})
			if st != nil {
				st.Close()
			}
			if (err != nil) != c.wantErr || (err != nil && !errors.Is(err, c.fail)) {
				t.Fatalf("err %v, want %v", err, c.fail)
			}
			if fmt.Sprint(sizes) != fmt.Sprint(c.wantSizes) {
				t.Errorf("opened with InitialMmapSize %v, want %v", sizes, c.wantSizes)
			}
			if got := strings.Contains(logs.String(), "level=WARN"); got != c.wantWarn {
				t.Errorf("warned %v, want %v: %s", got, c.wantWarn, logs.String())
			}
		})
	}
}
