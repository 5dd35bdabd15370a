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

// An AWS row's floor is reported beside its ratio, is never taken for the
// best peer, and says whether the goal is within its reach.
func TestAWSTargetNamesItsFloor(t *testing.T) {
	s := func(d time.Duration) sample { return sample{d, d, d} }
	for _, tc := range []struct {
		floor   time.Duration
		verdict string
	}{
		{floor: 8 * time.Millisecond, verdict: "the goal is below this floor"},
		{floor: 6 * time.Millisecond, verdict: "within reach"},
	} {
		row := peerRow{work: "AWS Secrets Manager, 1 secret", goal: 0.7, results: []peerResult{
			{tool: toolSecretrun, s: s(9 * time.Millisecond)},
			{tool: toolChamber, s: s(10 * time.Millisecond)},
			{tool: toolAWSFloor, reference: true, s: s(tc.floor)},
		}}
		if _, peer := row.best(); peer == nil || peer.tool != toolChamber {
			t.Fatalf("best peer %+v, want chamber: the floor is no peer", peer)
		}
		var out strings.Builder
		r := &report{peers: &peersResult{rows: []peerRow{row}}}
		r.peerTargets(func(format string, args ...any) { fmt.Fprintf(&out, format, args...) })
		got := out.String()
		if !strings.Contains(got, "0.90× (9.00 ms vs chamber "+ms(10*time.Millisecond)+") | **missed**") {
			t.Errorf("no missed ratio against chamber in:\n%s", got)
		}
		want := fmt.Sprintf("where %s takes %s, %.2f× chamber, and secretrun +%s over it | | %s |",
			toolAWSFloor, ms(tc.floor), float64(tc.floor)/float64(10*time.Millisecond), ms(9*time.Millisecond-tc.floor), tc.verdict)
		if !strings.Contains(got, want) {
			t.Errorf("floor at %v: want %q in:\n%s", tc.floor, want, got)
		}
	}
}
