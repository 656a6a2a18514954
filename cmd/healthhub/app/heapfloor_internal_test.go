package app

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live, floor uint64
		percent     int
		want        int
	}{
		{live: 16 << 20, floor: 256 << 20, percent: 400, want: 1501}, // 16 MiB * 16.01 >= 256 MiB
		{live: 64 << 20, floor: 256 << 20, percent: 400, want: 400},  // 64 MiB * 5 is past the floor already
		{live: 50 << 20, floor: 256 << 20, percent: 400, want: 413},
		{live: 256 << 20, floor: 256 << 20, percent: 400, want: 400},
		{live: 1 << 30, floor: 256 << 20, percent: 100, want: 100},
		{live: 0, floor: 256 << 20, percent: 400, want: 400}, // nothing measured yet
		{live: 1, floor: 1 << 40, percent: 400, want: maxFloorPercent},
	} {
		got := gcPercentFor(c.live, c.floor, c.percent)
		if got != c.want {
			t.Errorf("gcPercentFor(%d, %d, %d) = %d, want %d", c.live, c.floor, c.percent, got, c.want)
		}
		if got > c.percent && got < maxFloorPercent && c.live*uint64(100+got)/100 < c.floor {
			t.Errorf("gcPercentFor(%d, %d, %d) = %d: goal %d under the floor", c.live, c.floor, c.percent, got, c.live*uint64(100+got)/100)
		}
	}
}

// TestHeapFloor runs the floor in this process: the heap goal rises to the
// floor while the live heap is small, GOGC returns to its percent once the
// live heap alone would reach the floor, and stop puts it back for good.
func TestHeapFloor(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
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

	waitFor("small live heap", func(p, g, l uint64) bool { return l < floor/4 && p > 100 && g >= floor*9/10 })

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
