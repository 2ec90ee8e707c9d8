package release

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
)

// ActionRow is one verified third-party action release: its commit, tag and runtime.
type ActionRow struct {
	Action, SHA, Version, Using string
}

// ReadActionTable reads the table of verified actions (tab-separated action, sha, version,
// using; # comments).
func ReadActionTable(r io.Reader) ([]ActionRow, error) {
	var rows []ActionRow
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 || !fullSHA.MatchString(f[1]) {
			return nil, fmt.Errorf("action table line %d: want action<TAB>40-hex sha<TAB>version<TAB>using, got %q", n, line)
		}
		rows = append(rows, ActionRow{Action: f[0], SHA: f[1], Version: f[2], Using: f[3]})
	}
	return rows, sc.Err()
}

// RequiredRuntime is the runtime of every JavaScript action gantry calls: node20 is gone from
// GitHub's runners since September 2026.
const RequiredRuntime = "node24"

var versionComment = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

// CheckThirdParty fails unless u (not an internal, local or docker uses:) is pinned by full SHA
// with a "# vX.Y.Z" comment, and the table has that action at that SHA and version, on node24.
func CheckThirdParty(u Uses, table []ActionRow) error {
	at := fmt.Sprintf("%s:%d uses %s", u.File, u.Line, u.Value)
	if !fullSHA.MatchString(u.Ref()) {
		return fmt.Errorf("%s: pin it by full commit SHA with a # vX.Y.Z comment", at)
	}
	if !versionComment.MatchString(u.Comment) {
		return fmt.Errorf("%s: the comment %q is not the release's # vX.Y.Z", at, u.Comment)
	}
	for _, r := range table {
		if !strings.EqualFold(r.Action, u.Action()) || r.SHA != u.Ref() {
			continue
		}
		if r.Version != u.Comment {
			return fmt.Errorf("%s: the comment says %s, but that commit is %s", at, u.Comment, r.Version)
		}
		if r.Using != RequiredRuntime {
			return fmt.Errorf("%s: %s %s runs on %s; use a %s release of it", at, r.Action, r.Version, r.Using, RequiredRuntime)
		}
		return nil
	}
	return fmt.Errorf("%s: not in the table of verified actions (internal/release/testdata/actions.tsv); read its action.yml at that commit and add a row", at)
}

// ThirdPartyFiles are the files whose third-party uses: must be verified: PinnedFiles and the
// examples' workflows.
func ThirdPartyFiles(root string) ([]string, error) {
	files, err := PinnedFiles(root)
	if err != nil {
		return nil, err
	}
	for _, pattern := range []string{"examples/*/.github/workflows/*.yml", "examples/*/.github/workflows/*.yaml"} {
		m, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(pattern)))
		if err != nil {
			return nil, err
		}
		for _, f := range m {
			rel, _ := filepath.Rel(root, f)
			files = append(files, filepath.ToSlash(rel))
		}
	}
	return files, nil
}

// ThirdParty reports whether u calls a third-party action: not repo's, not a local path, not a
// docker image.
func ThirdParty(u Uses, repo string) bool {
	return !u.Internal(repo) && !strings.HasPrefix(u.Value, "./") && !strings.HasPrefix(u.Value, "docker://")
}
