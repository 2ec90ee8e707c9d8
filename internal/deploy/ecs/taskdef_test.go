package ecs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// describeOutput is `aws ecs describe-task-definition --include TAGS` output, read-only members and all.
const describeOutput = `{
  "taskDefinition": {
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/api:7",
    "family": "api",
    "revision": 7,
    "status": "ACTIVE",
    "networkMode": "awsvpc",
    "cpu": "256",
    "memory": "512",
    "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
    "compatibilities": ["EC2", "FARGATE"],
    "requiresCompatibilities": ["FARGATE"],
    "registeredAt": "2026-11-02T10:11:12.345000+00:00",
    "registeredBy": "arn:aws:sts::123456789012:assumed-role/deploy/gantry",
    "containerDefinitions": [
      {"name": "api", "image": "registry.example/api:old", "essential": true, "cpu": 0,
       "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
       "environment": [{"name": "LOG_LEVEL", "value": "info"}],
       "dockerLabels": {"CamelCase.Key": "kept"},
       "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/api", "awslogs-region": "us-east-1"}}},
      {"name": "sidecar", "image": "registry.example/envoy:1.30", "essential": false}
    ]
  },
  "tags": [{"key": "team", "value": "payments"}, {"key": "gantry.sha", "value": "0000000"}]
}`

const digest = "registry.example/api@sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"

func TestRenderTaskDefinition(t *testing.T) {
	t.Parallel()
	in, rendered, err := RenderTaskDefinition([]byte(describeOutput), Render{
		Images:      map[string]string{"api": digest},
		Environment: map[string][]Env{"api": {{Name: "LOG_LEVEL", Value: "debug"}, {Name: "NEW", Value: "1"}}},
		SHA:         "1234567890abcdef1234567890abcdef12345678",
	})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(in.Family) != "api" || aws.ToString(in.Cpu) != "256" || in.NetworkMode != types.NetworkModeAwsvpc {
		t.Errorf("family/cpu/network = %s %s %s", aws.ToString(in.Family), aws.ToString(in.Cpu), in.NetworkMode)
	}
	api := in.ContainerDefinitions[0]
	if aws.ToString(api.Image) != digest || aws.ToString(in.ContainerDefinitions[1].Image) != "registry.example/envoy:1.30" {
		t.Errorf("images = %s, %s", aws.ToString(api.Image), aws.ToString(in.ContainerDefinitions[1].Image))
	}
	env := map[string]string{}
	for _, e := range api.Environment {
		env[aws.ToString(e.Name)] = aws.ToString(e.Value)
	}
	if len(env) != 2 || env["LOG_LEVEL"] != "debug" || env["NEW"] != "1" {
		t.Errorf("environment = %v", env)
	}
	if api.DockerLabels["CamelCase.Key"] != "kept" || api.LogConfiguration.Options["awslogs-group"] != "/ecs/api" {
		t.Errorf("user-keyed maps changed: %v %v", api.DockerLabels, api.LogConfiguration.Options)
	}
	tags := map[string]string{}
	for _, tg := range in.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if len(tags) != 2 || tags["team"] != "payments" || tags[TagSHA] != "1234567890abcdef1234567890abcdef12345678" {
		t.Errorf("tags = %v (kept team, replaced gantry.sha)", tags)
	}
	var doc map[string]any
	if err := json.Unmarshal(rendered, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range readOnlyFields {
		if _, ok := doc[f]; ok {
			t.Errorf("rendered file keeps read-only %s", f)
		}
	}
	if _, ok := doc["containerDefinitions"]; !ok || !strings.Contains(string(rendered), `"requiresCompatibilities"`) {
		t.Errorf("rendered file is not camelCase:\n%s", rendered)
	}
}

func TestRenderTaskDefinitionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw string
		render    Render
		want      string
	}{
		{"not json", `{"family": `, Render{}, "ends early"},
		{"syntax", `{"family": x}`, Render{}, "JSON syntax error at byte"},
		{"array", `[1]`, Render{}, "not a JSON object"},
		{"no family", `{"containerDefinitions":[{"name":"a","image":"x"}]}`, Render{}, `no "family"`},
		{"no containers", `{"family":"a"}`, Render{}, `no "containerDefinitions"`},
		{"unknown member", `{"family":"a","containerDefinitions":[{"name":"a","image":"x"}],"cpus":"256"}`, Render{}, `unknown member "cpus"`},
		{"unknown nested member", `{"family":"a","containerDefinitions":[{"name":"a","image":"x","imag":"y"}]}`, Render{}, `unknown member "imag"`},
		{"wrong type", `{"family":"a","containerDefinitions":[{"name":"a","image":"x","memory":"512"}]}`, Render{}, `"containerDefinitions.memory" holds a string`},
		{"unknown container", describeOutput, Render{Images: map[string]string{"web": digest}}, `container "web" is not in the task definition (it has: api, sidecar)`},
		{"unknown env container", describeOutput, Render{Environment: map[string][]Env{"db": {{Name: "A", Value: "b"}}}}, `container "db"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := RenderTaskDefinition([]byte(tc.raw), tc.render)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTaskDefinitionJSONRoundTrips(t *testing.T) {
	t.Parallel()
	in, _, err := RenderTaskDefinition([]byte(describeOutput), Render{})
	if err != nil {
		t.Fatal(err)
	}
	td := &types.TaskDefinition{Family: in.Family, Cpu: in.Cpu, Memory: in.Memory, NetworkMode: in.NetworkMode,
		ContainerDefinitions: in.ContainerDefinitions, TaskDefinitionArn: aws.String("arn:aws:ecs:us-east-1:1:task-definition/api:7"), Revision: 7,
		Status: types.TaskDefinitionStatusActive, RequiresCompatibilities: in.RequiresCompatibilities}
	raw, err := TaskDefinitionJSON(td, in.Tags)
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := RenderTaskDefinition(raw, Render{Images: map[string]string{"api": digest}})
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if aws.ToString(again.ContainerDefinitions[0].Image) != digest || again.ContainerDefinitions[0].DockerLabels["CamelCase.Key"] != "kept" || len(again.Tags) != 2 {
		t.Errorf("round trip lost something: %+v", again.ContainerDefinitions[0])
	}
}

func TestImageSHA(t *testing.T) {
	t.Parallel()
	for img, want := range map[string]string{
		"ghcr.io/acme/api:sha-1a2b3c4":                       "1a2b3c4",
		"ghcr.io/acme/api:sha-1a2b3c4@sha256:" + digest[28:]: "1a2b3c4",
		"ghcr.io/acme/api:v1":                                "",
		"localhost:5000/api:sha-zzzzzzz":                     "",
		"ghcr.io/acme/api@sha256:" + digest[28:]:             "",
	} {
		if got := imageSHA(img); got != want {
			t.Errorf("imageSHA(%s) = %q, want %q", img, got, want)
		}
	}
}
