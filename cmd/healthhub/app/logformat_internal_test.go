package app

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// accessRecord is a record like rest's access log line, with attrs
// replacing or adding to its usual ones.
func accessRecord(t time.Time, level slog.Level, msg string, attrs ...slog.Attr) slog.Record {
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(
		slog.String("request_id", "0123456789abcdef0123456789abcdef"),
		slog.String("method", "GET"),
		slog.String("route", "/fhir/:type/:id"),
		slog.Int("status", 200),
	)
	r.AddAttrs(attrs...)
	return r
}

// The plain handler writes every record exactly as slog's handler does,
// whether it formats it itself (plain) or hands it over.
func TestPlainHandlerMatchesSlog(t *testing.T) {
	now := time.Now() // with a monotonic reading, as records have
	berlin := time.FixedZone("CET", 3600)
	// plain: formatted by the plain handler itself in both formats;
	// textOnly: in text only (JSON writes an exponent, or an error for the
	// year).
	const textOnly = 2
	tests := []struct {
		name  string
		r     slog.Record
		plain int // 0 false, 1 true, textOnly
	}{
		{"access line", accessRecord(now, slog.LevelInfo, "request", slog.Float64("duration_ms", 0.123), slog.Int("bytes", 3572), slog.String("client_id", "harness")), 1},
		{"zero duration", accessRecord(now, slog.LevelInfo, "request", slog.Float64("duration_ms", 0)), 1},
		{"one µs", accessRecord(now, slog.LevelInfo, "request", slog.Float64("duration_ms", 0.001)), 1},
		{"long request", accessRecord(now, slog.LevelInfo, "request", slog.Float64("duration_ms", 123456.789)), 1},
		{"round duration", accessRecord(now, slog.LevelInfo, "request", slog.Float64("duration_ms", 100000)), 1},
		{"huge float", accessRecord(now, slog.LevelInfo, "request", slog.Float64("duration_ms", 1e21)), textOnly},
		{"tiny float", accessRecord(now, slog.LevelInfo, "request", slog.Float64("x", 1e-7)), textOnly},
		{"negative and unsigned ints", accessRecord(now, slog.LevelInfo, "request", slog.Int("n", -42), slog.Uint64("u", 1<<63)), 1},
		{"a 500 with its error", accessRecord(now, slog.LevelError, "request", slog.String("error", "disk full\nsecond line")), 0},
		{"error without spaces", accessRecord(now, slog.LevelError, "request", slog.String("error", "boom")), 1},
		{"warn level", accessRecord(now, slog.LevelWarn, "request"), 1},
		{"level between", accessRecord(now, slog.LevelInfo+2, "request"), 1},
		{"request id with a quote", accessRecord(now, slog.LevelInfo, "request", slog.String("request_id", `a"b`)), 0},
		{"request id with =", accessRecord(now, slog.LevelInfo, "request", slog.String("request_id", "a=b")), 0},
		{"request id with a backslash", accessRecord(now, slog.LevelInfo, "request", slog.String("request_id", `a\b`)), 0},
		{"client id with a space", accessRecord(now, slog.LevelInfo, "request", slog.String("client_id", "my client")), 0},
		{"client id not ASCII", accessRecord(now, slog.LevelInfo, "request", slog.String("client_id", "klinik-müller")), 0},
		{"empty value", accessRecord(now, slog.LevelInfo, "request", slog.String("client_id", "")), 0},
		{"HTML characters", accessRecord(now, slog.LevelInfo, "request", slog.String("x", "<a>&amp;")), 1},
		{"message with spaces", accessRecord(now, slog.LevelInfo, "healthhub serving"), 0},
		{"bool", accessRecord(now, slog.LevelInfo, "request", slog.Bool("b", true)), 0},
		{"group", accessRecord(now, slog.LevelInfo, "request", slog.Group("g", slog.Int("a", 1))), 0},
		{"duration value", accessRecord(now, slog.LevelInfo, "request", slog.Duration("d", time.Second)), 0},
		{"no time", accessRecord(time.Time{}, slog.LevelInfo, "request"), 0},
		{"whole second", accessRecord(time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC), slog.LevelInfo, "request"), 1},
		{"ms ending in zeros", accessRecord(time.Date(2026, 11, 24, 20, 0, 0, 100_000_000, time.UTC), slog.LevelInfo, "request"), 1},
		{"nanoseconds", accessRecord(time.Date(2026, 11, 24, 20, 0, 0, 123_456_789, time.UTC), slog.LevelInfo, "request"), 1},
		{"other zone", accessRecord(time.Date(2026, 11, 24, 20, 0, 0, 999_999_999, berlin), slog.LevelInfo, "request"), 1},
		{"year 10000", accessRecord(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "request"), textOnly},
	}
	for _, json := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(map[bool]string{false: "text", true: "json"}[json]+"/"+tt.name, func(t *testing.T) {
				got, want := formatBoth(t, json, tt.r)
				if got != want {
					t.Errorf("plain handler:\n%s\nslog:\n%s", got, want)
				}
				h := newPlainHandler(&bytes.Buffer{}, json)
				_, plain := h.appendPlain(nil, tt.r)
				wantPlain := tt.plain == 1 || tt.plain == textOnly && !json
				if plain != wantPlain {
					t.Errorf("formatted itself: %v, want %v", plain, wantPlain)
				}
			})
		}
	}
}

// Random strings in every position a value can take.
func TestPlainHandlerMatchesSlogRandomly(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("aZ09-_./:*\"\\= \t\n\x00\x7fé€<>&")
	randString := func() string {
		var sb strings.Builder
		for range rnd.IntN(6) {
			sb.WriteRune(alphabet[rnd.IntN(len(alphabet))])
		}
		return sb.String()
	}
	for i := range 2000 {
		r := slog.NewRecord(time.Now(), slog.LevelInfo, randString(), 0)
		r.AddAttrs(slog.String(randString(), randString()), slog.Float64("f", rnd.NormFloat64()*1e3), slog.String("s", randString()))
		for _, json := range []bool{false, true} {
			if got, want := formatBoth(t, json, r); got != want {
				t.Fatalf("record %d: plain handler:\n%s\nslog:\n%s", i, got, want)
			}
		}
	}
}

// formatBoth writes r through a plainHandler and through slog's handler.
func formatBoth(t *testing.T, json bool, r slog.Record) (got, want string) {
	t.Helper()
	var a, b bytes.Buffer
	var sh slog.Handler = slog.NewTextHandler(&b, nil)
	if json {
		sh = slog.NewJSONHandler(&b, nil)
	}
	if err := newPlainHandler(&a, json).Handle(context.Background(), r.Clone()); err != nil {
		t.Fatal(err)
	}
	if err := sh.Handle(context.Background(), r.Clone()); err != nil {
		t.Fatal(err)
	}
	return a.String(), b.String()
}

// A plain line costs a few appends; slog's path is several times more.
func BenchmarkPlainHandler(b *testing.B) {
	r := accessRecord(time.Now(), slog.LevelInfo, "request", slog.Float64("duration_ms", 0.123), slog.Int("bytes", 3572), slog.String("client_id", "harness"))
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{
		{"plain/text", newPlainHandler(discard{}, false)},
		{"plain/json", newPlainHandler(discard{}, true)},
		{"slog/text", slog.NewTextHandler(discard{}, nil)},
		{"slog/json", slog.NewJSONHandler(discard{}, nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.h.Handle(context.Background(), r)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
