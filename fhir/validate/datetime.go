package validate

import (
	"cmp"
	"time"
)

// Precisions of a date, dateTime or instant value.
const (
	precYear = iota + 1
	precMonth
	precDay
	precTime // to the second or finer; FHIR requires seconds whenever a time is given
)

// moment is a parsed date, dateTime or instant, at the precision written.
type moment struct {
	year, month, day int
	prec             int
	at               time.Time // the instant, when prec is precTime
}

// parseMoment reads s as the FHIR primitive prim ("date", "dateTime" or
// "instant"). syntaxOK says whether it has the shape the schema's regular
// expression allows; real whether it is also a real calendar date (the
// regular expression accepts 2023-02-30). The walker reports only syntaxOK
// && !real: the schema already reports bad syntax.
func parseMoment(s, prim string) (m moment, syntaxOK, real bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	var ok bool
	if m.year, ok = num(0, 4); !ok || m.year == 0 {
		return m, false, false
	}
	m.prec = precYear
	i := 4
	if i < len(s) && s[i] == '-' {
		if m.month, ok = num(i+1, 2); !ok || m.month < 1 || m.month > 12 {
			return m, false, false
		}
		m.prec, i = precMonth, i+3
		if i < len(s) && s[i] == '-' {
			if m.day, ok = num(i+1, 2); !ok || m.day < 1 || m.day > 31 {
				return m, false, false
			}
			m.prec, i = precDay, i+3
		}
	}
	if i == len(s) {
		// An instant is always to the second; a date has no time.
		return m, prim != "instant", m.day <= daysIn(m.year, m.month)
	}
	if prim == "date" || m.prec != precDay || s[i] != 'T' {
		return m, false, false
	}
	hh, ok1 := num(i+1, 2)
	mm, ok2 := num(i+4, 2)
	ss, ok3 := num(i+7, 2)
	if !ok1 || !ok2 || !ok3 || s[i+3] != ':' || s[i+6] != ':' || hh > 23 || mm > 59 || ss > 60 {
		return m, false, false
	}
	i += 9
	nanos := 0
	if i < len(s) && s[i] == '.' {
		j := i + 1
		scale := 100000000
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			nanos += int(s[j]-'0') * scale
			scale /= 10
			j++
		}
		if j == i+1 {
			return m, false, false
		}
		i = j
	}
	var offset int
	switch {
	case i < len(s) && s[i] == 'Z' && i+1 == len(s):
	case i < len(s) && (s[i] == '+' || s[i] == '-') && i+6 == len(s) && s[i+3] == ':':
		oh, ok1 := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || om > 59 || oh > 14 || (oh == 14 && om != 0) {
			return m, false, false
		}
		offset = (oh*60 + om) * 60
		if s[i] == '-' {
			offset = -offset
		}
	default:
		// A time needs a zone in FHIR, and nothing may follow it.
		return m, false, false
	}
	m.prec = precTime
	// A leap second (ss = 60) becomes the first second of the next minute,
	// which is where it sorts.
	m.at = time.Date(m.year, time.Month(m.month), m.day, hh, mm, ss, nanos, time.FixedZone("", offset)).UTC()
	return m, true, m.day <= daysIn(m.year, m.month)
}

func daysIn(year, month int) int {
	if month == 0 {
		return 31
	}
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// notAfter reports whether start <= end holds, the way FHIRPath compares
// date/times (and so the way the reference validator judges per-1): two
// values with a time compare as instants; otherwise they compare field by
// field at the coarser precision, and if they are equal there but the
// precisions differ, the answer is unknown, which fails the invariant.
// A time's own calendar fields are used against a date (no zone shift):
// "2023-06-21T23:00:00-05:00" is on the 21st where it was written.
func notAfter(start, end moment) bool {
	if start.prec == precTime && end.prec == precTime {
		return !start.at.After(end.at)
	}
	p := min(start.prec, end.prec)
	c := cmp.Compare(start.year, end.year)
	if c == 0 && p >= precMonth {
		c = cmp.Compare(start.month, end.month)
	}
	if c == 0 && p >= precDay {
		c = cmp.Compare(start.day, end.day)
	}
	switch {
	case c < 0:
		return true
	case c > 0:
		return false
	default:
		return start.prec == end.prec
	}
}

// period checks per-1 on a Period at w.path: start <= end when both have a
// value (an end with extensions only, or a bad date the schema reported,
// cannot be compared).
func (w *walker) period(obj map[string]any) {
	s, ok1 := obj["start"].(string)
	e, ok2 := obj["end"].(string)
	if !ok1 || !ok2 {
		return
	}
	start, syn1, real1 := parseMoment(s, "dateTime")
	end, syn2, real2 := parseMoment(e, "dateTime")
	if !syn1 || !syn2 || !real1 || !real2 {
		return
	}
	if !notAfter(start, end) {
		if start.prec != end.prec {
			w.add("invariant", "", "start %q is not before end %q, or cannot be compared with it at their precisions (per-1)", s, e)
		} else {
			w.add("invariant", "", "start %q is after end %q (per-1)", s, e)
		}
	}
}
