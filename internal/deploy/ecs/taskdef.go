package ecs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/gantry-dev/gantry/internal/awsjson"
)

// Tag keys gantry puts on the task-definition revisions it registers; rollback
// finds a commit's revision by them.
const (
	TagSHA      = "gantry.sha"
	TagDeployed = "gantry.deployed" // when a deploy of the revision became steady
	TagVerified = "gantry.verified" // when a deploy verified it serves its commit
)

// readOnlyFields are the members `aws ecs describe-task-definition` prints that
// RegisterTaskDefinition refuses.
var readOnlyFields = []string{
	"taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities",
	"registeredAt", "registeredBy", "deregisteredAt", "deleteRequestedAt",
}

// Env is one environment variable of a container override.
type Env struct{ Name, Value string }

// Render is what a rendered task definition changes.
type Render struct {
	// Images maps a container name to its new image (repo@digest).
	Images map[string]string
	// Environment maps a container name to variables to set (replacing ones of
	// the same name).
	Environment map[string][]Env
	// SHA is put in the gantry.sha tag.
	SHA string
}

// RenderTaskDefinition turns a task definition in the camelCase JSON of the
// ECS API (as `aws ecs describe-task-definition` prints it, wrapped in
// {"taskDefinition": ...} or not) into a RegisterTaskDefinition input with the
// images and environment replaced and the read-only members dropped. It returns
// the rendered JSON as well; unknown members and unknown containers are errors
// naming them.
func RenderTaskDefinition(raw []byte, r Render) (*ecs.RegisterTaskDefinitionInput, []byte, error) {
	doc, byName, names, err := parseTaskDefinition(raw)
	if err != nil {
		return nil, nil, err
	}
	unknown := func(name string) error {
		return fmt.Errorf("container %q is not in the task definition (it has: %s)", name, strings.Join(names, ", "))
	}
	for _, name := range sortedKeys(r.Images) {
		c := byName[name]
		if c == nil {
			return nil, nil, unknown(name)
		}
		c["image"] = r.Images[name]
	}
	for _, name := range sortedKeys(r.Environment) {
		c := byName[name]
		if c == nil {
			return nil, nil, unknown(name)
		}
		env, _ := c["environment"].([]any)
		for _, e := range r.Environment[name] {
			replaced := false
			for _, x := range env {
				if m, ok := x.(map[string]any); ok && m["name"] == e.Name {
					m["value"], replaced = e.Value, true
				}
			}
			if !replaced {
				env = append(env, map[string]any{"name": e.Name, "value": e.Value})
			}
		}
		c["environment"] = env
	}
	if r.SHA != "" {
		tags, _ := doc["tags"].([]any)
		kept := tags[:0]
		for _, t := range tags {
			if m, ok := t.(map[string]any); ok && (m["key"] == TagSHA || m["key"] == TagDeployed || m["key"] == TagVerified) {
				continue
			}
			kept = append(kept, t)
		}
		doc["tags"] = append(kept, map[string]any{"key": TagSHA, "value": r.SHA})
	}
	rendered, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	in := &ecs.RegisterTaskDefinitionInput{}
	dec := json.NewDecoder(bytes.NewReader(rendered))
	dec.DisallowUnknownFields()
	if err := dec.Decode(in); err != nil {
		return nil, nil, explainDecode(err)
	}
	return in, append(rendered, '\n'), nil
}

// ContainerNames returns the container names of a task definition file, or
// an error saying why the file is not one; it touches no API, so a deploy
// can check its inputs before the first call.
func ContainerNames(raw []byte) ([]string, error) {
	_, _, names, err := parseTaskDefinition(raw)
	if err != nil {
		return nil, err
	}
	if _, _, err := RenderTaskDefinition(raw, Render{}); err != nil {
		return nil, err
	}
	return names, nil
}

// parseTaskDefinition decodes a task definition file without its read-only
// members and indexes its containers by name.
func parseTaskDefinition(raw []byte) (map[string]any, map[string]map[string]any, []string, error) {
	doc, err := decodeObject(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if inner, ok := doc["taskDefinition"].(map[string]any); ok {
		// describe-task-definition output: the tags sit beside the definition.
		if tags, ok := doc["tags"]; ok {
			if _, has := inner["tags"]; !has {
				inner["tags"] = tags
			}
		}
		doc = inner
	}
	for _, f := range readOnlyFields {
		delete(doc, f)
	}
	if fam, _ := doc["family"].(string); fam == "" {
		return nil, nil, nil, errors.New(`it has no "family"`)
	}
	defs, _ := doc["containerDefinitions"].([]any)
	if len(defs) == 0 {
		return nil, nil, nil, errors.New(`it has no "containerDefinitions"`)
	}
	byName := map[string]map[string]any{}
	var names []string
	for i, d := range defs {
		c, ok := d.(map[string]any)
		name, _ := c["name"].(string)
		if !ok || name == "" {
			return nil, nil, nil, fmt.Errorf("containerDefinitions[%d] has no name", i)
		}
		byName[name] = c
		names = append(names, name)
	}
	return doc, byName, names, nil
}

// TaskDefinitionJSON renders a registered task definition and its tags as the
// camelCase JSON RenderTaskDefinition reads (for task-definition-family).
func TaskDefinitionJSON(td *types.TaskDefinition, tags []types.Tag) ([]byte, error) {
	doc := map[string]any{"taskDefinition": awsjson.Value(td)}
	if len(tags) > 0 {
		doc["tags"] = awsjson.Value(tags)
	}
	return json.Marshal(doc)
}

func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, explainDecode(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("text after the JSON object")
	}
	if doc == nil {
		return nil, errors.New("null")
	}
	return doc, nil
}

// explainDecode words encoding/json's errors for someone editing the file.
func explainDecode(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("JSON syntax error at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		// The path names Go fields (ContainerDefinitions.Memory); the file has camelCase members.
		parts := strings.Split(typ.Field, ".")
		for i, p := range parts {
			if p != "" {
				parts[i] = strings.ToLower(p[:1]) + p[1:]
			}
		}
		return fmt.Errorf("member %q holds a %s, want %s", strings.Join(parts, "."), typ.Value, typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the JSON ends early (unclosed brace, bracket or string)")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown member %s: RegisterTaskDefinition has no such field (check its spelling and case)", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tagValue returns the value of key in tags, or "".
func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if t.Key != nil && *t.Key == key && t.Value != nil {
			return *t.Value
		}
	}
	return ""
}
