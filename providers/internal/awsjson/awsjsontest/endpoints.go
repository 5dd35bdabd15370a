// Package awsjsontest checks awsjson against the AWS SDK in tests.
package awsjsontest

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// Regions are the regions the endpoint checks go through: every partition,
// the global pseudo-regions, one not yet known and one that is no region.
var Regions = []string{"eu-west-1", "us-east-1", "il-central-1", "mx-central-1", "cn-north-1", "cn-northwest-1",
	"us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "eusc-de-east-1",
	"aws-global", "aws-cn-global", "aws-us-gov-global", "xx-future-1", "local"}

// EndpointsMatchSDK checks that svc is called at the URL the SDK's own
// resolver gives (sdk, which returns that URL) for every region, with and
// without FIPS and dual-stack, and signed for the region.
func EndpointsMatchSDK(t *testing.T, svc awsjson.Service, sdk func(region string, fips, dualStack bool) (string, error)) {
	t.Helper()
	EndpointsAndSigningMatchSDK(t, svc, func(region string, fips, dualStack bool) (string, string, error) {
		u, err := sdk(region, fips, dualStack)
		return u, region, err
	})
}

// EndpointsAndSigningMatchSDK is EndpointsMatchSDK for a service whose
// endpoints are signed for another region than the one asked for (STS's
// aws-global, signed for us-east-1): sdk returns the region to sign for
// too.
func EndpointsAndSigningMatchSDK(t *testing.T, svc awsjson.Service, sdk func(region string, fips, dualStack bool) (url, signingRegion string, err error)) {
	t.Helper()
	for _, region := range Regions {
		for _, fips := range []bool{false, true} {
			for _, dual := range []bool{false, true} {
				want, wantSigning, err := sdk(region, fips, dual)
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
				got, signing, err := awsjson.ResolveEndpoint(aws.Config{Region: region, ConfigSources: []any{opts}}, "", svc)
				if err != nil {
					t.Errorf("%s fips=%v dual-stack=%v: %v", region, fips, dual, err)
					continue
				}
				if w := want + "/"; got != w || signing != wantSigning {
					t.Errorf("%s fips=%v dual-stack=%v: %s signed for %s, want %s signed for %s as the SDK", region, fips, dual, got, signing, w, wantSigning)
				}
			}
		}
	}
}
