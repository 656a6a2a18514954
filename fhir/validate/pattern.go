package validate

import (
	"fmt"
	"regexp"
)

// pattern is one "pattern" of the R4 schema. The schema library matches with
// Go's regexp; so does this, except for the patterns of the commonest
// primitives, which have hand-written equivalents: a Patient holds dozens
// of strings, codes and uris, and the regexp costs ~0.5 µs each.
// TestPatternEquivalence holds each fast matcher to its regexp.
type pattern struct {
	re   *regexp.Regexp
	fast func(string) bool
}

func newPattern(src string) (*pattern, error) {
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("validate: R4 schema pattern %q: %w", src, err)
	}
	return &pattern{re: re, fast: fastMatchers[src]}, nil
}

func (p *pattern) match(s string) bool {
	if p.fast != nil {
		return p.fast(s)
	}
	return p.re.MatchString(s)
}

// The patterns, as the schema spells them, with their fast equivalents.
// RE2's \s is [\t\n\f\r ] and \S its complement.
const (
	patString   = `^[ \r\n\t\S]+$`
	patCode     = `^[^\s]+(\s[^\s]+)*$`
	patURI      = `^\S*$`
	patID       = `^[A-Za-z0-9\-\.]{1,64}$`
	patDate     = `^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`
	patInstant  = `^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`
	patDateTime = `^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`
)

var fastMatchers = map[string]func(string) bool{
	patString:   matchString,
	patCode:     matchCode,
	patURI:      matchURI,
	patID:       matchID,
	patDate:     func(s string) bool { _, ok, _ := parseMoment(s, "date"); return ok },
	patDateTime: func(s string) bool { _, ok, _ := parseMoment(s, "dateTime"); return ok },
	patInstant:  func(s string) bool { _, ok, _ := parseMoment(s, "instant"); return ok },
}

func isRE2Space(c byte) bool {
	return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

// matchString: one or more characters, none a form feed (the class
// [ \r\n\t\S] is everything but \f). Strings here are valid UTF-8.
func matchString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == '\f' {
			return false
		}
	}
	return true
}

// matchCode: tokens without white space, separated by single white space.
func matchCode(s string) bool {
	if s == "" || isRE2Space(s[0]) || isRE2Space(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if isRE2Space(s[i]) && isRE2Space(s[i-1]) {
			return false
		}
	}
	return true
}

// matchURI: no white space at all (empty is allowed by the pattern).
func matchURI(s string) bool {
	for i := 0; i < len(s); i++ {
		if isRE2Space(s[i]) {
			return false
		}
	}
	return true
}

func matchID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
