package k6run_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// syncBuffer is a log that k6's streams and Logf may write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logf returns a Logf that writes lines to b.
func (b *syncBuffer) logf(format string, args ...any) {
	fmt.Fprintf(b, strings.TrimRight(format, "\n")+"\n", args...)
}

// writeScript writes a k6 script into dir and returns its path.
func writeScript(t *testing.T, dir, src string) string {
	t.Helper()
	p := filepath.Join(dir, "script.js")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor waits until cond holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !testenv.Eventually(time.Minute, 5*time.Millisecond, cond) {
		t.Fatalf("timed out waiting until %s", what)
	}
}
