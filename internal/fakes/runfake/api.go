package runfake

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// servicesAPI is the fake's google.cloud.run.v2.Services.
type servicesAPI struct {
	runpb.UnimplementedServicesServer
	s *Server
}

// revisionsAPI is the fake's google.cloud.run.v2.Revisions.
type revisionsAPI struct {
	runpb.UnimplementedRevisionsServer
	s *Server
}

// operationsAPI is the fake's google.longrunning.Operations.
type operationsAPI struct {
	longrunningpb.UnimplementedOperationsServer
	s *Server
}

func (a servicesAPI) CreateService(_ context.Context, req *runpb.CreateServiceRequest) (*longrunningpb.Operation, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.parseParent(req.GetParent()); err != nil {
		return nil, err
	}
	if req.GetService() == nil {
		return nil, invalid("service: the Service is required.")
	}
	if s.services[req.GetServiceId()] != nil {
		return nil, status.Errorf(codes.AlreadyExists, "Resource '%s' already exists.", req.GetServiceId())
	}
	o, err := s.createService(req.GetServiceId(), req.GetService(), req.GetValidateOnly())
	if err != nil {
		return nil, err
	}
	return proto.Clone(o.op).(*longrunningpb.Operation), nil
}

// createService creates service id from in (whose output-only fields are ignored).
func (s *Server) createService(id string, in *runpb.Service, validateOnly bool) (*operationState, error) {
	if !serviceIDPattern.MatchString(id) {
		return nil, invalid("service_id: '%s' is not a valid service ID: it must begin with a letter, not end with a hyphen, "+
			"have fewer than 50 characters and contain only lowercase letters, digits and hyphens.", id)
	}
	now := timestamppb.New(s.now)
	sv := &service{id: id, status: &runpb.Service{
		Name:       s.ServiceName(id),
		Uid:        uuid(),
		CreateTime: now,
		Uri:        s.serviceURI("", id),
		Urls:       []string{s.deterministicURI(id), s.serviceURI("", id)},
	}}
	return s.apply(sv, true, specOf(in), validateOnly, false)
}

func (a servicesAPI) GetService(_ context.Context, req *runpb.GetServiceRequest) (*runpb.Service, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, err := s.lookupService(req.GetName())
	if err != nil {
		return nil, err
	}
	return sv.view(), nil
}

func (s *Server) lookupService(name string) (*service, error) {
	id, err := s.parseService(name)
	if err != nil {
		return nil, err
	}
	sv := s.services[id]
	if sv == nil {
		return nil, s.notFound(kindService, id)
	}
	return sv, nil
}

