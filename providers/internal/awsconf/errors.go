package awsconf

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/secretrun/secretrun/providers"
)

// Codes maps an error code of one AWS service, and AWS's message with it,
// to an error wrapping the sentinel it means, or to nil when the service
// gives the code no meaning of its own.
type Codes func(code, detail string) error

// Classify turns an error of an SDK call into one that wraps the right
// sentinel. The SDK has already retried what is worth retrying, throttling
// included, with its backoff.
func Classify(ctx context.Context, err error, codes Codes) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var cred *credentialsError
	if errors.As(err, &cred) {
		return fmt.Errorf("%w: %w", providers.ErrAuth, cred)
	}
	var resp *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if mapped := codeError(api.ErrorCode(), api.ErrorMessage(), codes); mapped != nil {
			return mapped
		}
		msg := api.ErrorCode()
		if d := api.ErrorMessage(); d != "" {
			msg += ": " + d
		}
		// Something in between (a proxy, a gateway) that answers with a
		// status of its own and none of AWS's codes.
		if status == http.StatusTooManyRequests || status >= 500 {
			return fmt.Errorf("%w (HTTP %d: %s)", providers.ErrUnavailable, status, msg)
		}
		return errors.New(msg)
	}
	var send *smithyhttp.RequestSendError
	var attempts *retry.MaxAttemptsError
	if errors.As(err, &send) || errors.As(err, &attempts) {
		return fmt.Errorf("%w: %w", providers.ErrUnavailable, err)
	}
	if status == http.StatusTooManyRequests || status >= 500 {
		return fmt.Errorf("%w: %w", providers.ErrUnavailable, err)
	}
	return err
}

// codeError maps the codes every AWS service shares, after the service's
// own.
func codeError(code, detail string, codes Codes) error {
	if codes != nil {
		if err := codes(code, detail); err != nil {
			return err
		}
	}
	msg := code
	if detail != "" {
		msg += ": " + detail
	}
	switch code {
	case "AccessDeniedException", "AccessDenied":
		return fmt.Errorf("%w (%s)", providers.ErrDenied, msg)
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "ExpiredToken",
		"InvalidClientTokenId", "IncompleteSignature", "MissingAuthenticationToken", "SignatureDoesNotMatch":
		return fmt.Errorf("%w (%s)", providers.ErrAuth, msg)
	case "InternalServiceError", "InternalServerError", "InternalFailure", "ServiceUnavailable",
		"ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException":
		return fmt.Errorf("%w (%s)", providers.ErrUnavailable, msg)
	}
	return nil
}

// CodeError maps an error code that is not from a failed call (the Errors
// of a batch) as Classify would.
func CodeError(code, detail string, codes Codes) error {
	if err := codeError(code, detail, codes); err != nil {
		return err
	}
	if detail != "" {
		return errors.New(code + ": " + detail)
	}
	return errors.New(code)
}

// WholeBackend reports whether err concerns every source, not one.
func WholeBackend(err error) bool {
	return errors.Is(err, providers.ErrAuth) || errors.Is(err, providers.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Parallel runs f(0) ... f(n-1), at most limit at a time.
func Parallel(n, limit int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
