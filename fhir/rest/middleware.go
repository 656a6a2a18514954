package rest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"
)

const (
	ctxRequestID = "healthhub.request_id"
	ctxCause     = "healthhub.cause"
	ctxClient    = "healthhub.client_id"
	headerReqID  = "X-Request-Id"
)

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

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
	id := c.GetHeader(headerReqID)
	if !validRequestID(id) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(ctxRequestID, id)
	c.Header(headerReqID, id)
	if h.auth == nil {
		c.Header("Warning", authOffWarning)
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
	level := slog.LevelInfo
	cause, failed := c.Get(ctxCause)
	if failed && status >= 500 {
		level = slog.LevelError
	}
	ctx := c.Request.Context()
	lh := h.log.Handler()
	if !lh.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(end, level, AccessLogMessage, 0)
	r.AddAttrs(
		slog.String("request_id", requestID(c)),
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int("bytes", c.Writer.Size()),
	)
	if client := c.GetString(ctxClient); client != "" {
		r.AddAttrs(slog.String("client_id", client))
	}
	if failed {
		r.AddAttrs(slog.String("error", fmt.Sprint(cause)))
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
