package ecs

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// FuzzRenderTaskDefinition: any task-definition file is refused with an
// error, or rendered so that the container runs the given image with the
// given variable, the gantry.sha tag is the commit's (once), and rendering
// the result again changes nothing.
func FuzzRenderTaskDefinition(f *testing.F) {
	for _, s := range []string{
		describeOutput,
		`{"family":"api","containerDefinitions":[{"name":"api","image":"x"}]}`,
		`{"family":"api","containerDefinitions":[{"name":"api","environment":[{"name":"A","value":"1"},{"name":"A","value":"2"}]}],"tags":[{"key":"gantry.sha","value":"old"},{"key":"team","value":"x"}]}`,
		`{"family":"api","containerDefinitions":[{"name":"api","environment":"oops"}]}`,
		`{"family":"api","containerDefinitions":[{"name":"api"}],"unknownField":1}`,
		`{"family":"api","containerDefinitions":[{"name":"api","cpu":1e400}]}`,
		`{"taskDefinition":{"family":"f","containerDefinitions":[{"name":"api"}]},"tags":[]}`,
		`{"family":"api","containerDefinitions":[{"name":"api"}]} trailing`,
		`null`, `[]`, `{"family":"","containerDefinitions":[]}`,
	} {
		f.Add([]byte(s), "api", "registry.example/api@sha256:0123", "LOG_LEVEL", "debug", "0123456789abcdef0123456789abcdef01234567")
	}
	f.Fuzz(func(t *testing.T, raw []byte, container, image, envName, envValue, sha string) {
		r := Render{
			Images:      map[string]string{container: image},
			Environment: map[string][]Env{container: {{Name: envName, Value: envValue}}},
			SHA:         sha,
		}
		// Every input is checked as UTF-8 text before it gets here (image
		// references, env lines, commits); JSON would replace other bytes.
		for _, s := range []string{container, image, envName, envValue, sha} {
			if !utf8.ValidString(s) {
				return
			}
		}
		in, rendered, err := RenderTaskDefinition(raw, r)
		if err != nil {
			return
		}
		if !json.Valid(rendered) {
			t.Fatalf("rendered JSON is not valid: %q", rendered)
		}
		found := false
		for _, c := range in.ContainerDefinitions {
			if aws.ToString(c.Name) != container {
				continue
			}
			found = true
			if aws.ToString(c.Image) != image {
				t.Fatalf("container %q runs %q, want %q", container, aws.ToString(c.Image), image)
			}
			set := false
			for _, e := range c.Environment {
				if aws.ToString(e.Name) == envName {
					if aws.ToString(e.Value) != envValue {
						t.Fatalf("container %q has %s=%q, want %q", container, envName, aws.ToString(e.Value), envValue)
					}
					set = true
				}
			}
			if !set {
				t.Fatalf("container %q lacks %s", container, envName)
			}
		}
		if !found {
			t.Fatalf("rendered without container %q: %s", container, rendered)
		}
		if sha != "" {
			n := 0
			for _, tag := range in.Tags {
				if aws.ToString(tag.Key) == TagSHA {
					n++
					if aws.ToString(tag.Value) != sha {
						t.Fatalf("gantry.sha tag %q, want %q", aws.ToString(tag.Value), sha)
					}
				}
			}
			if n != 1 {
				t.Fatalf("%d gantry.sha tags in %s", n, rendered)
			}
		}
		_, again, err := RenderTaskDefinition(rendered, r)
		if err != nil || !bytes.Equal(again, rendered) {
			t.Fatalf("rendering the rendered task definition again: %v\n%s\n%s", err, rendered, again)
		}
	})
}
