package app

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// Slow clients. Request headers must arrive within ReadHeaderTimeout
// (Serve); a request body may take as long as it keeps moving, but a pause
// of Config.BodyIdleTimeout (DefaultBodyIdleTimeout) ends it: a client
// that announces a body and sends nothing would otherwise hold a
// connection and a goroutine for ever, and needs no token to do so (a 401
// is answered after net/http has tried to read the rest of the body).
// WriteTimeout bounds a request from its headers to its last byte
// written; MaxHeaderBytes what headers may weigh (a bearer token is a few
// kB).
const (
	DefaultBodyIdleTimeout = 30 * time.Second
	WriteTimeout           = 10 * time.Minute
	MaxHeaderBytes         = 64 << 10
)

// bodyIdleDeadline gives a request with a body a read deadline of idle
// from now, pushed back each time the body delivers bytes, and lifted
// once it has all been read. Only while a body is read: once the body is
// done net/http reads the connection in the background to notice a client
// that leaves, and a deadline there would cancel a handler that simply
// takes long (a large transaction); a request without a body has nothing
// to stall on.
func bodyIdleDeadline(h http.Handler, idle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(idle)) == nil {
				r.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: idle}
			}
		}
		h.ServeHTTP(w, r)
	})
}

type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		_ = b.rc.SetReadDeadline(time.Time{})
	case n > 0:
		_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	}
	return n, err
}
