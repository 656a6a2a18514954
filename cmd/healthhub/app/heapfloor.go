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
	sample  []metrics.Sample // live heap, stacks, globals
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
	h := &heapFloor{percent: percent, floor: floor, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
	}}
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

// adjust runs with mu held. It sets GOGC every time, even unchanged, so
// that it wins over anything else that set it meanwhile.
func (h *heapFloor) adjust() {
	metrics.Read(h.sample)
	var v [3]uint64
	for i, s := range h.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return
		}
		v[i] = s.Value.Uint64()
	}
	debug.SetGCPercent(gcPercentFor(v[0], v[1]+v[2], h.floor, h.percent))
}

// gcPercentFor is the GOGC that makes a heap of live bytes grow to floor
// before the next collection, or percent if that is more. The runtime's
// goal is live + (live + roots) * GOGC/100, roots being the goroutine
// stacks and globals it scans, and never below 4 MiB * GOGC/100.
func gcPercentFor(live, roots, floor uint64, percent int) int {
	if live == 0 || live >= floor {
		return percent
	}
	// rounded up, so that the goal reaches floor
	p := (floor-live)*100/(live+roots) + 1
	// With a live heap under 4 MiB the runtime's own minimum, raised with
	// GOGC, would put the goal past the floor: at most floor then.
	p = min(p, floor*100/minHeapGoal)
	return max(int(p), percent)
}

// minHeapGoal is the Go runtime's smallest heap goal at GOGC 100
// (runtime/mgcpacer.go, defaultHeapMinimum).
const minHeapGoal = 4 << 20
