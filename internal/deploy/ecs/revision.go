package ecs

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/gantry-dev/gantry/internal/commit"
)

// maxRevisionsSearched bounds how many revisions FindRevision describes.
const maxRevisionsSearched = 50

// Revision is a registered task definition gantry can roll back to.
type Revision struct {
	ARN      string
	SHA      string // its gantry.sha tag, or the commit of a sha-XXXXXXX image tag
	Deployed string // its gantry.deployed tag: when a deploy of it became steady
	Verified string // its gantry.verified tag: when a deploy verified it
}

// FindRevision finds the revision of the service's task-definition family to
// roll back to: for to = "previous", the newest revision of another commit
// than the one running that a deploy made steady; else the newest revision of
// commit to (7+ hex), preferring a verified one. Commits come from the gantry.sha tag gantry puts
// on the revisions it registers, or from an image tagged sha-XXXXXXX.
func FindRevision(ctx context.Context, api API, o Options, to string) (Revision, string, error) {
	out, err := api.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(o.Cluster), Services: []string{o.Service}})
	if err != nil {
		return Revision{}, "", explain("DescribeServices", o, err)
	}
	if len(out.Services) == 0 {
		return Revision{}, "", fmt.Errorf("service %s not found in cluster %s; check the service and cluster inputs and the region", o.Service, o.Cluster)
	}
	current := aws.ToString(out.Services[0].TaskDefinition)
	cur, err := describeRevision(ctx, api, o, current)
	if err != nil {
		return Revision{}, "", err
	}
	family := familyOf(current)
	in := &ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String(family), Sort: types.SortOrderDesc, Status: types.TaskDefinitionStatusActive}
	searched := 0
	var fallback *Revision
	for searched < maxRevisionsSearched {
		list, err := api.ListTaskDefinitions(ctx, in)
		if err != nil {
			return Revision{}, "", explain("ListTaskDefinitions", o, err)
		}
		for _, arn := range list.TaskDefinitionArns {
			if familyOf(arn) != family || arn == current {
				continue // a prefix match of another family, or the running one
			}
			if searched++; searched > maxRevisionsSearched {
				break
			}
			r, err := describeRevision(ctx, api, o, arn)
			if err != nil {
				return Revision{}, "", err
			}
			if to == "previous" {
				if (r.Deployed != "" || r.Verified != "") && r.SHA != "" && !commit.Matches(r.SHA, cur.SHA) {
					return r, current, nil
				}
				continue
			}
			if r.SHA != "" && commit.Matches(r.SHA, to) {
				if r.Verified != "" {
					return r, current, nil
				}
				if fallback == nil {
					fallback = &r
				}
			}
		}
		if list.NextToken == nil {
			break
		}
		in.NextToken = list.NextToken
	}
	if fallback != nil {
		return *fallback, current, nil
	}
	if to == "previous" {
		return Revision{}, "", fmt.Errorf("no earlier successfully deployed revision of family %s runs another commit than the current one (%s) among its last %d revisions; give a commit SHA in to", family, orNone(cur.SHA), maxRevisionsSearched)
	}
	return Revision{}, "", fmt.Errorf("no revision of family %s among its last %d was registered for commit %s (gantry.sha tag or sha-XXXXXXX image tag)", family, maxRevisionsSearched, to)
}

func describeRevision(ctx context.Context, api API, o Options, arn string) (Revision, error) {
	out, err := api.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(arn), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
	if err != nil {
		return Revision{}, explain("DescribeTaskDefinition", o, err)
	}
	r := Revision{ARN: aws.ToString(out.TaskDefinition.TaskDefinitionArn), SHA: tagValue(out.Tags, TagSHA),
		Deployed: tagValue(out.Tags, TagDeployed), Verified: tagValue(out.Tags, TagVerified)}
	if r.SHA == "" {
		for _, c := range out.TaskDefinition.ContainerDefinitions {
			if sha := imageSHA(aws.ToString(c.Image)); sha != "" {
				r.SHA = sha
				break
			}
		}
	}
	return r, nil
}

// imageSHA returns the commit of an image tagged sha-XXXXXXX (build-push's tag).
func imageSHA(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	i := strings.LastIndex(ref, ":sha-")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ""
	}
	sha := ref[i+len(":sha-"):]
	if _, err := commit.Validate(sha); err != nil {
		return ""
	}
	return sha
}

// familyOf returns the family of a task-definition ARN or family:revision.
func familyOf(arn string) string {
	s := short(arn)
	if i := strings.LastIndex(s, ":"); i >= 0 {
		return s[:i]
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "no gantry.sha tag"
	}
	return s
}
