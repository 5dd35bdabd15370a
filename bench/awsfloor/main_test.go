package main

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The floor signs as the SDK does, so that its request costs what a real
// client's costs, and a server that checks signatures would accept it.
func TestSignsAsTheSDK(t *testing.T) {
	body := []byte(`{"SecretId":"app/db"}`)
	now := time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC)
	request := func() *http.Request {
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:5055/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
		return req
	}
	mine := request()
	sign(mine, body, "secretsmanager", "us-east-1", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", now)

	sdk := request()
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG"}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, sdk, hexSHA256(body), "secretsmanager", "us-east-1", now); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"X-Amz-Date", "Authorization"} {
		if got, want := mine.Header.Get(h), sdk.Header.Get(h); got != want {
			t.Errorf("%s:\n got %s\nwant %s", h, got, want)
		}
	}
}
