package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"healthhub/auth"
)

const (
	ctxRequest  = "healthhub.request"
	headerReqID = "X-Request-Id"
)

// requestState is what the middleware and the handlers know of one
// request. It is one value in the gin context rather than a key each:
// every c.Set takes the context's lock and boxes its value.
type requestState struct {
	id         string
	authorized bool // principal is set
	principal  auth.Principal
	cause      error // behind an error response, for the log only
}

// state is c's requestState; an empty one (never nil) on a request that
// did not pass through requestID.
func state(c *gin.Context) *requestState {
	if v, ok := c.Get(ctxRequest); ok {
		return v.(*requestState)
	}
	st := &requestState{}
	c.Set(ctxRequest, st)
	return st
}

func requestID(c *gin.Context) string { return state(c).id }

// validRequestID accepts a caller's id only when it is short and plain, so
// it cannot forge log lines or headers.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x21 || b > 0x7e {
			return false
		}
	}
	return true
}

// Middleware returns, in order, what every request goes through: request id
// (and, with auth off, the Warning header), access log and metrics, panic
// recovery.
func (h *Handlers) Middleware() []gin.HandlerFunc {
	return []gin.HandlerFunc{h.requestID, h.accessLog, h.recover}
}

func (h *Handlers) requestID(c *gin.Context) {
	var id string
	if v := c.Request.Header[headerReqID]; len(v) > 0 {
		id = v[0]
	}
	if !validRequestID(id) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(ctxRequest, &requestState{id: id})
	setHeader(c, headerReqID, id)
	if h.auth == nil {
		setHeader(c, headerWarning, authOffWarning)
	}
	c.Next()
}

// AccessLogMessage is the message of the access log's lines.
const AccessLogMessage = "request"

// accessLog writes one line per request and records the metrics. It logs
// the route pattern, never the URL: paths and queries carry patient data.
//
// It hands the record to the handler itself rather than through
// Logger.Log: that would capture the caller's PC (a stack walk on every
// request, for a source that is always this function) and box every
// attribute.
func (h *Handlers) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	end := time.Now()
	elapsed := end.Sub(start)
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	code := h.interaction[c.Request.Method+" "+route]
	if code == "" {
		code = "other"
	}
	h.metrics.observe(code, resourceTypeLabel(c.Param("type")), status, elapsed)
	st := state(c)
	level := slog.LevelInfo
	if st.cause != nil && status >= 500 {
		level = slog.LevelError
	}
	ctx := c.Request.Context()
	lh := h.log.Handler()
	if !lh.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(end, level, AccessLogMessage, 0)
	r.AddAttrs(
		slog.String("request_id", st.id),
		slog.String("method", requestMethod(c.Request)),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int("bytes", c.Writer.Size()),
	)
	if st.authorized && st.principal.Client != "" {
		r.AddAttrs(slog.String("client_id", st.principal.Client))
	}
	if st.cause != nil {
		r.AddAttrs(slog.String("error", fmt.Sprint(st.cause)))
	}
	_ = lh.Handle(ctx, r)
}

// recover turns a panic into a 500 OperationOutcome that leaks nothing;
// the stack goes to the log.
func (h *Handlers) recover(c *gin.Context) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p)
		}
		h.log.Error("panic", "request_id", requestID(c), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		if !c.Writer.Written() {
			h.internalError(c, fmt.Errorf("panic: %v", p))
		}
		c.Abort()
	}()
	c.Next()
}

// headKey marks a HEAD request that ServeHEAD routes as a GET.
type headKey struct{}

// ServeHEAD answers HEAD as GET (RFC 9110 9.1: every general-purpose
// server supports HEAD) on any handler: the request goes on as a GET, and
// net/http, which still answers the HEAD it read, sends the headers
// (Content-Length included) without the body. Registering HEAD routes in
// gin instead trips a gin v1.12.0 bug: with HandleMethodNotAllowed, more
// method trees overflow its skipped-nodes stack and the routing panics
// (gin-gonic/gin#4818).
func ServeHEAD(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			get := r.WithContext(context.WithValue(r.Context(), headKey{}, true))
			get.Method = http.MethodGet
			r = get
		}
		h.ServeHTTP(w, r)
	})
}

// maxLoggedMethod bounds the method an access line carries: net/http
// takes any token as a method, as long as the headers may be (64 KiB), and
// a client could otherwise make each of its lines that long.
const maxLoggedMethod = 32

// requestMethod is the method the client sent (HEAD routed as GET too),
// cut to maxLoggedMethod bytes (a token is ASCII).
func requestMethod(r *http.Request) string {
	if head, _ := r.Context().Value(headKey{}).(bool); head {
		return http.MethodHead
	}
	if len(r.Method) > maxLoggedMethod {
		return r.Method[:maxLoggedMethod] + "..."
	}
	return r.Method
}
