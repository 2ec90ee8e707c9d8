package release

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Version is a release version, vMAJOR.MINOR.PATCH with an optional -prerelease suffix.
type Version struct {
	Major, Minor, Patch int
	Pre                 string // "" for a release; "rc.1" for v1.2.3-rc.1
}

var versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*))?$`)

// ParseVersion parses s ("v1.2.3", "v1.2.3-rc.1").
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("version %q is not vMAJOR.MINOR.PATCH (for example v1.4.2, or v1.4.2-rc.1 for a pre-release)", s)
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	v.Pre = m[4]
	return v, nil
}

func (v Version) String() string {
	s := fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	return s
}

// MajorTag is the moving tag of v's major version ("v1").
func (v Version) MajorTag() string { return fmt.Sprintf("v%d", v.Major) }

// MinorTag is the moving tag of v's minor version ("v1.2").
func (v Version) MinorTag() string { return fmt.Sprintf("v%d.%d", v.Major, v.Minor) }

// Less orders releases by major, minor and patch (pre-releases are never compared: they move no tag).
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// Uses is one `uses:` of a workflow or action file.
type Uses struct {
	File    string // relative to the tree's root, with forward slashes
	Line    int
	Value   string // "owner/repo/path@ref", "./local" or "docker://…"
	Comment string // the line's comment without "#" and spaces ("v7.0.1")
}

// Action is the part of Value before "@"; Ref the part after it.
func (u Uses) Action() string { a, _, _ := strings.Cut(u.Value, "@"); return a }

// Ref is the git reference the uses: names ("v1", a commit SHA).
func (u Uses) Ref() string { _, r, _ := strings.Cut(u.Value, "@"); return r }

// Internal reports whether u calls an action or workflow of repo ("owner/name"), which GitHub
// matches case-insensitively.
func (u Uses) Internal(repo string) bool {
	a := strings.ToLower(u.Action())
	repo = strings.ToLower(repo)
	return a == repo || strings.HasPrefix(a, repo+"/")
}

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// PinnedFiles are the files whose internal uses: a release pins: the reusable workflows, the root
// action and the composite actions. Examples are templates a user copies and pins, so they keep
// @v1.
func PinnedFiles(root string) ([]string, error) {
	var files []string
	for _, pattern := range []string{".github/workflows/*.yml", ".github/workflows/*.yaml", "action.yml", "action.yaml", "actions/*/action.yml", "actions/*/action.yaml"} {
		m, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(pattern)))
		if err != nil {
			return nil, err
		}
		for _, f := range m {
			rel, _ := filepath.Rel(root, f)
			files = append(files, filepath.ToSlash(rel))
		}
	}
	slices.Sort(files)
	return files, nil
}

// FindUses returns every uses: of the YAML file root/file, found by parsing it (so comments and
// block scalars never count).
func FindUses(root, file string) ([]Uses, error) {
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: not YAML: %w", file, err)
	}
	var out []Uses
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "uses" && v.Kind == yaml.ScalarNode {
					out = append(out, Uses{File: file, Line: v.Line, Value: v.Value, Comment: strings.TrimSpace(strings.TrimPrefix(v.LineComment, "#"))})
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	return out, nil
}

// FindAllUses is FindUses over files.
func FindAllUses(root string, files []string) ([]Uses, error) {
	var all []Uses
	for _, f := range files {
		u, err := FindUses(root, f)
		if err != nil {
			return nil, err
		}
		all = append(all, u...)
	}
	return all, nil
}

// pinnedUses lists every uses: of the files a release pins.
func pinnedUses(root string) ([]Uses, error) {
	files, err := PinnedFiles(root)
	if err != nil {
		return nil, err
	}
	return FindAllUses(root, files)
}

// CheckPinned fails, naming each one, when an internal uses: of the pinned files is not at a full
// commit SHA: what an organization's SHA-pinning policy refuses, and what would run other code
// than the release's.
func CheckPinned(root, repo string) error {
	all, err := pinnedUses(root)
	if err != nil {
		return err
	}
	var bad []string
	for _, u := range all {
		if u.Internal(repo) && !fullSHA.MatchString(u.Ref()) {
			bad = append(bad, fmt.Sprintf("%s:%d uses %s", u.File, u.Line, u.Value))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("internal uses: not pinned to a full commit SHA: %s", strings.Join(bad, "; "))
	}
	return nil
}

// usesLine matches a `uses:` line as gantry's files write it: owner/repo…@ref, quoted or not,
// with an optional comment.
var usesLine = regexp.MustCompile(`^(\s*(?:-\s+)?uses:\s*["']?)([^@\s"'#]+)@([^\s"'#]+)(["']?\s*(?:#.*)?)$`)

// target is the file an internal uses: runs: an action's action.yml or a reusable workflow.
func target(root, repo, action string) string {
	path := strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(action), strings.ToLower(repo)), "/")
	path = action[len(action)-len(path):] // keep the path's case
	if strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml") {
		return path
	}
	for _, name := range []string{"action.yml", "action.yaml"} {
		p := strings.TrimPrefix(path+"/"+name, "/")
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); err == nil {
			return p
		}
	}
	return strings.TrimPrefix(path+"/action.yml", "/")
}

