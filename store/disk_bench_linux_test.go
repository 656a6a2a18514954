package store_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkDiskSync measures the disk under the store, not the store: the
// cost of an fdatasync after writing pages scattered over a file, against
// the same number of pages side by side. bbolt writes each commit's dirty
// pages where its freelist puts them, so what a commit costs depends on
// how scattered they are (BENCHMARKS.md, "The commit path").
//
//	go test ./store -run '^$' -bench DiskSync -benchtime 200x
func BenchmarkDiskSync(b *testing.B) {
	const (
		pageSize = 4096
		fileSize = 256 << 20
	)
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "sync.dat"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < fileSize; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		b.Skipf("fdatasync: %v", err)
	}
	page := make([]byte, pageSize)
	pages := int64(fileSize / pageSize)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int64{1, 16, 48} {
		for _, layout := range []string{"scattered", "contiguous"} {
			b.Run(fmt.Sprintf("pages=%d/%s", n, layout), func(b *testing.B) {
				for range b.N {
					base := r.Int64N(pages - n)
					for i := range n {
						at := base + i
						if layout == "scattered" {
							at = r.Int64N(pages)
						}
						if _, err := f.WriteAt(page, at*pageSize); err != nil {
							b.Fatal(err)
						}
					}
					if err := syscall.Fdatasync(int(f.Fd())); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/sync")
			})
		}
	}
}
