package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func versionRow(self, empty, http time.Duration) *peersResult {
	s := func(d time.Duration) sample { return sample{d, d, d} }
	return &peersResult{rows: []peerRow{{
		work:    "programs that contact nothing",
		version: true,
		results: []peerResult{
			{tool: "`secretrun version`", s: s(self)},
			{tool: toolEmptyGo, s: s(empty)},
			{tool: toolEmptyHTTP, s: s(http)},
		},
	}}}
}

func TestVersionTargetNamesTheNetHTTPFloor(t *testing.T) {
	for _, tc := range []struct {
		http    time.Duration
		verdict string
	}{
		{http: 5 * time.Millisecond, verdict: "the goal is below this floor"},
		{http: 3 * time.Millisecond, verdict: "within reach"},
	} {
		var out strings.Builder
		r := &report{peers: versionRow(6*time.Millisecond, 2*time.Millisecond, tc.http)}
		r.peerTargets(func(format string, args ...any) { fmt.Fprintf(&out, format, args...) })
		got := out.String()
		if !strings.Contains(got, "+4.00 ms (6.00 ms vs 2.00 ms) | **missed**") {
			t.Errorf("no missed version goal in:\n%s", got)
		}
		floorRow := fmt.Sprintf("where %s is itself +%s", toolEmptyHTTP, ms(tc.http-2*time.Millisecond))
		if !strings.Contains(got, floorRow) || !strings.Contains(got, "| "+tc.verdict+" |") {
			t.Errorf("floor at %v: want %q and verdict %q in:\n%s", tc.http, floorRow, tc.verdict, got)
		}
	}
}
