package runfake

import (
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// operationState is a long-running operation and what ends it: the reconciliation of a
// service's generation, or (for deletions) a time.
type operationState struct {
	op      *longrunningpb.Operation
	service string // ID of the service whose reconciliation of generation gen ends it
	gen     int64
	doneAt  time.Time     // when a deletion's operation ends; zero otherwise
	result  proto.Message // a deletion's response
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("runfake: packing " + string(m.ProtoReflect().Descriptor().FullName()) + ": " + err.Error())
	}
	return a
}

// addOperation registers a new operation with metadata meta, forgetting the oldest finished
// operations beyond MaxOperations.
func (s *Server) addOperation(o *operationState, meta proto.Message) *operationState {
	o.op = &longrunningpb.Operation{Name: s.Parent() + "/operations/" + uuid(), Metadata: mustAny(meta)}
	s.ops[o.op.Name] = o
	s.opOrder = append(s.opOrder, o.op.Name)
	for i := 0; len(s.ops) > MaxOperations && i < len(s.opOrder); {
		if old := s.ops[s.opOrder[i]]; old != nil && !old.op.Done {
			i++
			continue
		}
		delete(s.ops, s.opOrder[i])
		s.opOrder = append(s.opOrder[:i], s.opOrder[i+1:]...)
	}
	return o
}

// serviceOperation is an operation that ends with the reconciliation of the service's current
// generation (at once if it has ended).
func (s *Server) serviceOperation(sv *service) *operationState {
	o := s.addOperation(&operationState{service: sv.id, gen: sv.status.Generation}, sv.view())
	if !sv.status.Reconciling {
		s.finishServiceOperation(sv, o)
	}
	return o
}

// doneOperation is an operation that has already ended with response resp.
func (s *Server) doneOperation(meta, resp proto.Message) *operationState {
	o := s.addOperation(&operationState{}, meta)
	complete(o, resp, nil)
	return o
}

// laterOperation is an operation that ends with resp after SettleAfter.
func (s *Server) laterOperation(meta, resp proto.Message) *operationState {
	return s.addOperation(&operationState{doneAt: s.now.Add(s.opts.SettleAfter), result: resp}, meta)
}

func complete(o *operationState, resp proto.Message, err error) {
	o.op.Done = true
	if err != nil {
		o.op.Result = &longrunningpb.Operation_Error{Error: status.Convert(err).Proto()}
		return
	}
	o.op.Metadata = mustAny(resp)
	o.op.Result = &longrunningpb.Operation_Response{Response: mustAny(resp)}
}

// finishOperations ends the operations waiting for the service's reconciliation.
func (s *Server) finishOperations(sv *service) {
	for _, o := range s.ops {
		if !o.op.Done && o.service == sv.id && o.doneAt.IsZero() && o.gen <= sv.status.ObservedGeneration {
			s.finishServiceOperation(sv, o)
		}
	}
}

func (s *Server) finishServiceOperation(sv *service, o *operationState) {
	v := sv.view()
	if c := v.TerminalCondition; c.GetState() == runpb.Condition_CONDITION_FAILED {
		o.op.Metadata = mustAny(v)
		complete(o, nil, status.Error(codes.FailedPrecondition, c.Message))
		return
	}
	complete(o, v, nil)
}

// abandonOperations ends the operations waiting for a service that was deleted.
func (s *Server) abandonOperations(id string) {
	for _, o := range s.ops {
		if !o.op.Done && o.service == id && o.doneAt.IsZero() {
			complete(o, nil, status.Errorf(codes.Aborted, "Service '%s' was deleted before its reconciliation finished.", id))
		}
	}
}

// step moves every revision, service and deletion one tick forward.
func (s *Server) step() {
	for _, sv := range s.services {
		for _, r := range sv.revs {
			if !r.done && !s.now.Before(r.readyAt) {
				s.settleRevision(r)
			}
		}
	}
	for _, sv := range s.services {
		if sv.status.Reconciling {
			s.reconcile(sv)
		}
	}
	for _, o := range s.ops {
		if !o.op.Done && !o.doneAt.IsZero() && !s.now.Before(o.doneAt) {
			complete(o, o.result, nil)
		}
	}
}

// operation returns a copy of the named operation, its metadata refreshed while it runs.
func (s *Server) operation(name string) (*longrunningpb.Operation, error) {
	o := s.ops[name]
	if o == nil {
		return nil, status.Errorf(codes.NotFound, "Operation '%s' not found.", name)
	}
	if sv := s.services[o.service]; !o.op.Done && sv != nil {
		o.op.Metadata = mustAny(sv.view())
	}
	return proto.Clone(o.op).(*longrunningpb.Operation), nil
}
