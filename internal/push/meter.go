package push

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// meter is an http.RoundTripper that counts the blob bytes a push sends and
// records which blobs were uploaded or mounted, for the summary's "uploaded
// vs already present" figures. go-containerregistry has no such hook: its
// progress channel counts skipped blobs as written.
type meter struct {
	next     http.RoundTripper
	sent     atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	uploaded map[string]bool
	mounted  map[string]bool
}

func newMeter(next http.RoundTripper) *meter {
	return &meter{next: next, uploaded: map[string]bool{}, mounted: map[string]bool{}}
}

func (m *meter) RoundTrip(req *http.Request) (*http.Response, error) {
	upload := strings.Contains(req.URL.Path, "/blobs/uploads/")
	if upload && req.Body != nil && (req.Method == http.MethodPatch || req.Method == http.MethodPut) {
		req = req.Clone(req.Context())
		req.Body = &countingBody{ReadCloser: req.Body, n: &m.sent}
	}
	resp, err := m.next.RoundTrip(req)
	if err == nil {
		m.requests.Add(1) // answered requests only: the https probe of a plain-http registry is not one
	}
	if err != nil || !upload {
		return resp, err
	}
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodPut && resp.StatusCode == http.StatusCreated && q.Get("digest") != "":
		m.mu.Lock()
		m.uploaded[q.Get("digest")] = true
		m.mu.Unlock()
	case req.Method == http.MethodPost && resp.StatusCode == http.StatusCreated && q.Get("mount") != "":
		m.mu.Lock()
		m.mounted[q.Get("mount")] = true
		m.mu.Unlock()
	}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (m *meter) wasUploaded(d string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.uploaded[d]
}

func (m *meter) wasMounted(d string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mounted[d]
}
