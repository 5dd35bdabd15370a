package startup

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
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