// CheckOneLevel fails when a file an internal uses: points at itself has an internal uses:. The
// pinned SHA is the commit before the pinning one, where that file's own internal references are
// still @v1: only one level of references can be pinned, so a composite action or reusable
// workflow called internally must call no other of the repository's actions or workflows.
func CheckOneLevel(root, repo string) error {
	all, err := pinnedUses(root)
	if err != nil {
		return err
	}
	var bad []string
	for _, u := range all {
		if !u.Internal(repo) {
			continue
		}
		t := target(root, repo, u.Action())
		inner, err := FindUses(root, t)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s:%d uses %s, but this tree has no %s; fix the reference", u.File, u.Line, u.Value, t)
		}
		if err != nil {
			return err
		}
		for _, v := range inner {
			if v.Internal(repo) {
				bad = append(bad, fmt.Sprintf("%s (used at %s:%d) uses %s at line %d", t, u.File, u.Line, v.Value, v.Line))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("a release can pin one level of internal references only, and %s; make the caller use those directly", strings.Join(bad, "; "))
	}
	return nil
}

// PinInternalUses rewrites, in the pinned files under root, every internal uses: of repo to
// @sha, keeping each line's indentation, quotes and comment, and returns the files it changed.
func PinInternalUses(root, repo, sha string) ([]string, error) {
	if !fullSHA.MatchString(sha) {
		return nil, fmt.Errorf("pin internal uses: %q is not a full commit SHA", sha)
	}
	files, err := PinnedFiles(root)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, f := range files {
		path := filepath.Join(root, filepath.FromSlash(f))
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		lines := bytes.SplitAfter(data, []byte("\n"))
		n := 0
		for i, l := range lines {
			body := bytes.TrimRight(l, "\r\n")
			m := usesLine.FindSubmatchIndex(body)
			if m == nil {
				continue
			}
			action := string(body[m[4]:m[5]])
			if !(Uses{Value: action + "@x"}).Internal(repo) {
				continue
			}
			nl := append([]byte{}, body[:m[6]]...)
			nl = append(nl, sha...)
			nl = append(nl, body[m[7]:]...)
			nl = append(nl, l[len(body):]...)
			lines[i] = nl
			n++
		}
		if n == 0 {
			continue
		}
		if err := os.WriteFile(path, bytes.Join(lines, nil), 0o644); err != nil {
			return nil, err
		}
		changed = append(changed, f)
	}
	return changed, nil
}

// CheckOnlyUsesDiffer fails unless before and after (a file's contents) differ only in the ref of
// internal uses: lines: the pinning commit must change nothing else.
func CheckOnlyUsesDiffer(file, repo string, before, after []byte) error {
	b := strings.Split(string(before), "\n")
	a := strings.Split(string(after), "\n")
	if len(a) != len(b) {
		return fmt.Errorf("%s: the pinning commit changes the number of lines (%d → %d)", file, len(b), len(a))
	}
	for i := range b {
		if a[i] == b[i] {
			continue
		}
		mb, ma := usesLine.FindStringSubmatch(b[i]), usesLine.FindStringSubmatch(a[i])
		if mb == nil || ma == nil || mb[1] != ma[1] || mb[2] != ma[2] || mb[4] != ma[4] || !(Uses{Value: ma[2] + "@x"}).Internal(repo) || !fullSHA.MatchString(ma[3]) {
			return fmt.Errorf("%s:%d: the pinning commit changes more than an internal uses: ref: %q → %q", file, i+1, b[i], a[i])
		}
	}
	return nil
}

// EdgeFile holds the default edge image (edge.DefaultImage), from which the action.yml defaults
// and README tables are generated.
const EdgeFile = "internal/edge/edge.go"

var defaultImageRE = regexp.MustCompile(`(?m)^const DefaultImage = "([^"]+)"$`)

// pinnedImageRE is an image pinned by digest: name:tag@sha256:….
var pinnedImageRE = regexp.MustCompile(`^[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}@sha256:[0-9a-f]{64}$`)

// PinEdgeImage makes image (name:tag@sha256:…) the default edge image: in EdgeFile and wherever
// the generated action files (actions/*/action.yml, actions/*/README.md) repeat the old default.
// It returns the files changed.
func PinEdgeImage(root, image string) ([]string, error) {
	if !pinnedImageRE.MatchString(image) {
		return nil, fmt.Errorf("edge image %q is not name:tag@sha256:<64 hex>; pass the digest build-push printed", image)
	}
	edgePath := filepath.Join(root, filepath.FromSlash(EdgeFile))
	src, err := os.ReadFile(edgePath)
	if err != nil {
		return nil, fmt.Errorf("pin the edge image: %w", err)
	}
	m := defaultImageRE.FindAllSubmatch(src, -1)
	if len(m) != 1 {
		return nil, fmt.Errorf("pin the edge image: %s has %d `const DefaultImage = \"…\"` lines, want 1", EdgeFile, len(m))
	}
	old := string(m[0][1])
	files := []string{EdgeFile}
	generated, err := filepath.Glob(filepath.Join(root, "actions", "*", "*"))
	if err != nil {
		return nil, err
	}
	for _, g := range generated {
		if b := filepath.Base(g); b == "action.yml" || b == "README.md" {
			rel, _ := filepath.Rel(root, g)
			files = append(files, filepath.ToSlash(rel))
		}
	}
	var changed []string
	for _, f := range files {
		path := filepath.Join(root, filepath.FromSlash(f))
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		next := bytes.ReplaceAll(data, []byte(old), []byte(image))
		if bytes.Equal(next, data) {
			continue
		}
		if err := os.WriteFile(path, next, 0o644); err != nil {
			return nil, err
		}
		changed = append(changed, f)
	}
	return changed, nil
}