func (a servicesAPI) ListServices(_ context.Context, req *runpb.ListServicesRequest) (*runpb.ListServicesResponse, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.parseParent(req.GetParent()); err != nil {
		return nil, err
	}
	var all []*runpb.Service
	for _, sv := range s.services {
		all = append(all, sv.view())
	}
	sortNewestFirst(all, func(v *runpb.Service) (*timestamppb.Timestamp, string) { return v.CreateTime, v.Name })
	page, next, err := paginate(all, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &runpb.ListServicesResponse{Services: page, NextPageToken: next}, nil
}

func (a servicesAPI) UpdateService(_ context.Context, req *runpb.UpdateServiceRequest) (*longrunningpb.Operation, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	in := req.GetService()
	if in == nil {
		return nil, invalid("service: the Service is required.")
	}
	id, err := s.parseService(in.GetName())
	if err != nil {
		return nil, err
	}
	var o *operationState
	switch sv := s.services[id]; {
	case sv == nil && !req.GetAllowMissing():
		return nil, s.notFound(kindService, id)
	case sv == nil:
		o, err = s.createService(id, in, req.GetValidateOnly())
	default:
		if in.GetEtag() != "" && in.GetEtag() != sv.status.Etag {
			return nil, etagMismatch(sv.status.Name, in.GetEtag())
		}
		want := specOf(in)
		if paths := req.GetUpdateMask().GetPaths(); len(paths) > 0 && !slices.Contains(paths, "*") {
			want = proto.Clone(sv.spec).(*runpb.Service)
			if err := applyMask(want, specOf(in), paths); err != nil {
				return nil, err
			}
		}
		o, err = s.apply(sv, false, want, req.GetValidateOnly(), false)
	}
	if err != nil {
		return nil, err
	}
	return proto.Clone(o.op).(*longrunningpb.Operation), nil
}

func etagMismatch(name, got string) error {
	return status.Errorf(codes.Aborted,
		"The etag %s in the request does not match the current etag of resource '%s': it was modified since it was read. "+
			"Get it again, reapply the change and retry.", got, name)
}

// applyMask copies the fields of src that paths name into dst.
func applyMask(dst, src *runpb.Service, paths []string) error {
	for _, p := range paths {
		d, sm := dst.ProtoReflect(), src.ProtoReflect()
		parts := strings.Split(p, ".")
		for i, part := range parts {
			fd := d.Descriptor().Fields().ByName(protoreflect.Name(part))
			if fd == nil || slices.Contains(outputOnly, fd.Name()) && i == 0 {
				return invalid("update_mask: '%s' is not a field of Service that can be updated.", p)
			}
			if i == len(parts)-1 {
				if sm.Has(fd) {
					d.Set(fd, sm.Get(fd))
				} else {
					d.Clear(fd)
				}
				break
			}
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return invalid("update_mask: '%s' goes through a field that is not a message.", p)
			}
			d = d.Mutable(fd).Message()
			sm = sm.Get(fd).Message()
		}
	}
	return nil
}

func (a servicesAPI) DeleteService(_ context.Context, req *runpb.DeleteServiceRequest) (*longrunningpb.Operation, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, err := s.lookupService(req.GetName())
	if err != nil {
		return nil, err
	}
	if req.GetEtag() != "" && req.GetEtag() != sv.status.Etag {
		return nil, etagMismatch(sv.status.Name, req.GetEtag())
	}
	v := sv.view()
	if req.GetValidateOnly() {
		return proto.Clone(s.doneOperation(v, v).op).(*longrunningpb.Operation), nil
	}
	v.DeleteTime = timestamppb.New(s.now)
	v.Reconciling = true
	delete(s.services, sv.id)
	for _, r := range sv.revs {
		delete(s.revisions, r.id)
	}
	s.abandonOperations(sv.id)
	return proto.Clone(s.laterOperation(v, v).op).(*longrunningpb.Operation), nil
}

func (a revisionsAPI) GetRevision(_ context.Context, req *runpb.GetRevisionRequest) (*runpb.Revision, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	_, r, err := s.lookupRevision(req.GetName())
	if err != nil {
		return nil, err
	}
	return proto.Clone(r.rev).(*runpb.Revision), nil
}

func (s *Server) lookupRevision(name string) (*service, *revision, error) {
	svc, id, err := s.parseRevision(name)
	if err != nil {
		return nil, nil, err
	}
	r := s.revisions[id]
	if r == nil || r.service != svc {
		return nil, nil, s.notFound(kindRevision, id)
	}
	return s.services[svc], r, nil
}

