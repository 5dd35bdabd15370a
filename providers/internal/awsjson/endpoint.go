package awsjson

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// partition is what the endpoint of a region depends on; every partition
// AWS lists has FIPS and dual-stack endpoints.
type partition struct {
	name, dnsSuffix, dualStackSuffix string
}

// partitions are those of the SDK's endpoint rules (awsrulesfn's
// partitions.json), in its order: a region is matched by name first, then
// by pattern, and an unknown one is in aws.
var partitions = []struct {
	partition
	regionRegex string
	global      string
}{
	{partition{"aws", "amazonaws.com", "api.aws"}, `^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$`, "aws-global"},
	{partition{"aws-cn", "amazonaws.com.cn", "api.amazonwebservices.com.cn"}, `^cn\-\w+\-\d+$`, "aws-cn-global"},
	{partition{"aws-eusc", "amazonaws.eu", "api.amazonwebservices.eu"}, `^eusc\-(de)\-\w+\-\d+$`, ""},
	{partition{"aws-iso", "c2s.ic.gov", "api.aws.ic.gov"}, `^us\-iso\-\w+\-\d+$`, "aws-iso-global"},
	{partition{"aws-iso-b", "sc2s.sgov.gov", "api.aws.scloud"}, `^us\-isob\-\w+\-\d+$`, "aws-iso-b-global"},
	{partition{"aws-iso-e", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"}, `^eu\-isoe\-\w+\-\d+$`, "aws-iso-e-global"},
	{partition{"aws-iso-f", "csp.hci.ic.gov", "api.aws.hci.ic.gov"}, `^us\-isof\-\w+\-\d+$`, "aws-iso-f-global"},
	{partition{"aws-us-gov", "amazonaws.com", "api.aws"}, `^us\-gov\-\w+\-\d+$`, "aws-us-gov-global"},
}

// partitionOf compiles the patterns on each call: it runs once per client,
// and package-level regexps would cost every start of secretrun.
func partitionOf(region string) partition {
	for _, p := range partitions {
		if p.global != "" && region == p.global {
			return p.partition
		}
	}
	for _, p := range partitions {
		if regexp.MustCompile(p.regionRegex).MatchString(region) {
			return p.partition
		}
	}
	return partitions[0].partition
}

// ResolveEndpoint is the SDK's choice of URL for svc, and the region to
// sign for. An endpoint given to secretrun (setting, AWS_ENDPOINT_URL_<ID>,
// AWS_ENDPOINT_URL) wins; then the shared config's `services` section for
// the service, then the profile's endpoint_url; else AWS's own endpoint for the
// region, FIPS or dual-stack when AWS_USE_FIPS_ENDPOINT,
// AWS_USE_DUALSTACK_ENDPOINT or the profile ask for it (or the region is
// a FIPS pseudo-region such as fips-us-gov-west-1).
func ResolveEndpoint(cfg aws.Config, endpoint string, svc Service) (string, string, error) {
	ctx := context.Background()
	region := cfg.Region
	fips, dualStack := useFIPS(ctx, cfg.ConfigSources), useDualStack(ctx, cfg.ConfigSources)
	if strings.Contains(region, "-fips-") || strings.Contains(region, "fips-") || strings.Contains(region, "-fips") {
		region = strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(region, "-fips-", "-"), "fips-", ""), "-fips", "")
		fips = true
	}
	if region != "" && !validRegion(region) {
		return "", "", fmt.Errorf("region %q: not a region name, such as eu-west-1", cfg.Region)
	}
	if endpoint == "" {
		endpoint = configuredEndpoint(ctx, cfg, svc.ID)
	}
	if endpoint != "" {
		switch {
		case fips:
			return "", "", fmt.Errorf("endpoint %s: a FIPS endpoint is asked for too (AWS_USE_FIPS_ENDPOINT, use_fips_endpoint or a fips- region), and a given endpoint cannot be made FIPS: drop one of them", endpoint)
		case dualStack:
			return "", "", fmt.Errorf("endpoint %s: a dual-stack endpoint is asked for too (AWS_USE_DUALSTACK_ENDPOINT or use_dualstack_endpoint), and a given endpoint cannot be made dual-stack: drop one of them", endpoint)
		}
		u, err := url.Parse(endpoint)
		if err != nil {
			return "", "", fmt.Errorf("endpoint: %w", err)
		}
		u.Path = smithyhttp.JoinPath(u.Path, "/")
		return u.String(), region, nil
	}
	if region == "" {
		return "", "", fmt.Errorf("no region")
	}
	if svc.GlobalHost != "" && region == "aws-global" && !fips && !dualStack {
		return "https://" + svc.GlobalHost + "/", "us-east-1", nil
	}
	p := partitionOf(region)
	name := svc.SigningName
	if svc.HostPrefix != "" {
		name = svc.HostPrefix
	}
	var host string
	switch {
	case fips && dualStack && slices.Contains(svc.FIPSDualStackIsRegular, p.name):
		host = name + "-fips." + region + "." + p.dnsSuffix
	case fips && dualStack:
		host = name + "-fips." + region + "." + p.dualStackSuffix
	case fips && p.name == "aws-us-gov" && svc.GovCloudFIPSIsRegular:
		// GovCloud's regular endpoints are its FIPS endpoints.
		host = name + "." + region + ".amazonaws.com"
	case fips:
		host = name + "-fips." + region + "." + p.dnsSuffix
	case dualStack && slices.Contains(svc.DualStackIsRegular, p.name):
		host = name + "." + region + "." + p.dnsSuffix
	case dualStack:
		host = name + "." + region + "." + p.dualStackSuffix
	default:
		host = name + "." + region + "." + p.dnsSuffix
	}
	return "https://" + host + "/", region, nil
}

