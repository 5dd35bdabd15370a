package awssm

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretrun/secretrun/providers"
)

// TestRotation walks through a rotation as Secrets Manager performs it: the
// new value is staged AWSPENDING, then promoted to AWSCURRENT.
func TestRotation(t *testing.T) {
	srv := moto.Get(t)
	sm := srv.Client()
	ctx := context.Background()
	srv.CreateString(t, "rot/db", `{"PASSWORD":"old-password"}`)
	oldID := srv.CurrentVersion(t, "rot/db")
	rec := newRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	s := src(t, p, "secret: rot/db")
	previous := src(t, p, "secret: rot/db\nversion_stage: AWSPREVIOUS")

	before := versionsOf(t, p, s)[0]
	if before != oldID {
		t.Fatalf("label %q, want the AWSCURRENT version id %q", before, oldID)
	}

	pending, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("rot/db"), SecretString: aws.String(`{"PASSWORD":"new-password"}`),
		VersionStages: []string{stagePending},
	})
	if err != nil {
		t.Fatal(err)
	}
	newID := aws.ToString(pending.VersionId)
	if got := versionsOf(t, p, s)[0]; got != before {
		t.Errorf("label changed to %q while the new version was only AWSPENDING", got)
	}
	if got := values(t, fetch(t, p, s)[0])["PASSWORD"]; got != "old-password" {
		t.Errorf("a pending version was read as current")
	}

	if _, err := sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String("rot/db"), VersionStage: aws.String(stageCurrent),
		MoveToVersionId: aws.String(newID), RemoveFromVersionId: aws.String(oldID),
	}); err != nil {
		t.Fatal(err)
	}
	after := versionsOf(t, p, s, previous)
	if after[0] != newID {
		t.Errorf("label after promotion %q, want %q", after[0], newID)
	}
	if after[1] != oldID {
		t.Errorf("AWSPREVIOUS label %q, want %q", after[1], oldID)
	}
	// Read beside another secret, so in a batch: moto's batch still
	// answers with the old version here; the provider notices the missing
	// AWSCURRENT label and asks for it by name.
	srv.CreateString(t, "rot/other", `{"OTHER":"x"}`)
	rec.Reset()
	r := fetch(t, p, s, src(t, p, "secret: rot/other"))[0]
	if got := values(t, r)["PASSWORD"]; got != "new-password" {
		t.Errorf("the promoted version was not read")
	}
	if r.Version != newID {
		t.Errorf("Version %q, want %q", r.Version, newID)
	}
	if got := rec.Count("GetSecretValue"); got > 1 {
		t.Errorf("%d GetSecretValue calls for one secret", got)
	}
}

func TestVersionsBatchAndFallbacks(t *testing.T) {
	srv := moto.Get(t)
	var srcs []*providers.Source
	rec := newRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	ids := map[int]string{}
	for i := range 25 {
		name := fmt.Sprintf("ver/s%02d", i)
		srv.CreateString(t, name, `{"V":"1"}`)
		ids[i] = srv.CurrentVersion(t, name)
		srcs = append(srcs, src(t, p, "secret: "+name))
	}
	// A name that is a prefix of others must match exactly, not loosely.
	srv.CreateString(t, "ver/s0", `{"V":"short"}`)
	srcs = append(srcs, src(t, p, "secret: ver/s0"))
	srcs = append(srcs, src(t, p, "secret: ver/missing"))
	srcs = append(srcs, src(t, p, "secret: ver/s01\nversion_id: fixed-id"))
	srcs = append(srcs, src(t, p, "secret_prefix: ver/"))
	srcs = append(srcs, src(t, p, "secret_prefix: none/"))
	rec.Reset()

	labels := versionsOf(t, p, srcs...)
	for i := range 25 {
		if labels[i] != ids[i] {
			t.Errorf("source %d: label %q, want %q", i, labels[i], ids[i])
		}
	}
	if labels[25] != srv.CurrentVersion(t, "ver/s0") {
		t.Errorf("ver/s0 got the label of another secret")
	}
	if labels[26] != absent || labels[27] != "fixed-id" || labels[29] != absent {
		t.Errorf("labels %q, %q, %q; want absent, the pinned id, absent", labels[26], labels[27], labels[29])
	}
	if labels[28] == "" || labels[28] == absent {
		t.Errorf("prefix label %q", labels[28])
	}
	// 26 names: three ListSecrets of ten names; the missing one is asked
	// for with DescribeSecret; one ListSecrets per prefix. No value is read.
	t.Logf("Versions of 30 sources: %d ListSecrets, %d DescribeSecret", rec.Count("ListSecrets"), rec.Count("DescribeSecret"))
	if got := rec.Count("ListSecrets"); got != 5 {
		t.Errorf("%d ListSecrets calls, want 5", got)
	}
	if got := rec.Count("DescribeSecret"); got != 1 {
		t.Errorf("%d DescribeSecret calls, want 1", got)
	}
	if n := rec.Count("BatchGetSecretValue") + rec.Count("GetSecretValue"); n != 0 {
		t.Errorf("Versions read %d values", n)
	}

	// A new secret under the prefix changes its label, and only its label.
	srv.CreateString(t, "ver/zz-new", `{"NEW":"1"}`)
	again := versionsOf(t, p, srcs...)
	for i := range again {
		if changed := again[i] != labels[i]; changed != (i == 28) {
			t.Errorf("source %d: label changed %v", i, changed)
		}
	}
}

func TestVersionsWithoutListPermission(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "narrow/v", `{"V":"1"}`)
	id := srv.CurrentVersion(t, "narrow/v")
	rec := newRecorder(t, srv.URL)
	rec.Answer = func(op string, _ int, _ *http.Request) *http.Response {
		if op == "ListSecrets" {
			return awsError(http.StatusBadRequest, "AccessDeniedException", "not authorized to perform: secretsmanager:ListSecrets")
		}
		return nil
	}
	p := forMoto(t, srv, rec)
	s := src(t, p, "secret: narrow/v")
	for range 2 {
		if got := versionsOf(t, p, s)[0]; got != id {
			t.Errorf("label %q, want %q", got, id)
		}
	}
	if lists, describes := rec.Count("ListSecrets"), rec.Count("DescribeSecret"); lists != 1 || describes != 2 {
		t.Errorf("%d ListSecrets and %d DescribeSecret calls, want 1 and 2", lists, describes)
	}
}
