package search

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"healthhub/conformance"
)

// resultParam handles the result and control parameters (_sort, _count,
// _include ...). It reports false for a name that is not one of them.
func (p *queryParser) resultParam(key, name, mod string, vals []string) bool {
	switch name {
	case "_sort", "_count", "_total", "_summary", "_elements", "_contained", "_containedType",
		"_cursor", "_include", "_revinclude", "_format", "_pretty":
	case "_type":
		if p.typ != "" {
			return false // not a parameter of a type-level search
		}
	default:
		return false
	}
	nonEmpty := slices.DeleteFunc(slices.Clone(vals), func(v string) bool { return v == "" })
	all := strings.Join(nonEmpty, ",")
	iterate := false
	if strings.Contains(key, ":") {
		if (name != "_include" && name != "_revinclude") || (mod != "iterate" && mod != "recurse") {
			p.fail(key, all, queryInvalid("%s takes no modifier :%s", name, mod), key)
			return true
		}
		iterate = true
	}
	if len(nonEmpty) == 0 {
		return true
	}
	once := func() (string, bool) {
		if len(nonEmpty) > 1 {
			p.fail(key, all, queryInvalid("%s may be given once", name), key)
			return "", false
		}
		return nonEmpty[0], true
	}
	switch name {
	case "_type":
		// read first, by systemTypes
	case "_format", "_pretty":
		// The REST layer reads them; kept for the links.
		if p.passThrough == nil {
			p.passThrough = url.Values{}
		}
		p.passThrough[key] = append(p.passThrough[key], nonEmpty...)
	case "_count":
		if v, ok := once(); ok {
			p.count(key, v)
		}
	case "_total":
		if v, ok := once(); ok {
			switch t := Total(v); t {
			case TotalNone, TotalEstimate, TotalAccurate:
				p.q.Total = t
			default:
				p.fail(key, v, queryInvalid("_total is none, estimate or accurate"), key)
			}
		}
	case "_summary":
		if v, ok := once(); ok {
			switch s := Summary(v); s {
			case SummaryTrue, SummaryFalse, SummaryCount, SummaryData, SummaryText:
				p.q.Summary = s
			default:
				p.fail(key, v, queryInvalid("_summary is true, false, count, data or text"), key)
			}
		}
	case "_contained":
		if v, ok := once(); ok {
			switch v {
			case "false":
			case "true", "both":
				p.fail(key, v, queryNotSupported("searching contained resources is not supported; only _contained=false"), key)
			default:
				p.fail(key, v, queryInvalid("_contained is true, false or both"), key)
			}
		}
	case "_containedType":
		if v, ok := once(); ok {
			switch v {
			case "container":
			case "contained":
				p.fail(key, v, queryNotSupported("contained resources are never returned on their own; only _containedType=container"), key)
			default:
				p.fail(key, v, queryInvalid("_containedType is container or contained"), key)
			}
		}
	case "_cursor":
		if v, ok := once(); ok {
			p.q.Cursor = v
		}
	case "_sort":
		for _, v := range nonEmpty {
			p.sortKeys(key, v)
		}
	case "_elements":
		for _, v := range nonEmpty {
			p.elements(key, v)
		}
	case "_include", "_revinclude":
		for _, v := range nonEmpty {
			for _, spec := range strings.Split(v, ",") {
				if spec != "" {
					p.include(key, name == "_revinclude", iterate, spec)
				}
			}
		}
	}
	return true
}

// count reads _count: a non-negative integer, lowered to MaxCount.
func (p *queryParser) count(key, v string) {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			p.fail(key, v, queryInvalid("_count is a whole number, 0 to %d", MaxCount), key)
			return
		}
	}
	n := MaxCount
	if len(v) <= 9 {
		n, _ = strconv.Atoi(v)
	}
	p.q.Count = min(n, MaxCount)
}