func (a revisionsAPI) ListRevisions(_ context.Context, req *runpb.ListRevisionsRequest) (*runpb.ListRevisionsResponse, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := req.GetParent()
	id, err := s.parseService(parent)
	if err != nil {
		return nil, err
	}
	var all []*runpb.Revision
	for _, sv := range s.services {
		if id != "-" && sv.id != id {
			continue
		}
		for _, r := range sv.revs {
			all = append(all, proto.Clone(r.rev).(*runpb.Revision))
		}
	}
	if id != "-" && s.services[id] == nil {
		return nil, s.notFound(kindService, id)
	}
	sortNewestFirst(all, func(r *runpb.Revision) (*timestamppb.Timestamp, string) { return r.CreateTime, r.Name })
	page, next, err := paginate(all, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &runpb.ListRevisionsResponse{Revisions: page, NextPageToken: next}, nil
}

func (a revisionsAPI) DeleteRevision(_ context.Context, req *runpb.DeleteRevisionRequest) (*longrunningpb.Operation, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sv, r, err := s.lookupRevision(req.GetName())
	if err != nil {
		return nil, err
	}
	if req.GetEtag() != "" && req.GetEtag() != r.rev.Etag {
		return nil, etagMismatch(r.rev.Name, req.GetEtag())
	}
	if why := s.serving(sv, r); why != "" {
		return nil, status.Error(codes.FailedPrecondition, why)
	}
	v := proto.Clone(r.rev).(*runpb.Revision)
	if req.GetValidateOnly() {
		return proto.Clone(s.doneOperation(v, v).op).(*longrunningpb.Operation), nil
	}
	v.DeleteTime = timestamppb.New(s.now)
	s.removeRevision(sv, r)
	return proto.Clone(s.laterOperation(v, v).op).(*longrunningpb.Operation), nil
}

func (a operationsAPI) GetOperation(_ context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.operation(req.GetName())
}

func (a operationsAPI) ListOperations(_ context.Context, req *longrunningpb.ListOperationsRequest) (*longrunningpb.ListOperationsResponse, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.parseParent(req.GetName()); err != nil {
		return nil, err
	}
	var all []*longrunningpb.Operation
	for i := len(s.opOrder) - 1; i >= 0; i-- {
		if op, err := s.operation(s.opOrder[i]); err == nil {
			all = append(all, op)
		}
	}
	page, next, err := paginate(all, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &longrunningpb.ListOperationsResponse{Operations: page, NextPageToken: next}, nil
}

func (a operationsAPI) DeleteOperation(_ context.Context, req *longrunningpb.DeleteOperationRequest) (*emptypb.Empty, error) {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops[req.GetName()] == nil {
		return nil, status.Errorf(codes.NotFound, "Operation '%s' not found.", req.GetName())
	}
	delete(s.ops, req.GetName())
	s.opOrder = slices.DeleteFunc(s.opOrder, func(n string) bool { return n == req.GetName() })
	return &emptypb.Empty{}, nil
}

// WaitOperation returns once the operation is done, its timeout (wall time) passes or the call
// ends; the operation ends only as the virtual clock moves (Advance or RunRealtime).
func (a operationsAPI) WaitOperation(ctx context.Context, req *longrunningpb.WaitOperationRequest) (*longrunningpb.Operation, error) {
	s := a.s
	var timeout <-chan time.Time
	if d := req.GetTimeout(); d != nil {
		t := time.NewTimer(d.AsDuration())
		defer t.Stop()
		timeout = t.C
	}
	for {
		s.mu.Lock()
		op, err := s.operation(req.GetName())
		changed := s.changed
		s.mu.Unlock()
		if err != nil || op.Done {
			return op, err
		}
		select {
		case <-changed:
		case <-timeout:
			return op, nil
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// sortNewestFirst sorts by creation time, newest first, then by name.
func sortNewestFirst[T any](items []T, key func(T) (*timestamppb.Timestamp, string)) {
	slices.SortFunc(items, func(a, b T) int {
		ta, na := key(a)
		tb, nb := key(b)
		if c := tb.AsTime().Compare(ta.AsTime()); c != 0 {
			return c
		}
		return strings.Compare(na, nb)
	})
}

// paginate returns the page that token (an offset) starts and the next page's token.
func paginate[T any](items []T, size int32, token string) ([]T, string, error) {
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", invalid("page_token: '%s' is not a page token this list returned.", token)
		}
		start = n
	}
	if size <= 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	end := min(start+int(size), len(items))
	next := ""
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}
