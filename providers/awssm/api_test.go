package awssm

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// TestEndpointsAsTheSDKResolves compares the URL chosen for each region
// and setting with the SDK's own rules for Secrets Manager, which, unlike
// SSM's, keep a -fips host in GovCloud.
func TestEndpointsAsTheSDKResolves(t *testing.T) {
	sdk := secretsmanager.NewDefaultEndpointResolverV2()
	regions := []string{"eu-west-1", "us-east-1", "il-central-1", "mx-central-1", "cn-north-1", "cn-northwest-1",
		"us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "eusc-de-east-1",
		"aws-global", "aws-cn-global", "aws-us-gov-global", "xx-future-1", "local"}
	for _, region := range regions {
		for _, fips := range []bool{false, true} {
			for _, dual := range []bool{false, true} {
				want, err := sdk.ResolveEndpoint(context.Background(), secretsmanager.EndpointParameters{
					Region: aws.String(region), UseFIPS: aws.Bool(fips), UseDualStack: aws.Bool(dual)})
				if err != nil {
					t.Fatal(err)
				}
				opts := config.LoadOptions{}
				if fips {
					opts.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
				}
				if dual {
					opts.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
				}
				got, signing, err := awsjson.ResolveEndpoint(aws.Config{Region: region, ConfigSources: []any{opts}}, "", smService)
				if err != nil {
					t.Errorf("%s fips=%v dual-stack=%v: %v", region, fips, dual, err)
					continue
				}
				if w := want.URI.String() + "/"; got != w || signing != region {
					t.Errorf("%s fips=%v dual-stack=%v: %s signed for %s, want %s as the SDK", region, fips, dual, got, signing, w)
				}
			}
		}
	}
}
