package startup

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"unsafe"
)

// gcPercent reads the collector's target without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// runtimeMetric reads one of the runtime's counters or gauges.
func runtimeMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func cycles() uint64 { return runtimeMetric("/gc/cycles/total:gc-cycles") }

var sink [][]byte

func TestNoCollectionDuringStartUp(t *testing.T) {
	t.Cleanup(end)
	if !begin(func(string) string { return "" }) {
		t.Fatal("collection left on with neither GOGC nor GOMEMLIMIT set")
	}
	runtime.GC()
	before := cycles()
	// Four times the default heap target: the collector would run.
	for range 16 << 10 {
		sink = append(sink, make([]byte, 1024))
	}
	if n := cycles() - before; n != 0 {
		t.Errorf("%d collections while allocating 16 MB of start-up garbage, want none", n)
	}
	sink = nil

	end()
	// A supervisor's few hundred kilobytes live must not let the heap
	// grow to the runtime's default minimum of 4 MB between collections.
	runtime.GC()
	if goal := runtimeMetric("/gc/heap/goal:bytes"); goal > 2<<20 {
		t.Errorf("after start-up the heap may grow to %d KiB before a collection, want at most 2048", goal>>10)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("after start-up the memory limit is %d, want none", l)
	}
}

func TestUserSettingsWin(t *testing.T) {
	for _, v := range []string{"GOGC", "GOMEMLIMIT"} {
		debug.SetGCPercent(50)
		set := begin(func(k string) string {
			if k == v {
				return "50"
			}
			return ""
		})
		if set || gcPercent() != 50 {
			t.Errorf("with %s set, begin changed the collector (GOGC now %d)", v, gcPercent())
		}
	}
	debug.SetGCPercent(100)
}

// stackDepth calls itself n times with a frame of about a kilobyte each and
// reports where its deepest frame's array lies.
//
//go:noinline
func stackDepth(n int) uintptr {
	var frame [1 << 10]byte
	frame[n%len(frame)] = byte(n)
	if n == 0 {
		return uintptr(unsafe.Pointer(&frame[0]))
	}
	return stackDepth(n-1) + uintptr(frame[(n*3)%len(frame)])
}

// A goroutine whose stack was reserved runs calls that need most of it
// without the runtime moving its stack: a variable's address stays put.
// Without the reservation the same calls move it (the control).
func TestReservedStackIsNotMovedAgain(t *testing.T) {
	moved := func(reserve bool) bool {
		done := make(chan bool)
		go func() {
			if reserve {
				reserveStack(1)
			}
			var marker byte
			before := uintptr(unsafe.Pointer(&marker))
			stackDepth(reservedStack / 2 >> 10)
			done <- uintptr(unsafe.Pointer(&marker)) != before
		}()
		return <-done
	}
	if !moved(false) {
		t.Fatal("the control did not move its stack: the test cannot tell a reserved stack from a small one")
	}
	if moved(true) {
		t.Errorf("after reserveStack, calls needing %d KiB still moved the stack", reservedStack/2>>10)
	}
}
