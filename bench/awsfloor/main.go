// Command awsfloor is the least a Go program can do to start a child with
// the secrets of one AWS JSON API read: sign the request (Signature
// Version 4), send it, follow NextToken, decode, exec. The benchmark
// builds it outside the module, as `go install` builds a tool, and times
// it beside secretrun and the peers: how fast any Go tool could be on
// the same server, with no configuration, no checks and no supervision.
//
//	awsfloor SERVICE TARGET BODY -- CHILD...
//
// with AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY set. A Secrets Manager answer's SecretString is
// read as a JSON object of variables; Parameter Store parameters become
// variables named by the last segment of their names.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type answer struct {
	SecretString string
	Parameters   []struct{ Name, Value string }
	NextToken    string
}

func main() {
	if len(os.Args) < 6 || os.Args[4] != "--" {
		fail(errors.New("usage: awsfloor SERVICE TARGET BODY -- CHILD"))
	}
	service, target, body, child := os.Args[1], os.Args[2], os.Args[3], os.Args[5:]
	var request map[string]any
	if err := json.Unmarshal([]byte(body), &request); err != nil {
		fail(err)
	}
	env := os.Environ()
	for {
		a, err := call(service, target, request)
		if err != nil {
			fail(err)
		}
		if a.SecretString != "" {
			var vars map[string]string
			if err := json.Unmarshal([]byte(a.SecretString), &vars); err != nil {
				fail(err)
			}
			for k, v := range vars {
				env = append(env, k+"="+v)
			}
		}
		for _, p := range a.Parameters {
			env = append(env, p.Name[strings.LastIndexByte(p.Name, '/')+1:]+"="+p.Value)
		}
		if a.NextToken == "" {
			break
		}
		request["NextToken"] = a.NextToken
	}
	path, err := exec.LookPath(child[0])
	if err != nil {
		fail(err)
	}
	fail(syscall.Exec(path, child, env))
}

func call(service, target string, request map[string]any) (*answer, error) {
	body, err := json.Marshal(request)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, os.Getenv("AWS_ENDPOINT_URL")+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	sign(req, body, service, os.Getenv("AWS_REGION"), os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s: %s", target, resp.Status, b)
	}
	var a answer
	return &a, json.NewDecoder(resp.Body).Decode(&a)
}

// sign adds the X-Amz-Date and Authorization headers of Signature Version
// 4 over the method, path, length, content type, host, target and body.
func sign(req *http.Request, body []byte, service, region, keyID, secret string, now time.Time) {
	stamp := now.UTC().Format("20060102T150405Z")
	day := stamp[:8]
	req.Header.Set("X-Amz-Date", stamp)
	const signed = "content-length;content-type;host;x-amz-date;x-amz-target"
	canonical := strings.Join([]string{
		req.Method,
		escapedPath(req.URL),
		req.URL.RawQuery,
		"content-length:" + strconv.FormatInt(req.ContentLength, 10),
		"content-type:" + req.Header.Get("Content-Type"),
		"host:" + req.URL.Host,
		"x-amz-date:" + stamp,
		"x-amz-target:" + req.Header.Get("X-Amz-Target"),
		"",
		signed,
		hexSHA256(body),
	}, "\n")
	scope := day + "/" + region + "/" + service + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + stamp + "\n" + scope + "\n" + hexSHA256([]byte(canonical))
	key := []byte("AWS4" + secret)
	for _, part := range []string{day, region, service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+keyID+"/"+scope+
		", SignedHeaders="+signed+", Signature="+hex.EncodeToString(hmacSHA256(key, toSign)))
}

func escapedPath(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "awsfloor:", err)
	os.Exit(125)
}
