package k6run

import (
	"bytes"
	"io"
	"sync"
)

// maxLine is where lineWriter cuts a line that has no end yet, so one
// runaway line cannot hold the log back or grow without bound.
const maxLine = 64 << 10

// lineWriter passes what k6 writes on to w one whole line per Write, so
// lines of stdout and stderr never interleave mid-line and a redacting
// writer sees each secret whole. Each line is also offered to keep.
type lineWriter struct {
	mu   *sync.Mutex // shared by the stdout and stderr writers of one run
	w    io.Writer
	keep func(string)
	buf  []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			if len(l.buf) >= maxLine {
				l.emit(append(l.buf, '\n'))
				l.buf = l.buf[:0]
			}
			break
		}
		if len(l.buf) > 0 {
			l.buf = append(l.buf, p[:i+1]...)
			l.emit(l.buf)
			l.buf = l.buf[:0]
		} else {
			l.emit(p[:i+1])
		}
		p = p[i+1:]
	}
	// A failing log writer must not stop k6: its output is also on disk.
	return n, nil
}

// flush passes on a last line that did not end in a newline.
func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.emit(append(l.buf, '\n'))
		l.buf = l.buf[:0]
	}
}

func (l *lineWriter) emit(line []byte) {
	if l.keep != nil {
		l.keep(string(bytes.TrimRight(line, "\r\n")))
	}
	if l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(line)
}

// ring keeps the last lines written to it.
type ring struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newRing(n int) *ring { return &ring{lines: make([]string, n)} }

func (r *ring) add(s string) {
	if s == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = s
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// last returns the kept lines, oldest first.
func (r *ring) last() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.lines[:r.next]...)
	}
	return append(append([]string(nil), r.lines[r.next:]...), r.lines[:r.next]...)
}
