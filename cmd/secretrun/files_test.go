//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// randomvalue NAME PREFIX sets $NAME to PREFIX and random hex, a secret
// value that no file holds, and $NAME_SHA256 to its checksum: scripts
// write it to Vault with `vault put` and then search the disk for it.
func cmdRandomValue(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: randomvalue NAME PREFIX")
	}
	b := make([]byte, 16)
	_, err := rand.Read(b)
	ts.Check(err)
	value := args[1] + hex.EncodeToString(b)
	ts.Setenv(args[0], value)
	ts.Setenv(args[0]+"_SHA256", fmt.Sprintf("%x", sha256.Sum256([]byte(value))))
}

// bigsecret PATH FIELD SIZE writes a random value of SIZE bytes to the
// field of the KV v2 secret PATH in the script's Vault, and sets
// $FIELD_SHA256 to its checksum. The value itself never reaches the
// script's environment: secretrun, started with it, could not start.
func cmdBigSecret(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: bigsecret PATH FIELD SIZE")
	}
	size, err := strconv.Atoi(args[2])
	ts.Check(err)
	raw := make([]byte, size)
	_, err = rand.Read(raw)
	ts.Check(err)
	value := base64.StdEncoding.EncodeToString(raw)[:size]
	v := ts.Value(vaultKey{}).(*scriptVault)
	c, err := v.client()
	ts.Check(err)
	mount, path, _ := strings.Cut(args[0], "/")
	_, err = c.KVv2(mount).Put(context.Background(), path, map[string]any{args[1]: value})
	ts.Check(err)
	ts.Setenv(args[1]+"_SHA256", fmt.Sprintf("%x", sha256.Sum256([]byte(value))))
}
