package awsssm

import (
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// ssmService is Parameter Store as awsjson speaks to it: the SDK's
// service/ssm would cost every start of secretrun, whether or not its
// config reads Parameter Store, about 1.5 ms and 7 900 allocations of
// package init for the schemas of SSM's 150 operations.
var ssmService = awsjson.Service{
	ID:                    "SSM",
	SigningName:           "ssm",
	TargetPrefix:          "AmazonSSM.",
	GovCloudFIPSIsRegular: true,
}

const jsonType = awsjson.ContentType

// api is the client of Parameter Store; client.go gives it its four calls.
type api struct{ *awsjson.Client }

func newAPI(cfg aws.Config, endpoint string) (*api, error) {
	c, err := awsjson.New(cfg, endpoint, ssmService)
	if err != nil {
		return nil, err
	}
	return &api{c}, nil
}

func resolveEndpoint(cfg aws.Config, endpoint string) (string, string, error) {
	return awsjson.ResolveEndpoint(cfg, endpoint, ssmService)
}
