package ecsfake

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

var familyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

func (s *Server) taskDefARN(family string, rev int32) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:%d", s.opts.Region, s.opts.Account, family, rev)
}

func (s *Server) registerTaskDefinition(in *ecs.RegisterTaskDefinitionInput) (any, *apiError) {
	family := aws.ToString(in.Family)
	if !familyRE.MatchString(family) {
		return nil, errorf(CodeClient, "Family contains invalid characters or is empty: %q. Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed.", family)
	}
	if len(in.ContainerDefinitions) == 0 {
		return nil, errorf(CodeClient, "Container list cannot be empty.")
	}
	for _, c := range in.ContainerDefinitions {
		if aws.ToString(c.Name) == "" {
			return nil, errorf(CodeClient, "Container.name should not be null or empty.")
		}
		if aws.ToString(c.Image) == "" {
			return nil, errorf(CodeClient, "Container.image should not be null or empty.")
		}
	}
	// The input and the TaskDefinition share most member names: copy them across.
	b, err := json.Marshal(in)
	if err != nil {
		return nil, errorf(CodeServer, "%v", err)
	}
	td := &types.TaskDefinition{}
	if err := json.Unmarshal(b, td); err != nil {
		return nil, errorf(CodeServer, "%v", err)
	}
	rev := int32(len(s.families[family]) + 1)
	now := s.now
	td.Revision = rev
	td.TaskDefinitionArn = aws.String(s.taskDefARN(family, rev))
	td.Status = types.TaskDefinitionStatusActive
	td.RegisteredAt = &now
	td.RegisteredBy = aws.String(fmt.Sprintf("arn:aws:sts::%s:assumed-role/deploy/gantry", s.opts.Account))
	td.Compatibilities = []types.Compatibility{types.CompatibilityEc2}
	for _, c := range in.RequiresCompatibilities {
		if c == types.CompatibilityFargate {
			td.Compatibilities = append(td.Compatibilities, types.CompatibilityFargate)
		}
	}
	if td.NetworkMode == "" {
		td.NetworkMode = types.NetworkModeBridge
	}
	s.families[family] = append(s.families[family], td)
	return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: td, Tags: in.Tags}, nil
}

// resolveTaskDef finds a task definition by family (latest ACTIVE), family:revision or ARN.
func (s *Server) resolveTaskDef(ref string, activeOnly bool) *types.TaskDefinition {
	if i := strings.LastIndex(ref, ":task-definition/"); i >= 0 && strings.HasPrefix(ref, "arn:") {
		ref = ref[i+len(":task-definition/"):]
	}
	family, revStr, hasRev := strings.Cut(ref, ":")
	revs := s.families[family]
	if !hasRev {
		for i := len(revs) - 1; i >= 0; i-- {
			if revs[i].Status == types.TaskDefinitionStatusActive {
				return revs[i]
			}
		}
		return nil
	}
	rev, err := strconv.Atoi(revStr)
	if err != nil || rev < 1 || rev > len(revs) {
		return nil
	}
	td := revs[rev-1]
	if activeOnly && td.Status != types.TaskDefinitionStatusActive {
		return nil
	}
	return td
}

func (s *Server) describeTaskDefinition(in *ecs.DescribeTaskDefinitionInput) (any, *apiError) {
	td := s.resolveTaskDef(aws.ToString(in.TaskDefinition), false)
	if td == nil {
		return nil, errorf(CodeClient, "Unable to describe task definition.")
	}
	return &ecs.DescribeTaskDefinitionOutput{TaskDefinition: td}, nil
}

func (s *Server) deregisterTaskDefinition(in *ecs.DeregisterTaskDefinitionInput) (any, *apiError) {
	ref := aws.ToString(in.TaskDefinition)
	if !strings.Contains(ref, ":") {
		return nil, errorf(CodeClient, "Invalid revision number. Number: %s", ref)
	}
	td := s.resolveTaskDef(ref, false)
	if td == nil {
		return nil, errorf(CodeClient, "The specified task definition does not exist.")
	}
	now := s.now
	td.Status = types.TaskDefinitionStatusInactive
	td.DeregisteredAt = &now
	return &ecs.DeregisterTaskDefinitionOutput{TaskDefinition: td}, nil
}
