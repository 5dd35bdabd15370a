package awssm

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretrun/secretrun/providers/internal/awsjson/awsjsontest"
)

// TestEndpointsAsTheSDKResolves compares the URL chosen for each region
// and setting with the SDK's own rules for Secrets Manager, which, unlike
// SSM's, keep a -fips host in GovCloud.
func TestEndpointsAsTheSDKResolves(t *testing.T) {
	sdk := secretsmanager.NewDefaultEndpointResolverV2()
	awsjsontest.EndpointsMatchSDK(t, smService, func(region string, fips, dual bool) (string, error) {
		e, err := sdk.ResolveEndpoint(context.Background(), secretsmanager.EndpointParameters{
			Region: aws.String(region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual)})
		return e.URI.String(), err
	})
}
