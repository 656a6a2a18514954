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

// accessLog writes one line per request and records the metrics. It logs
// the route pattern, never the URL: paths and queries carry patient data.
func (h *Handlers) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	elapsed := time.Since(start)
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
	attrs := []any{
		"request_id", requestID(c),
		"method", c.Request.Method,
		"route", route,
		"status", status,
		"duration_ms", float64(elapsed.Microseconds()) / 1000,
		"bytes", c.Writer.Size(),
	}
	if client := c.GetString(ctxClient); client != "" {
		attrs = append(attrs, "client_id", client)
	}
	level := slog.LevelInfo
	if cause, ok := c.Get(ctxCause); ok {
		attrs = append(attrs, "error", fmt.Sprint(cause))
		if status >= 500 {
			level = slog.LevelError
		}
	}
	h.log.Log(c.Request.Context(), level, "request", attrs...)
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
