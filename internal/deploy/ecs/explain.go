package ecs

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/smithy-go"
)

// explainAPI turns an ECS API failure into one line saying what to check.
func explainAPI(op string, o Options, err error) error {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Errorf("ecs %s: cannot reach ECS (%v); check the region", op, dnsErr)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("ecs %s: %w", op, err)
	}
	code, msg := apiErr.ErrorCode(), apiErr.ErrorMessage()
	switch code {
	case "UnrecognizedClientException", "InvalidClientTokenId":
		return fmt.Errorf("ecs %s: AWS does not recognise the credentials (%s: %s); check them, and that the region is enabled for the account", op, code, msg)
	case "InvalidSignatureException", "SignatureDoesNotMatch":
		if strings.Contains(msg, "region") {
			return fmt.Errorf("ecs %s: ECS refused the request's region (%s: %s); check the region input", op, code, msg)
		}
		return fmt.Errorf("ecs %s: the AWS secret key does not match its access key ID (%s)", op, code)
	case "ExpiredTokenException":
		return fmt.Errorf("ecs %s: the AWS session token has expired (%s); refresh it or use aws-role-arn", op, msg)
	case "AccessDeniedException", "AccessDenied":
		return fmt.Errorf("ecs %s: the credentials may not call ecs:%s (%s); grant it in their IAM policy", op, op, msg)
	case "ClusterNotFoundException":
		return fmt.Errorf("ecs %s: cluster %q not found in this region (%s); check the cluster and region inputs", op, o.Cluster, msg)
	case "ServiceNotFoundException", "ServiceNotActiveException":
		return fmt.Errorf("ecs %s: service %q not found or not active in cluster %s (%s); check the service input", op, o.Service, o.Cluster, msg)
	case "ThrottlingException":
		return fmt.Errorf("ecs %s: ECS kept throttling after the SDK's retries (%s); other tools may be polling the same account hard, try again or raise AWS_MAX_ATTEMPTS", op, msg)
	}
	return fmt.Errorf("ecs %s: %s: %s", op, code, msg)
}
