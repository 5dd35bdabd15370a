package awsconf

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sso"
	"github.com/aws/aws-sdk-go-v2/service/ssooidc"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/secretrun/secretrun/providers/internal/awsjson/awsjsontest"
)

// signedFor is the region the SDK signs a call to e for: the one its
// rules name (us-east-1 for STS's aws-global), else the region asked.
func signedFor(e smithyendpoints.Endpoint, region string) string {
	opts, _ := smithyauth.GetAuthOptions(&e.Properties)
	for _, o := range opts {
		if r, ok := smithyhttp.GetSigV4SigningRegion(&o.SignerProperties); ok && r != "" {
			return r
		}
	}
	return region
}

// TestEndpointsAsTheSDKResolves compares where STS, the SSO portal and SSO
// OIDC are called, and the region signed for, with the SDK's rules.
func TestEndpointsAsTheSDKResolves(t *testing.T) {
	t.Run("STS", func(t *testing.T) {
		r := sts.NewDefaultEndpointResolverV2()
		awsjsontest.EndpointsAndSigningMatchSDK(t, stsService, func(region string, fips, dual bool) (string, string, error) {
			e, err := r.ResolveEndpoint(context.Background(), sts.EndpointParameters{Region: aws.String(region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual)})
			return e.URI.String(), signedFor(e, region), err
		})
	})
	t.Run("SSO", func(t *testing.T) {
		r := sso.NewDefaultEndpointResolverV2()
		awsjsontest.EndpointsAndSigningMatchSDK(t, ssoService, func(region string, fips, dual bool) (string, string, error) {
			e, err := r.ResolveEndpoint(context.Background(), sso.EndpointParameters{Region: aws.String(region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual)})
			return e.URI.String(), signedFor(e, region), err
		})
	})
	t.Run("SSO OIDC", func(t *testing.T) {
		r := ssooidc.NewDefaultEndpointResolverV2()
		awsjsontest.EndpointsAndSigningMatchSDK(t, oidcService, func(region string, fips, dual bool) (string, string, error) {
			e, err := r.ResolveEndpoint(context.Background(), ssooidc.EndpointParameters{Region: aws.String(region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual)})
			return e.URI.String(), signedFor(e, region), err
		})
	})
}
