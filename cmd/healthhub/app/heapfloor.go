package app

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapFloor keeps the garbage collector's heap goal at or above a floor.
//
// GOGC alone sets the goal as a multiple of the live heap, and serve's live
// heap is small (tens of MB) while it allocates ~10 kB for every read: at
// 10,000 reads a second the collector then runs a few times a second, and
// on a small machine every cycle's mark phase takes CPU from the requests
// in flight. That, not the handlers, was most of the read p99 at that rate
// (BENCHMARKS.md, "The collector and the read tail"). A floor spaces the
// cycles out while the live heap is small and leaves GOGC in charge once it
// is large, where a multiple of it is already big; GOMEMLIMIT, when set,
// still bounds the heap below either.
//
// After every collection it sets GOGC to the larger of percent and the
// value that puts the next goal at floor. It learns of a collection from
// the cleanup of a sentinel object that only a collection can free.
type heapFloor struct {
	percent int
	floor   uint64

	mu      sync.Mutex // stop against a cleanup running at the same time
	stopped bool
	live    []metrics.Sample
	set     int // the GOGC adjust last set
}

// gcSentinel is what a collection frees to tell heapFloor it happened. Its
// pointer keeps it out of the tiny allocator, whose blocks free (and run
// cleanups) only when every object in them is unreachable.
type gcSentinel struct {
	_ *byte
	_ [8]byte
}

// startHeapFloor sets GOGC for the heap as it is now and keeps setting it
// after every collection until stop, which sets GOGC back to percent.
func startHeapFloor(percent int, floor uint64) (stop func()) {
	h := &heapFloor{percent: percent, floor: floor, live: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	h.mu.Lock()
	h.adjust()
	h.mu.Unlock()
	h.arm()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.stopped = true
		debug.SetGCPercent(percent)
	}
}

func (h *heapFloor) arm() {
	runtime.AddCleanup(new(gcSentinel), func(h *heapFloor) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.stopped {
			return
		}
		h.adjust()
		h.arm()
	}, h)
}

// adjust runs with mu held.
func (h *heapFloor) adjust() {
	metrics.Read(h.live)
	if h.live[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := gcPercentFor(h.live[0].Value.Uint64(), h.floor, h.percent)
	if p != h.set {
		debug.SetGCPercent(p)
		h.set = p
	}
}

// gcPercentFor is the GOGC that makes a heap of live bytes grow to floor
// before the next collection, or percent if that is more.
func gcPercentFor(live, floor uint64, percent int) int {
	if live == 0 || live >= floor {
		return percent
	}
	// goal = live * (1 + p/100), rounded up so that the goal reaches floor
	p := (floor-live)*100/live + 1
	if p > uint64(maxFloorPercent) {
		p = maxFloorPercent
	}
	return max(int(p), percent)
}

// maxFloorPercent bounds the GOGC a floor sets when the live heap is tiny
// (right after start), so that the goal stays near the floor and no
// arithmetic overflows.
const maxFloorPercent = 100_000