// configuredEndpoint is the endpoint the shared config gives the service: its
// `services` section, else the profile's endpoint_url (in
// cfg.BaseEndpoint), unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the
// profile say to ignore both. The environment's variables are already in
// the provider's endpoint.
func configuredEndpoint(ctx context.Context, cfg aws.Config, serviceID string) string {
	if ignoreConfiguredEndpoints(ctx, cfg.ConfigSources) {
		return ""
	}
	for _, src := range cfg.ConfigSources {
		if shared, ok := src.(serviceEndpoints); ok {
			if v, found, err := shared.GetServiceBaseEndpoint(ctx, serviceID); found && err == nil {
				return v
			}
		}
	}
	return aws.ToString(cfg.BaseEndpoint)
}

// serviceEndpoints is a configuration source that gives services
// endpoints of their own, as the shared config's `services` sections do.
type serviceEndpoints interface {
	GetServiceBaseEndpoint(ctx context.Context, serviceID string) (string, bool, error)
}

// ignoreConfiguredEndpoints reports whether the first source that says
// anything of it (AWS_IGNORE_CONFIGURED_ENDPOINT_URLS, then the profile's
// ignore_configured_endpoint_urls) says to ignore the endpoints configured
// for services.
func ignoreConfiguredEndpoints(ctx context.Context, sources []any) bool {
	for _, src := range sources {
		if p, ok := src.(interface {
			GetIgnoreConfiguredEndpoints(context.Context) (bool, bool, error)
		}); ok {
			v, found, err := p.GetIgnoreConfiguredEndpoints(ctx)
			if err != nil || found {
				return found && v && err == nil
			}
		}
	}
	return false
}

func useFIPS(ctx context.Context, sources []any) bool {
	for _, src := range sources {
		if p, ok := src.(interface {
			GetUseFIPSEndpoint(context.Context) (aws.FIPSEndpointState, bool, error)
		}); ok {
			v, found, err := p.GetUseFIPSEndpoint(ctx)
			if err != nil || found {
				return v == aws.FIPSEndpointStateEnabled
			}
		}
	}
	return false
}

func useDualStack(ctx context.Context, sources []any) bool {
	for _, src := range sources {
		if p, ok := src.(interface {
			GetUseDualStackEndpoint(context.Context) (aws.DualStackEndpointState, bool, error)
		}); ok {
			v, found, err := p.GetUseDualStackEndpoint(ctx)
			if err != nil || found {
				return v == aws.DualStackEndpointStateEnabled
			}
		}
	}
	return false
}

// validRegion is the SDK's check of a region: host labels, dots allowed.
func validRegion(region string) bool {
	for label := range strings.SplitSeq(region, ".") {
		if !smithyhttp.ValidHostLabel(label) || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
	}
	return true
}
