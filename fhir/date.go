package fhir

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DateRange is the interval [Start, End) that a FHIR date, dateTime or
// instant covers at the precision it was written with: "1980" covers the
// whole year, "2024-03-01T10:00:00Z" one second.
type DateRange struct {
	Start, End time.Time // UTC
}

// Contains reports whether t lies in the range.
func (d DateRange) Contains(t time.Time) bool { return !t.Before(d.Start) && t.Before(d.End) }

// ParseDateTime reads a FHIR date, dateTime or instant: YYYY, YYYY-MM,
// YYYY-MM-DD, or YYYY-MM-DDThh:mm[:ss[.fff...]] with Z or ±hh:mm. A value
// without a time zone is taken as UTC. The date must exist in the calendar.
func ParseDateTime(s string) (DateRange, error) {
	bad := func(why string) (DateRange, error) {
		return DateRange{}, fmt.Errorf("invalid date %q: %s", s, why)
	}
	num := func(from, n int) (int, bool) {
		if len(s) < from+n {
			return 0, false
		}
		v := 0
		for _, c := range s[from : from+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok || year == 0 {
		return bad("expected a four-digit year (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)")
	}
	if len(s) == 4 {
		st := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return DateRange{st, st.AddDate(1, 0, 0)}, nil
	}
	month, ok := num(5, 2)
	if s[4] != '-' || !ok || month < 1 || month > 12 {
		return bad("expected -MM after the year, 01 to 12")
	}
	if len(s) == 7 {
		st := time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return DateRange{st, st.AddDate(0, 1, 0)}, nil
	}
	day, ok := num(8, 2)
	if len(s) < 10 || s[7] != '-' || !ok || day < 1 || day > daysIn(year, month) {
		return bad("no such day")
	}
	if len(s) == 10 {
		st := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return DateRange{st, st.AddDate(0, 0, 1)}, nil
	}
	if s[10] != 'T' {
		return bad("expected T before the time")
	}
	hour, ok1 := num(11, 2)
	minute, ok2 := num(14, 2)
	if !ok1 || !ok2 || len(s) < 16 || s[13] != ':' || hour > 23 || minute > 59 {
		return bad("expected a time hh:mm, hh 00 to 23, mm 00 to 59")
	}
	i, sec, nanos, step := 16, 0, 0, time.Minute
	if i < len(s) && s[i] == ':' {
		v, ok := num(i+1, 2)
		if !ok || v > 60 {
			return bad("seconds must be 00 to 60")
		}
		if v == 60 {
			// A leap second (R4's regex allows it). Go's time has none: it
			// is read as the minute's last second, so that it stays on its
			// day (23:59:60 on 31 December is still that year's).
			v = 59
		}
		sec, i, step = v, i+3, time.Second
		if i < len(s) && s[i] == '.' {
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			digits := s[i+1 : j]
			if len(digits) == 0 {
				return bad("expected digits after the decimal point")
			}
			frac := digits
			if len(frac) > 9 {
				frac = frac[:9]
			}
			for len(frac) < 9 {
				frac += "0"
			}
			nanos, _ = strconv.Atoi(frac)
			step = time.Duration(1)
			for range 9 - min(len(digits), 9) {
				step *= 10
			}
			i = j
		}
	}
	loc, err := parseZone(s[i:])
	if err != nil {
		return bad(err.Error())
	}
	st := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, loc).UTC()
	return DateRange{st, st.Add(step)}, nil
}

func parseZone(z string) (*time.Location, error) {
	if z == "Z" {
		return time.UTC, nil
	}
	if len(z) != 6 || (z[0] != '+' && z[0] != '-') || z[3] != ':' {
		return nil, errors.New("a time needs a zone: Z or +hh:mm / -hh:mm")
	}
	h, err1 := strconv.Atoi(z[1:3])
	m, err2 := strconv.Atoi(z[4:6])
	if err1 != nil || err2 != nil || h > 14 || m > 59 || h == 14 && m > 0 || z[1] == '+' || z[1] == '-' || z[4] == '+' || z[4] == '-' {
		return nil, errors.New("zone offset must be +hh:mm, at most 14:00")
	}
	if loc, ok := zones.Load(z); ok {
		return loc.(*time.Location), nil
	}
	off := h*3600 + m*60
	if z[0] == '-' {
		off = -off
	}
	// z is a slice of the caller's string, often a whole resource body:
	// the cache keeps a copy of its six bytes, not the body.
	name := strings.Clone(z)
	loc, _ := zones.LoadOrStore(name, time.FixedZone(name, off))
	return loc.(*time.Location), nil
}

// zones holds the fixed zones made so far, by their +hh:mm, -hh:mm name
// (at most a few thousand valid ones): parsing a dateTime, as every
// indexed write does, otherwise allocated a Location. Locations do not
// change once made.
var zones sync.Map

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
