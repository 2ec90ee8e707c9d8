package runfake

import (
	"context"
	"fmt"
	"strings"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// permissions are the IAM permissions Cloud Run checks for each method.
var permissions = map[string]string{
	"CreateService":   "run.services.create",
	"GetService":      "run.services.get",
	"ListServices":    "run.services.list",
	"UpdateService":   "run.services.update",
	"DeleteService":   "run.services.delete",
	"GetRevision":     "run.revisions.get",
	"ListRevisions":   "run.revisions.list",
	"DeleteRevision":  "run.revisions.delete",
	"GetOperation":    "run.operations.get",
	"ListOperations":  "run.operations.list",
	"DeleteOperation": "run.operations.delete",
	"WaitOperation":   "run.operations.get",
}

// authorize checks the call's bearer token when Options.Tokens is set.
func (s *Server) authorize(ctx context.Context, method string, req proto.Message) error {
	if s.opts.Tokens == nil {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			token = strings.TrimSpace(t)
		}
	}
	if token == "" {
		return status.Error(codes.Unauthenticated, "Request is missing required authentication credential. "+
			"Expected OAuth 2 access token, login cookie or other valid authentication credential. "+
			"See https://developers.google.com/identity/sign-in/web/devconsole-project.")
	}
	if !s.opts.Tokens(token) {
		return status.Error(codes.PermissionDenied, permissionDenied(method, s.resourceOf(req)))
	}
	return nil
}

func permissionDenied(method, resource string) string {
	perm := permissions[method]
	if perm == "" {
		perm = "run." + method
	}
	return fmt.Sprintf("Permission '%s' denied on resource '%s' (or it may not exist).", perm, resource)
}

// resourceOf is the resource a request names, as Google quotes it in errors.
func (s *Server) resourceOf(req proto.Message) string {
	switch r := req.(type) {
	case *runpb.CreateServiceRequest:
		return r.GetParent() + "/services/" + r.GetServiceId()
	case *runpb.UpdateServiceRequest:
		return r.GetService().GetName()
	case interface{ GetName() string }:
		return r.GetName()
	case interface{ GetParent() string }:
		return r.GetParent()
	}
	return s.Parent()
}

// defaultMessage is a message like Google's for an injected fault without one.
func (s *Server) defaultMessage(code codes.Code, method, resource string) string {
	switch code {
	case codes.Unavailable:
		return "The service is currently unavailable."
	case codes.ResourceExhausted:
		return "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute per region' " +
			"of service 'run.googleapis.com' for consumer 'project_number:" + s.opts.ProjectNumber + "'."
	case codes.PermissionDenied:
		return permissionDenied(method, resource)
	case codes.DeadlineExceeded:
		return "Deadline exceeded."
	case codes.Internal:
		return "Internal error encountered."
	case codes.Unauthenticated:
		return "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie " +
			"or other valid authentication credential."
	}
	return code.String()
}
