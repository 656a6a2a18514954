package app

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"healthhub/fhir/rest"
)

// Serve's log is buffered: one write(2) per access-log line cost the server
// about 4 µs of CPU per request (plus the wake-ups around it), a few
// percent of a read. Lines reach the log at most logFlushInterval after
// they were written, or as soon as logBufferSize bytes are waiting. The
// buffer is large so that a request does not wait at its log line while a
// write to the log stalls (a slow disk or pipe): at 10,000 requests/s, 1 MB
// holds ~0.6 s of lines, where 64 kB held 40 ms, beyond which every
// request waited for the stalled write before its response went out. A clean
// stop (SIGTERM, SIGINT, an error return) flushes everything; a crash (a
// panic outside a request, a Go runtime fatal error, SIGKILL or another
// signal, power loss) loses at most the last logFlushInterval of access
// lines. Every other record (startup,
// shutdown, warnings, errors, panics) is flushed at once (promptHandler).
const (
	logFlushInterval = 100 * time.Millisecond
	logBufferSize    = 1 << 20
)

// logWriter buffers what is written to it and writes it to w after
// interval, when size bytes are waiting, or on Flush and Close. It is safe
// for concurrent use and keeps the order of writes.
type logWriter struct {
	w        io.Writer
	size     int
	interval time.Duration

	flushMu sync.Mutex // held while writing to w: flushes are in order
	spare   []byte     // the buffer being written to w; under flushMu

	mu      sync.Mutex
	buf     []byte
	timer   *time.Timer // runs Flush interval after the first buffered write
	pending bool        // the timer is set
	closed  bool        // writes go straight to w
}

func newLogWriter(w io.Writer, interval time.Duration, size int) *logWriter {
	l := &logWriter{w: w, size: size, interval: interval, buf: make([]byte, 0, size), spare: make([]byte, 0, size)}
	l.timer = time.AfterFunc(time.Hour, func() { _ = l.Flush() })
	l.timer.Stop()
	return l
}

// Write buffers p (log/slog handlers write one whole line per call). It
// reports only an error of a flush it does itself.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.flushMu.Lock()
		defer l.flushMu.Unlock()
		return l.w.Write(p)
	}
	l.buf = append(l.buf, p...)
	full := len(l.buf) >= l.size
	if !full && !l.pending {
		// A timer only while something waits: an idle server is not woken.
		l.pending = true
		l.timer.Reset(l.interval)
	}
	l.mu.Unlock()
	if full {
		// A writer that fills the buffer waits for the write (and for
		// any flush before it), so a burst cannot grow the buffer without
		// bound.
		return len(p), l.Flush()
	}
	return len(p), nil
}

// Flush writes what is buffered.
func (l *logWriter) Flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	b := l.buf
	l.buf = l.spare[:0]
	if l.pending {
		l.pending = false
		l.timer.Stop()
	}
	l.mu.Unlock()
	l.spare = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := l.w.Write(b)
	return err
}

// Close flushes; later writes go straight to w (a log line written after
// Close is not lost). It does not close w.
func (l *logWriter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Flush()
}

// promptHandler flushes the logWriter after every record but the access
// log's Info lines, so that the rare records (startup, shutdown, warnings,
// errors) are in the log as soon as they happen; only the per-request
// lines wait for the buffer.
type promptHandler struct {
	slog.Handler
	w *logWriter
}

func (h promptHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Message != rest.AccessLogMessage || r.Level > slog.LevelInfo {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h promptHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return promptHandler{h.Handler.WithAttrs(as), h.w}
}

func (h promptHandler) WithGroup(name string) slog.Handler {
	return promptHandler{h.Handler.WithGroup(name), h.w}
}