// sortKeys reads one _sort value: parameter codes separated by commas,
// each with '-' for descending. Repeated _sort parameters add keys.
func (p *queryParser) sortKeys(key, v string) {
	for _, k := range strings.Split(v, ",") {
		if k == "" {
			continue
		}
		code, desc := strings.CutPrefix(k, "-")
		param, ok := p.lookup(p.typ, code)
		switch {
		case !ok:
			p.fail(key, v, queryNotSupported("cannot sort by %q: not a search parameter of %s", code, p.scope()), key)
			continue
		case param.Type == Composite:
			p.fail(key, v, queryNotSupported("cannot sort by composite parameter %s", code), key)
			continue
		case slices.ContainsFunc(p.q.Sort, func(s SortKey) bool { return s.Param.Code == code }):
			p.fail(key, v, queryInvalid("sort key %s is given twice", code), key)
			continue
		}
		p.q.Sort = append(p.q.Sort, SortKey{Param: param, Descending: desc})
	}
}

// elements reads one _elements value: element names separated by commas,
// optionally qualified by the searched type (Patient.name).
func (p *queryParser) elements(key, v string) {
	for _, e := range strings.Split(v, ",") {
		if p.typ != "" {
			e = strings.TrimPrefix(e, p.typ+".")
		}
		if e == "" {
			continue
		}
		if !isElementsName(e) {
			p.fail(key, v, queryInvalid("%q is not an element name", e), key)
			continue
		}
		if !slices.Contains(p.q.Elements, e) {
			p.q.Elements = append(p.q.Elements, e)
		}
	}
}

func isElementsName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || (c != '_' && (c < '0' || c > '9'))) {
			return false
		}
	}
	return s != ""
}

// include reads one _include or _revinclude directive:
// Source:parameter[:Target], Source:*[:Target], or a bare *.
func (p *queryParser) include(key string, rev, iterate bool, v string) {
	inc := Include{Iterate: iterate}
	if v != "*" {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
			p.fail(key, v, queryInvalid("%s is Source:parameter, Source:parameter:Target or Source:*", strings.SplitN(key, ":", 2)[0]), key)
			return
		}
		inc.Source = parts[0]
		if !conformance.IsResourceType(inc.Source) {
			p.fail(key, v, queryInvalid("%q is not a resource type", inc.Source), key)
			return
		}
		if len(parts) == 3 {
			inc.Target = parts[2]
			if !conformance.IsResourceType(inc.Target) {
				p.fail(key, v, queryInvalid("%q is not a resource type", inc.Target), key)
				return
			}
		}
		if !p.reg.Searchable(inc.Source) {
			p.fail(key, v, queryUnknown("%s resources are not indexed on this server", inc.Source), key+"="+v)
			return
		}
		if parts[1] != "*" {
			param, ok := p.reg.Lookup(inc.Source, parts[1])
			switch {
			case !ok:
				p.fail(key, v, queryUnknown("%s has no search parameter %q", inc.Source, parts[1]), key+"="+v)
				return
			case param.Type != Reference:
				p.fail(key, v, queryInvalid("%s:%s is a %s parameter, not a reference", inc.Source, parts[1], param.Type), key)
				return
			case inc.Target != "" && !slices.Contains(param.Targets, inc.Target):
				p.fail(key, v, queryInvalid("%s:%s cannot refer to a %s (it refers to %s)", inc.Source, parts[1], inc.Target, strings.Join(param.Targets, ", ")), key)
				return
			}
			inc.Param = param
		}
	} else if !rev {
		inc.Source = p.typ
	}
	if !iterate {
		if pr := p.checkInclude(rev, inc); pr != nil {
			p.fail(key, v, pr, key)
			return
		}
	}
	list := &p.q.Include
	if rev {
		list = &p.q.RevInclude
	}
	if !slices.Contains(*list, inc) {
		*list = append(*list, inc)
	}
}

