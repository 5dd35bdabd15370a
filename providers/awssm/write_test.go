package awssm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretrun/secretrun/providers"
)

var uuidForm = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestRetriedWriteMakesOneVersion: a write carries the idempotency token
// AWS requires of calls made without the SDK, the same on every attempt, so
// that a write retried after a 500 leaves one new version, not two.
func TestRetriedWriteMakesOneVersion(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "write/retried", `{"A":"old"}`)
	rec := newRecorder(t, srv.URL)
	var mu sync.Mutex
	tokens := map[string][]string{}
	rec.Answer = func(op string, n int, req *http.Request) *http.Response {
		if op != "PutSecretValue" && op != "CreateSecret" {
			return nil
		}
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var in struct{ ClientRequestToken string }
		if err := json.Unmarshal(body, &in); err != nil {
			t.Errorf("%s body is not JSON: %v", op, err)
		}
		mu.Lock()
		tokens[op] = append(tokens[op], in.ClientRequestToken)
		mu.Unlock()
		if n == 1 {
			return awsError(http.StatusInternalServerError, "InternalServiceError", "try again")
		}
		return nil
	}
	p := forMoto(t, srv, rec)
	secrets := []providers.NamedSecret{{Name: "A", Value: providers.NewSecret("new")}}
	if _, err := p.Write(context.Background(), src(t, p, "secret: write/retried"), secrets, true); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(context.Background(), src(t, p, "secret: write/created"), secrets, false); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"PutSecretValue", "CreateSecret"} {
		got := tokens[op]
		if len(got) != 2 || got[0] != got[1] || !uuidForm.MatchString(got[0]) {
			t.Errorf("%s tokens %q, want one UUID sent twice", op, got)
		}
	}
	if tokens["PutSecretValue"][0] == tokens["CreateSecret"][0] {
		t.Errorf("two writes share the token %s", tokens["CreateSecret"][0])
	}
	list, err := srv.Client().ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("write/retried")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Versions) != 2 {
		t.Errorf("%d versions after a retried write, want 2 (the first and one new)", len(list.Versions))
	}
	if got := values(t, fetch(t, p, src(t, p, "secret: write/retried"))[0]); got["A"] != "new" {
		t.Errorf("after the write A = %q, want new", got["A"])
	}
}
