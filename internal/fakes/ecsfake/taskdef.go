package ecsfake

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
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
	if len(in.Tags) > 0 {
		s.tdTags[*td.TaskDefinitionArn] = slices.Clone(in.Tags)
	}
	cp := *td
	return &ecs.RegisterTaskDefinitionOutput{TaskDefinition: &cp, Tags: in.Tags}, nil
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
	cp := *td // encoded after the lock is released
	out := &ecs.DescribeTaskDefinitionOutput{TaskDefinition: &cp}
	if slices.Contains(in.Include, types.TaskDefinitionFieldTags) {
		out.Tags = append([]types.Tag{}, s.tdTags[*td.TaskDefinitionArn]...)
	}
	return out, nil
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
	cp := *td
	return &ecs.DeregisterTaskDefinitionOutput{TaskDefinition: &cp}, nil
}

// listTaskDefinitions lists ARNs by family name, then revision, as ECS does; familyPrefix is a
// whole family name.
func (s *Server) listTaskDefinitions(in *ecs.ListTaskDefinitionsInput) (any, *apiError) {
	status := in.Status
	if status == "" {
		status = types.TaskDefinitionStatusActive
	}
	if !slices.Contains(status.Values(), status) {
		return nil, errorf(CodeInvalidParameter, "Invalid status %q: must be one of ACTIVE, INACTIVE, DELETE_IN_PROGRESS.", status)
	}
	if in.Sort != "" && in.Sort != types.SortOrderAsc && in.Sort != types.SortOrderDesc {
		return nil, errorf(CodeInvalidParameter, "Invalid sort %q: must be ASC or DESC.", in.Sort)
	}
	var families []string
	if f := aws.ToString(in.FamilyPrefix); f != "" {
		families = []string{f}
	} else {
		for f := range s.families {
			families = append(families, f)
		}
		sort.Strings(families)
	}
	var arns []string
	for _, f := range families {
		for _, td := range s.families[f] {
			if td.Status == status {
				arns = append(arns, aws.ToString(td.TaskDefinitionArn))
			}
		}
	}
	if in.Sort == types.SortOrderDesc {
		slices.Reverse(arns)
	}
	page, next, e := paginate(arns, in.NextToken, in.MaxResults)
	if e != nil {
		return nil, e
	}
	out := &ecs.ListTaskDefinitionsOutput{TaskDefinitionArns: page, NextToken: next}
	return out, nil
}

// tagResource adds or replaces tags of a task definition (the only resource the fake tags).
func (s *Server) tagResource(in *ecs.TagResourceInput) (any, *apiError) {
	td := s.resolveTaskDef(aws.ToString(in.ResourceArn), false)
	if td == nil || !strings.HasPrefix(aws.ToString(in.ResourceArn), "arn:") {
		return nil, errorf(CodeInvalidParameter, "The ARN %q is not a task definition of this account.", aws.ToString(in.ResourceArn))
	}
	arn := aws.ToString(td.TaskDefinitionArn)
	if len(in.Tags) == 0 {
		return nil, errorf(CodeInvalidParameter, "Tags must contain at least 1 item.")
	}
	tags := s.tdTags[arn]
	for _, t := range in.Tags {
		i := slices.IndexFunc(tags, func(x types.Tag) bool { return aws.ToString(x.Key) == aws.ToString(t.Key) })
		if i >= 0 {
			tags[i] = t
		} else {
			tags = append(tags, t)
		}
	}
	s.tdTags[arn] = tags
	return &ecs.TagResourceOutput{}, nil
}
