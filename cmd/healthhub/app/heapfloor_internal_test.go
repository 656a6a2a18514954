package app

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, roots, floor uint64
		percent            int
		want               int
	}{
		{live: 16 * mib, floor: 256 * mib, percent: 400, want: 1501}, // 16 MiB * 16.01 >= 256 MiB
		{live: 16 * mib, roots: 16 * mib, floor: 256 * mib, percent: 400, want: 751},
		{live: 64 * mib, floor: 256 * mib, percent: 400, want: 400}, // 64 MiB * 5 is past the floor already
		{live: 50 * mib, floor: 256 * mib, percent: 400, want: 413},
		{live: 256 * mib, floor: 256 * mib, percent: 400, want: 400},
		{live: 1 << 30, floor: 256 * mib, percent: 100, want: 100},
		{live: 0, floor: 256 * mib, percent: 400, want: 400}, // nothing measured yet
		// under 4 MiB live, the runtime's minimum goal (4 MiB * GOGC/100)
		// decides: GOGC stops where that minimum is the floor
		{live: 1, floor: 256 * mib, percent: 400, want: 6400},
		{live: 2 * mib, floor: 256 * mib, percent: 400, want: 6400},
		{live: 1, floor: 1 << 40, percent: 400, want: 100 << 18},
	} {
		got := gcPercentFor(c.live, c.roots, c.floor, c.percent)
		if got != c.want {
			t.Errorf("gcPercentFor(%d, %d, %d, %d) = %d, want %d", c.live, c.roots, c.floor, c.percent, got, c.want)
		}
		if got == c.percent {
			continue
		}
		// the runtime's goal for this GOGC: at the floor, not far past it
		goal := max(c.live+(c.live+c.roots)*uint64(got)/100, minHeapGoal*uint64(got)/100)
		if goal < c.floor || goal > c.floor+c.floor/100 {
			t.Errorf("gcPercentFor(%d, %d, %d, %d) = %d: goal %d, floor %d", c.live, c.roots, c.floor, c.percent, got, goal, c.floor)
		}
	}
}

// TestTuneRuntimeOverlapping: serves that overlap in one process share the
// settings, and the last restore puts back what was there before.
func TestTuneRuntimeOverlapping(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: TuneRuntime leaves the collector alone")
	}
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	a := TuneRuntime()
	b := TuneRuntime()
	a()
	a() // twice: counted once
	if p := debug.SetGCPercent(-2); p < ServeGCPercent {
		t.Fatalf("after the first of two restores GOGC is %d, want serve's (at least %d)", p, ServeGCPercent)
	}
	b()
	if p := debug.SetGCPercent(-2); p != 100 {
		t.Fatalf("after both restores GOGC is %d, want 100", p)
	}
}

// TestHeapFloor runs the floor in this process: the heap goal rises to the
// floor while the live heap is small, GOGC returns to its percent once the
// live heap alone would reach the floor, and stop puts it back for good.
func TestHeapFloor(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	oldLimit := debug.SetMemoryLimit(math.MaxInt64) // a GOMEMLIMIT under the floor would cap the goal
	t.Cleanup(func() { debug.SetMemoryLimit(oldLimit) })
	const floor = 64 << 20
	stop := startHeapFloor(100, floor)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})

	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	read := func() (percent, goal, live uint64) {
		metrics.Read(s)
		return s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
	}
	// waitFor collects until cond holds: the floor adjusts on the runtime's
	// cleanup goroutine, after the collection.
	waitFor := func(what string, cond func(percent, goal, live uint64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
			p, g, l := read()
			if cond(p, g, l) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOGC %d, heap goal %d, live %d", what, p, g, l)
			}
		}
	}

	waitFor("small live heap", func(p, g, l uint64) bool { return l < floor/4 && p > 100 && g >= floor*9/10 && g <= floor*3/2 })

	ballast := make([]*[1 << 20]byte, 96) // 96 MiB live: 2 x 96 is past the floor
	for i := range ballast {
		ballast[i] = new([1 << 20]byte)
	}
	waitFor("large live heap", func(p, g, l uint64) bool { return p == 100 })
	runtime.KeepAlive(ballast)
	ballast = nil

	waitFor("small again", func(p, g, l uint64) bool { return p > 100 })
	stop()
	stopped = true
	if p, _, _ := read(); p != 100 {
		t.Fatalf("after stop: GOGC %d, want 100", p)
	}
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p, _, _ := read(); p != 100 {
		t.Fatalf("collections after stop: GOGC %d, want 100", p)
	}
}
