package awssm

import (
	"context"
	"fmt"
	"strings"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

// smCodes maps the error codes of Secrets Manager's own; awsconf maps those
// every AWS service shares. detail is AWS's message, which names the secret
// or the caller but never a value.
func smCodes(code, detail string) error {
	msg := code
	if detail != "" {
		msg += ": " + detail
	}
	switch code {
	case "ResourceNotFoundException":
		return fmt.Errorf("%w (%s)", providers.ErrNotFound, msg)
	case "InvalidRequestException":
		// A secret scheduled for deletion can be restored, but until then it
		// reads as gone, and `optional: true` should treat it so.
		if strings.Contains(strings.ToLower(detail), "deleted") || strings.Contains(strings.ToLower(detail), "deletion") {
			return fmt.Errorf("%w: scheduled for deletion (%s)", providers.ErrNotFound, msg)
		}
	case "DecryptionFailure":
		return fmt.Errorf("%w: KMS could not decrypt the secret; the caller needs kms:Decrypt on its key, and the key must be enabled (%s)", providers.ErrDenied, msg)
	}
	return nil
}

// codeError maps an error code of Secrets Manager, from the Errors of a
// batch, to the sentinel it means.
func codeError(code, detail string) error { return awsconf.CodeError(code, detail, smCodes) }

// classify turns an error of an SDK call into one that wraps the right
// sentinel.
func classify(ctx context.Context, err error) error { return awsconf.Classify(ctx, err, smCodes) }

// wholeBackend reports whether err concerns every source, not one.
func wholeBackend(err error) bool { return awsconf.WholeBackend(err) }
