package awsjson

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

func TestValue(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 2, 10, 11, 12, 345e6, time.UTC)
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"members in lowerCamelCase, nil and unset enums left out", &types.ContainerDefinition{Name: aws.String("api"), Essential: aws.Bool(true), Cpu: 0},
			`{"cpu":0,"essential":true,"name":"api"}`},
		{"user keys of maps kept as they are", types.LogConfiguration{LogDriver: types.LogDriverAwslogs, Options: map[string]string{"awslogs-group": "/ecs/api", "Camel": "x"}},
			`{"logDriver":"awslogs","options":{"Camel":"x","awslogs-group":"/ecs/api"}}`},
		{"timestamps as epoch seconds", types.TaskDefinition{RegisteredAt: &at, Revision: 7},
			`{"registeredAt":1793614272.345,"revision":7}`},
		{"slices", []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}, `[{"key":"a","value":"b"}]`},
		{"nil", (*types.Tag)(nil), `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(Value(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
