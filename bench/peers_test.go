//go:build linux

package main

import (
	"context"
	"io"
	"testing"
)

// A tool that starts the child without the secrets, or with other values,
// is reported as not measured instead of being timed: a fast tool that
// delivers nothing must not win the comparison.
func TestPeerCheckRejectsToolsThatDoNotDeliver(t *testing.T) {
	h := &harness{log: io.Discard}
	values := []string{randomValue(), randomValue()}
	env := append(baseEnv(), "F0="+values[0], "F1="+values[1])
	passThrough := func(child []string) []string { return append([]string{"/usr/bin/env"}, child...) }
	w := peerWork{
		name: "check", vars: []string{"F0", "F1"}, values: values,
		tools: []peerTool{
			{name: "delivers", env: env, argv: passThrough},
			{name: "delivers nothing", env: baseEnv(), argv: passThrough},
			{name: "delivers one", env: append(baseEnv(), "F0="+values[0]), argv: passThrough},
			{name: "swaps them", env: append(baseEnv(), "F0="+values[1], "F1="+values[0]), argv: passThrough},
			{name: "fails", env: env, argv: func(child []string) []string { return []string{"/bin/false"} }},
			{name: "starts nothing", env: env, argv: func([]string) []string { return []string{"/bin/true"} }},
		},
	}
	h.verifyPeers(context.Background(), &w)
	if m := w.tools[0].missing; m != "" {
		t.Errorf("a tool that delivers both values was rejected: %s", m)
	}
	for _, tool := range w.tools[1:] {
		if tool.missing == "" || !tool.failed {
			t.Errorf("%q passed the check", tool.name)
		}
	}
}
