package k6load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// TestLoad runs real k6 for 2 s at 20 req/s against a server whose every
// fifth answer is a 503, and reads every request back.
func TestLoad(t *testing.T) {
	k6 := testenv.K6(t)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%5 == 0 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"git_sha":"abcdef0123"}`))
	}))
	defer srv.Close()
	l, err := Start(context.Background(), Options{K6: k6, Dir: t.TempDir(), Env: append(os.Environ(), "K6_NO_USAGE_REPORT=true"),
		URL: srv.URL + "/health", Rate: 20, Window: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Wait()
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range res.Requests {
		if r.Failed() {
			failed++
			if ErrKind(r) != "HTTP 503" {
				t.Errorf("failure kind %q, want HTTP 503", ErrKind(r))
			}
		} else if r.SHA != "abcdef0" {
			t.Errorf("answer from %q, want abcdef0", r.SHA)
		}
	}
	if got := int64(len(res.Requests)); got != n.Load() || got < 35 || failed != int(got/5) {
		t.Errorf("%d requests recorded (server saw %d), %d failed", got, n.Load(), failed)
	}
}
