package fhir_test

import (
	"testing"
	"time"

	"healthhub/fhir"
)

func TestParseDateTime(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		in         string
		start, end string
	}{
		{"1980", "1980-01-01T00:00:00Z", "1981-01-01T00:00:00Z"},
		{"1980-02", "1980-02-01T00:00:00Z", "1980-03-01T00:00:00Z"},
		{"1980-02-29", "1980-02-29T00:00:00Z", "1980-03-01T00:00:00Z"},
		{"2024-03-01T10:00Z", "2024-03-01T10:00:00Z", "2024-03-01T10:01:00Z"},
		{"2024-03-01T10:00:05Z", "2024-03-01T10:00:05Z", "2024-03-01T10:00:06Z"},
		{"2024-03-01T10:00:05.25+02:00", "2024-03-01T08:00:05.25Z", "2024-03-01T08:00:05.26Z"},
		{"2024-12-31T23:59:59.123456789-14:00", "2025-01-01T13:59:59.123456789Z", "2025-01-01T13:59:59.12345679Z"},
		// A leap second (R4's regex allows :60) is read as the minute's last.
		{"2016-12-31T23:59:60Z", "2016-12-31T23:59:59Z", "2017-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		got, err := fhir.ParseDateTime(tt.in)
		if err != nil {
			t.Errorf("ParseDateTime(%q): %v", tt.in, err)
			continue
		}
		if !got.Start.Equal(utc(tt.start)) || !got.End.Equal(utc(tt.end)) {
			t.Errorf("ParseDateTime(%q): got [%s, %s), want [%s, %s)", tt.in, got.Start, got.End, tt.start, tt.end)
		}
	}
}

func TestParseDateTimeRejects(t *testing.T) {
	for _, in := range []string{
		"", "80", "0000", "1980-13", "1980-00", "1981-02-29", "2023-02-30", "2023-04-31",
		"1980-1-01", "1980-01-01T", "1980-01-01T10", "1980-01-01T24:00Z", "1980-01-01T10:60Z", "1980-01-01T10:00:61Z",
		"1980-01-01T10:00", "1980-01-01T10:00:00", "1980-01-01T10:00:61Z", "1980-01-01T10:00:00.Z",
		"1980-01-01T10:00:00+15:00", "1980-01-01T10:00:00+14:01", "1980-01-01T10:00:00-14:59", "1980-01-01T10:00:00+0100", "1980-01-01 10:00:00Z", "abcd", "1980-01-01Z",
	} {
		if d, err := fhir.ParseDateTime(in); err == nil {
			t.Errorf("ParseDateTime(%q): got [%s, %s), want an error", in, d.Start, d.End)
		}
	}
}

// FuzzParseDateTime: no panics; an accepted value has a non-empty range,
// and a value it writes back in RFC 3339 parses to the same start.
func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{"1980", "1980-02", "2024-02-29", "2024-03-01T10:00:05.25+02:00", "2024-03-01T10:00Z", "9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := fhir.ParseDateTime(s)
		if err != nil {
			return
		}
		if !d.End.After(d.Start) {
			t.Fatalf("ParseDateTime(%q): empty range [%s, %s)", s, d.Start, d.End)
		}
		if d.Start.Year() < 1 || d.Start.Year() > 9999 {
			return // a zone offset can move 0001-01-01 into year 0, which FHIR cannot write
		}
		back, err := fhir.ParseDateTime(d.Start.Format(time.RFC3339Nano))
		if err != nil || !back.Start.Equal(d.Start) {
			t.Fatalf("ParseDateTime(%q) start %s does not read back: %v", s, d.Start, err)
		}
	})
}
