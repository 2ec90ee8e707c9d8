package demo

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Load is a constant HTTP load on one URL from a few workers, each request
// on a fresh connection (the hardest case for a switch: no client retry).
type Load struct {
	Total, Failed atomic.Int64
	stop          context.CancelFunc
	wg            sync.WaitGroup
}

// StartLoad starts workers requesting url until Stop.
func StartLoad(url string, workers int) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{stop: cancel}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					return
				}
				l.Total.Add(1)
				if err != nil || resp.StatusCode != http.StatusOK {
					l.Failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return l
}

// Stop ends the load and waits for the workers.
func (l *Load) Stop() {
	l.stop()
	l.wg.Wait()
}
