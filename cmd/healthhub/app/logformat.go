package app

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
)

// plainHandler writes plain records itself, byte for byte as the slog
// Text or JSON handler it stands in for would (with default options), and
// passes every other record to that handler. slog's general path (a
// pooled state, a quoting check per rune of every key and value, floats
// through json.Marshal in JSON) cost ~5% of a read's server CPU for the
// access log line; this one is a few appends.
//
// A record is plain when it has a time, and its message and every
// attribute's key and string value are plain strings (see plain), and its
// values are strings, integers or floats JSON writes without an exponent.
// An access line is plain unless it carries an error or an odd client id.
// A handler derived by WithAttrs or WithGroup is slog's own.
type plainHandler struct {
	slog.Handler
	w    io.Writer
	json bool
}

// newPlainHandler returns the Text (json false) or JSON handler of w with
// default options, with the plain fast path.
func newPlainHandler(w io.Writer, json bool) plainHandler {
	if json {
		return plainHandler{slog.NewJSONHandler(w, nil), w, true}
	}
	return plainHandler{slog.NewTextHandler(w, nil), w, false}
}

var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (h plainHandler) Handle(ctx context.Context, r slog.Record) error {
	bp := lineBuffers.Get().(*[]byte)
	line, ok := h.appendPlain((*bp)[:0], r)
	if cap(line) <= 16<<10 { // a rare long line is not kept
		*bp = line
		defer lineBuffers.Put(bp)
	}
	if !ok {
		return h.Handler.Handle(ctx, r)
	}
	_, err := h.w.Write(line)
	return err
}

// appendPlain appends r's line to b; false when r is not plain.
func (h plainHandler) appendPlain(b []byte, r slog.Record) ([]byte, bool) {
	if r.Time.IsZero() || !plain(r.Message) {
		return b, false
	}
	t := r.Time.Round(0) // as slog: no monotonic reading
	if h.json {
		if y := t.Year(); y < 0 || y >= 10000 {
			return b, false // slog writes an error for these
		}
		b = append(b, `{"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":"`...)
		b = append(b, r.Level.String()...)
		b = append(b, `","msg":"`...)
		b = append(b, r.Message...)
		b = append(b, '"')
	} else {
		b = append(b, "time="...)
		b = appendRFC3339Millis(b, t)
		b = append(b, " level="...)
		b = append(b, r.Level.String()...)
		b = append(b, " msg="...)
		b = append(b, r.Message...)
	}
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		b, ok = h.appendAttr(b, a)
		return ok
	})
	if !ok {
		return b, false
	}
	if h.json {
		b = append(b, '}')
	}
	return append(b, '\n'), true
}

func (h plainHandler) appendAttr(b []byte, a slog.Attr) ([]byte, bool) {
	if !plain(a.Key) {
		return b, false
	}
	if h.json {
		b = append(append(append(b, `,"`...), a.Key...), `":`...)
	} else {
		b = append(append(append(b, ' '), a.Key...), '=')
	}
	v := a.Value
	switch v.Kind() {
	case slog.KindString:
		s := v.String()
		if !plain(s) {
			return b, false
		}
		if h.json {
			return append(append(append(b, '"'), s...), '"'), true
		}
		return append(b, s...), true
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10), true
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10), true
	case slog.KindFloat64:
		f := v.Float64()
		if h.json {
			// encoding/json's form (slog marshals floats with it): 'f',
			// except for magnitudes it writes with an exponent.
			if abs := math.Abs(f); math.IsNaN(f) || math.IsInf(f, 0) || abs != 0 && (abs < 1e-6 || abs >= 1e21) {
				return b, false
			}
			return strconv.AppendFloat(b, f, 'f', -1, 64), true
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64), true
	}
	return b, false
}

// plain reports whether s is written as is in both formats: not empty,
// printable ASCII without space, quote, backslash or '=' (which slog's text
// handler quotes and its JSON handler escapes).
func plain(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

var plainByte = func() (t [256]bool) {
	for b := '!'; b <= '~'; b++ {
		t[b] = b != '"' && b != '\\' && b != '='
	}
	return t
}()

// appendRFC3339Millis is slog's text time format: RFC 3339 with exactly
// three digits of milliseconds (log/slog's function of the same name).
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	// RFC3339Nano trims trailing zeros: a tenth of a millisecond more
	// keeps four digits, the fourth dropped.
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}
