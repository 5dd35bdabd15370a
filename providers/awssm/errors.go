package awssm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/secretrun/secretrun/providers"
)

// where names the region, and the endpoint when it is not AWS's own.
func (c *conn) where() string {
	if c.endpoint != "" {
		return c.region + " at " + c.endpoint
	}
	return c.region
}

// codeError maps an error code of Secrets Manager, from a failed call or
// from the Errors of a batch, to the sentinel it means. detail is AWS's
// message, which names the secret or the caller but never a value.
func codeError(code, detail string) error {
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
	case "AccessDeniedException":
		return fmt.Errorf("%w (%s)", providers.ErrDenied, msg)
	case "DecryptionFailure":
		return fmt.Errorf("%w: KMS could not decrypt the secret; the caller needs kms:Decrypt on its key, and the key must be enabled (%s)", providers.ErrDenied, msg)
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
		"InvalidClientTokenId", "IncompleteSignature", "MissingAuthenticationToken", "SignatureDoesNotMatch":
		return fmt.Errorf("%w (%s)", providers.ErrAuth, msg)
	case "InternalServiceError", "ServiceUnavailable", "ThrottlingException", "RequestLimitExceeded":
		return fmt.Errorf("%w (%s)", providers.ErrUnavailable, msg)
	}
	return errors.New(msg)
}

// classify turns an error of an SDK call into one that wraps the right
// sentinel. The SDK has already retried what is worth retrying, throttling
// included, with its backoff.
func classify(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var cred *credentialsError
	if errors.As(err, &cred) {
		return fmt.Errorf("%w: %w", providers.ErrAuth, cred)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return codeError(api.ErrorCode(), api.ErrorMessage())
	}
	var send *smithyhttp.RequestSendError
	var attempts *retry.MaxAttemptsError
	if errors.As(err, &send) || errors.As(err, &attempts) {
		return fmt.Errorf("%w: %w", providers.ErrUnavailable, err)
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() >= 500 {
		return fmt.Errorf("%w: %w", providers.ErrUnavailable, err)
	}
	return err
}

// wholeBackend reports whether err concerns every source, not one.
func wholeBackend(err error) bool {
	return errors.Is(err, providers.ErrAuth) || errors.Is(err, providers.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
