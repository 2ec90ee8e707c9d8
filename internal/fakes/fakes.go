// Package fakes holds what the wire-protocol fakes under it share: serving
// on loopback and a queue of injected failures.
package fakes

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Serve serves h on a loopback port until tb ends and returns its base URL.
func Serve(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ts := httptest.NewServer(h)
	tb.Cleanup(ts.Close)
	return ts.URL
}

// Faults is a queue of injected failures, consulted in the order added. Each
// fault applies to calls whose key matches (an empty key matches every call)
// and is used up after its count of uses (0: never used up).
type Faults[F any] struct {
	mu    sync.Mutex
	items []fault[F]
}

type fault[F any] struct {
	key   string
	times int
	f     F
}

// Add queues f for calls with key, times times (0 = until Clear).
func (q *Faults[F]) Add(key string, times int, f F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, fault[F]{key: key, times: times, f: f})
}

// Take returns the first fault matching key, using up one of its uses.
func (q *Faults[F]) Take(key string) (F, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.items {
		it := &q.items[i]
		if it.key != "" && it.key != key {
			continue
		}
		f := it.f
		if it.times > 0 {
			if it.times--; it.times == 0 {
				q.items = append(q.items[:i], q.items[i+1:]...)
			}
		}
		return f, true
	}
	var zero F
	return zero, false
}

// Clear removes every fault.
func (q *Faults[F]) Clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = nil
}