// checkInclude checks that a directive without :iterate starts from the
// matches: an _include from the searched type, a _revinclude of references
// to it. (R4: without :iterate a directive applies to the matches only, so
// another source could never include anything.)
func (p *queryParser) checkInclude(rev bool, inc Include) *queryProblem {
	searched := []string{p.typ}
	if p.typ == "" {
		searched = p.q.Types
	}
	if !rev {
		if inc.Source != "" && !slices.Contains(searched, inc.Source) {
			return queryInvalid("without :iterate, _include starts from the matches, which are %s", p.scope())
		}
		return nil
	}
	if inc.Target != "" && !slices.Contains(searched, inc.Target) {
		return queryInvalid("without :iterate, _revinclude finds resources that refer to the matches, which are %s", p.scope())
	}
	if inc.Param != nil && !slices.ContainsFunc(searched, func(t string) bool { return slices.Contains(inc.Param.Targets, t) }) {
		return queryInvalid("%s:%s cannot refer to %s", inc.Source, inc.Param.Code, p.scope())
	}
	return nil
}

// systemTypes reads _type for a system-level search.
func (p *queryParser) systemTypes(vals []string) {
	nonEmpty := slices.DeleteFunc(slices.Clone(vals), func(v string) bool { return v == "" })
	if len(nonEmpty) == 0 {
		p.q.Types = slices.Clone(SearchTypes)
		return
	}
	if len(nonEmpty) > 1 {
		p.fail("_type", strings.Join(nonEmpty, ","), queryInvalid("_type may be given once, as a comma-separated list"), "_type")
		return
	}
	for _, t := range strings.Split(nonEmpty[0], ",") {
		switch {
		case t == "":
		case !conformance.IsResourceType(t):
			p.fail("_type", nonEmpty[0], queryInvalid("%q is not a resource type", t), "_type")
		case !p.reg.Searchable(t):
			p.fail("_type", nonEmpty[0], queryNotSupported("%s resources are not indexed on this server", t), "_type")
		case !slices.Contains(p.q.Types, t):
			p.q.Types = append(p.q.Types, t)
		}
	}
	if len(p.q.Types) == 0 {
		p.q.Types = slices.Clone(SearchTypes) // "_type=," names no type: as if absent
	}
}

// scope names what is searched, for messages.
func (p *queryParser) scope() string {
	if p.typ != "" {
		return p.typ
	}
	return strings.Join(p.q.Types, ", ")
}

// selfParams builds Query.SelfParams from what was understood.
func (p *queryParser) selfParams() url.Values {
	q := p.q
	v := url.Values{}
	for _, c := range q.Conditions {
		v.Add(c.Key(), c.Value())
	}
	for _, c := range append(slices.Clip(q.Chains), q.Has...) {
		v.Add(c.Key(), c.Condition.Value())
	}
	if q.Type == "" && !slices.Equal(q.Types, SearchTypes) {
		v.Set("_type", strings.Join(q.Types, ","))
	}
	if len(q.Sort) > 0 {
		keys := make([]string, len(q.Sort))
		for i, s := range q.Sort {
			keys[i] = s.Param.Code
			if s.Descending {
				keys[i] = "-" + keys[i]
			}
		}
		v.Set("_sort", strings.Join(keys, ","))
	}
	if q.Count != DefaultCount {
		v.Set("_count", strconv.Itoa(q.Count))
	}
	if q.Total != "" {
		v.Set("_total", string(q.Total))
	}
	if q.Summary != "" {
		v.Set("_summary", string(q.Summary))
	}
	if len(q.Elements) > 0 {
		v.Set("_elements", strings.Join(q.Elements, ","))
	}
	for _, inc := range q.Include {
		v.Add(inc.key("_include"), inc.String())
	}
	for _, inc := range q.RevInclude {
		v.Add(inc.key("_revinclude"), inc.String())
	}
	if q.Cursor != "" {
		v.Set("_cursor", q.Cursor)
	}
	for k, vals := range p.passThrough {
		v[k] = vals
	}
	return v
}

func (inc Include) key(name string) string {
	if inc.Iterate {
		return name + ":iterate"
	}
	return name
}

// String is the directive as written after _include= or _revinclude=.
func (inc Include) String() string {
	if inc.Source == "" {
		return "*"
	}
	s := inc.Source + ":*"
	if inc.Param != nil {
		s = inc.Source + ":" + inc.Param.Code
	}
	if inc.Target != "" {
		s += ":" + inc.Target
	}
	return s
}
