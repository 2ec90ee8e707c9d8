package cloudrun

import (
	"context"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/api/iterator"
)

// API is the part of the Cloud Run Admin API v2 a deploy uses.
type API interface {
	GetService(ctx context.Context, name string) (*runpb.Service, error)
	// UpdateService updates (or, with allowMissing, creates) svc; svc.Etag, when set, must match.
	UpdateService(ctx context.Context, svc *runpb.Service, allowMissing bool) (Operation, error)
	GetRevision(ctx context.Context, name string) (*runpb.Revision, error)
	ListRevisions(ctx context.Context, service string) ([]*runpb.Revision, error)
}

// Operation is a long-running UpdateService.
type Operation interface {
	// Poll checks the operation once: the service when it is done, an error when it failed.
	Poll(ctx context.Context) (*runpb.Service, error)
	Done() bool
}

// Clients is the API over the GAPIC clients of cloud.google.com/go/run/apiv2.
type Clients struct {
	Services  *run.ServicesClient
	Revisions *run.RevisionsClient
}

// GetService implements API.
func (c Clients) GetService(ctx context.Context, name string) (*runpb.Service, error) {
	return c.Services.GetService(ctx, &runpb.GetServiceRequest{Name: name})
}

// UpdateService implements API.
func (c Clients) UpdateService(ctx context.Context, svc *runpb.Service, allowMissing bool) (Operation, error) {
	op, err := c.Services.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: svc, AllowMissing: allowMissing})
	if err != nil {
		return nil, err
	}
	return gapicOp{op}, nil
}

// gapicOp polls a GAPIC operation once per Poll, with the caller's interval
// (the client's own Wait backs off from 1 s to 60 s).
type gapicOp struct{ op *run.UpdateServiceOperation }

func (g gapicOp) Poll(ctx context.Context) (*runpb.Service, error) { return g.op.Poll(ctx) }
func (g gapicOp) Done() bool                                       { return g.op.Done() }

// GetRevision implements API.
func (c Clients) GetRevision(ctx context.Context, name string) (*runpb.Revision, error) {
	return c.Revisions.GetRevision(ctx, &runpb.GetRevisionRequest{Name: name})
}

// ListRevisions implements API.
func (c Clients) ListRevisions(ctx context.Context, service string) ([]*runpb.Revision, error) {
	it := c.Revisions.ListRevisions(ctx, &runpb.ListRevisionsRequest{Parent: service})
	var out []*runpb.Revision
	for {
		r, err := it.Next()
		if err == iterator.Done {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
}
