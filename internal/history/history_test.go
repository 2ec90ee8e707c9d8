package history

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/remote"
)

func TestAppendReadFind(t *testing.T) {
	t.Parallel()
	h := &remote.Local{}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	if es, err := Read(context.Background(), h, path); err != nil || len(es) != 0 {
		t.Fatalf("missing file: %v %v", es, err)
	}
	for _, e := range []Entry{
		{SHA: "1111111aaaa", Result: ResultSuccess, Reason: `"; rm -rf / # $(id)` + "\nline2"},
		{SHA: "2222222bbbb", Result: ResultSuccess},
		{SHA: "3333333cccc", Result: ResultFailed},
		{SHA: "2222222bbbb", Result: ResultSuccess},
	} {
		if err := Append(context.Background(), h, path, e); err != nil {
			t.Fatal(err)
		}
	}
	// A torn last line (a deploy cut mid-write) is skipped.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"sha":"44`)
	f.Close()
	es, err := Read(context.Background(), h, path)
	if err != nil || len(es) != 4 {
		t.Fatalf("read %d entries, %v", len(es), err)
	}
	if !strings.Contains(es[0].Reason, "$(id)") || !strings.Contains(es[0].Reason, "\nline2") {
		t.Errorf("reason not kept as data: %q", es[0].Reason)
	}
	for _, tc := range []struct{ to, want, err string }{
		{"previous", "1111111aaaa", ""},
		{"1111111", "1111111aaaa", ""},
		{"3333333", "", "no successful deploy of 3333333"},
		{"9999999", "", "known-good SHAs: 2222222, 1111111"},
	} {
		e, err := Find(es, tc.to)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Find(%s) err = %v, want %q", tc.to, err, tc.err)
			}
			continue
		}
		if err != nil || e.SHA != tc.want {
			t.Errorf("Find(%s) = %s, %v", tc.to, e.SHA, err)
		}
	}
	if cur, ok := Current(es); !ok || cur.SHA != "2222222bbbb" {
		t.Errorf("Current = %v", cur.SHA)
	}
}

func TestRecord(t *testing.T) {
	t.Parallel()
	h := &remote.Local{}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".gantry"), 0o755); err != nil { // the deploy makes it
		t.Fatal(err)
	}
	p := PathIn(dir)
	ctx := context.Background()
	if err := Record(ctx, h, p, Entry{SHA: "abcdef0", Result: ResultFailed}, errors.New("crashed")); err != nil {
		t.Fatal(err)
	}
	if err := Record(ctx, h, p, Entry{SHA: "abcdef1", Result: ResultSuccess}, nil); err != nil {
		t.Fatal(err)
	}
	es, err := Read(ctx, h, p)
	if err != nil || len(es) != 2 {
		t.Fatalf("Read = %v, %v", es, err)
	}
	if es[0].ID == "" || es[0].ID == es[1].ID || es[0].Error != "crashed" || es[1].Error != "" || es[1].Finished.IsZero() {
		t.Errorf("entries = %+v", es)
	}
}
