package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func actionTable(t *testing.T) []ActionRow {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "actions.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := ReadActionTable(f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestThirdPartyActions: every third-party uses: of the workflows, actions and examples is a
// verified node24 release pinned by SHA.
func TestThirdPartyActions(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	files, err := ThirdPartyFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	all, err := FindAllUses(root, files)
	if err != nil {
		t.Fatal(err)
	}
	table := actionTable(t)
	n := 0
	for _, u := range all {
		if ThirdParty(u, testRepo) {
			n++
			if err := CheckThirdParty(u, table); err != nil {
				t.Error(err)
			}
		}
	}
	if n == 0 {
		t.Fatal("found no third-party uses: at all")
	}
}

func TestCheckThirdParty(t *testing.T) {
	t.Parallel()
	table := actionTable(t)
	for _, tc := range []struct {
		name, value, comment, wantErr string
	}{
		{"node24 release", "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0", ""},
		{"node20 release", "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2", "runs on node20"},
		{"tag, not SHA", "actions/checkout@v7", "", "pin it by full commit SHA"},
		{"no version comment", "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1", "", "is not the release's"},
		{"wrong version comment", "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.0", "but that commit is v7.0.1"},
		{"unknown commit", "actions/checkout@" + strings.Repeat("1", 40), "v7.0.1", "not in the table"},
	} {
		err := CheckThirdParty(Uses{File: "wf.yml", Line: 1, Value: tc.value, Comment: tc.comment}, table)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}
