package search

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The FHIRPath subset that the official R4 search parameters of SearchTypes
// use: paths with automatic flattening over arrays, a root that names the
// resource type (or Resource / DomainResource), choice elements (`value`
// finds valueQuantity, valueString ...), `as` / `is` as operators and
// functions, ofType(), where(), exists(), empty(), not(), first(),
// resolve(), `=` / `!=`, `and` / `or` / `xor`, union `|`, string, number and
// boolean literals, `{}` and $this. Anything else (arithmetic, comparisons,
// indexers, other functions) is a compile error, never an empty result.
//
// Expressions are compiled once to a small tree and evaluated over a
// Document without a FHIR model. What the model would know is taken from the
// JSON: a choice element's type from its name's suffix, a resource's type
// from resourceType, a referenced resource's type from the reference
// (resolve() does not fetch anything; `resolve() is Patient` looks at
// `Patient/x`, `.../Patient/x`, Reference.type or a contained resource).
// Evaluation never fails: where FHIRPath would raise an error (a boolean
// operator over several items, `is` on a collection) the result is empty.

// Item is one element of a FHIRPath result collection.
type Item struct {
	n   *node
	typ string // FHIR type when known: a choice suffix, resolve(), a function result
}

// Type is the item's FHIR type name when known (from a choice element's
// suffix, resourceType, or a JSON primitive: boolean, string, integer,
// decimal), else "".
func (it Item) Type() string {
	if it.typ != "" {
		return it.typ
	}
	if it.n == nil {
		return ""
	}
	switch it.n.kind {
	case kindObject:
		return it.n.getString("resourceType")
	case kindBool:
		return "boolean"
	case kindString:
		return "string"
	case kindNumber:
		if strings.ContainsAny(it.n.str, ".eE") {
			return "decimal"
		}
		return "integer"
	}
	return ""
}

// JSON is the item as compact JSON ("null" for the type-only result of
// resolve()).
func (it Item) JSON() string {
	if it.n == nil {
		return "null"
	}
	return string(it.n.appendJSON(nil))
}

// String is a primitive item's value ("true", a string, a number's
// literal), or "" for an object.
func (it Item) String() string {
	if it.n == nil || it.n.kind == kindObject || it.n.kind == kindArray {
		return ""
	}
	return it.n.str
}

// Path is a compiled FHIRPath expression.
type Path struct {
	src  string
	root expr
}

// CompilePath compiles a FHIRPath expression of the supported subset.
func CompilePath(src string) (*Path, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	e, err := p.expression(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t, "unexpected %q", t.text)
	}
	return &Path{src: src, root: e}, nil
}

// String is the expression's source.
func (p *Path) String() string { return p.src }

// Evaluate evaluates the expression with the resource as its context.
func (p *Path) Evaluate(d *Document) []Item {
	return p.EvaluateAt(d, []Item{d.Root()})
}

// EvaluateAt evaluates the expression with focus as its context, as a
// composite parameter's components are evaluated relative to the
// composite's expression. %resource is d.
func (p *Path) EvaluateAt(d *Document, focus []Item) []Item {
	c := evalCtx{root: &d.root, rootType: d.ResourceType()}
	return p.root.eval(&c, focus)
}

// eval evaluates with a caller's context, sharing its arena.
func (p *Path) eval(c *evalCtx, focus []Item) []Item { return p.root.eval(c, focus) }

// ---- lexer

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokIdent
	tokQuotedIdent // `name`
	tokString
	tokNumber
	tokOp
	tokVar // $this, %resource
)

type token struct {
	kind tokKind
	text string // identifier, unescaped string, number, operator, variable
	pos  int
}

func lex(src string) ([]token, error) {
	var toks []token
	bad := func(pos int, why string) error {
		return fmt.Errorf("fhirpath %q: at %d: %s", src, pos, why)
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '/' && i+1 < len(src) && (src[i+1] == '/' || src[i+1] == '*'):
			return nil, bad(i, "comments are not supported")
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tokIdent, src[i:j], i})
			i = j
		case c == '`':
			j := strings.IndexByte(src[i+1:], '`')
			if j < 0 {
				return nil, bad(i, "unterminated `identifier`")
			}
			toks = append(toks, token{tokQuotedIdent, src[i+1 : i+1+j], i})
			i += j + 2
		case c == '$' || c == '%':
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tokVar, src[i:j], i})
			i = j
		case c == '\'':
			s, n, err := lexString(src[i:])
			if err != nil {
				return nil, bad(i, err.Error())
			}
			toks = append(toks, token{tokString, s, i})
			i += n
		case c >= '0' && c <= '9':
			j := i
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			if j+1 < len(src) && src[j] == '.' && src[j+1] >= '0' && src[j+1] <= '9' {
				j++
				for j < len(src) && src[j] >= '0' && src[j] <= '9' {
					j++
				}
			}
			toks = append(toks, token{tokNumber, src[i:j], i})
			i = j
		default:
			op := ""
			for _, o := range []string{"!=", "!~", "<=", ">=", ".", "(", ")", ",", "|", "=", "~", "<", ">", "+", "-", "*", "/", "&", "[", "]", "{", "}"} {
				if strings.HasPrefix(src[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, bad(i, fmt.Sprintf("unexpected character %q", r))
			}
			toks = append(toks, token{tokOp, op, i})
			i += len(op)
		}
	}
	return append(toks, token{kind: tokEOF, pos: len(src)}), nil
}

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentPart(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') }

// lexString reads a 'quoted' string at the start of s and returns its
// value and length in s.
func lexString(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			i++
			switch e := s[i]; e {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(e)
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := hex4(s, i+1)
				if !ok {
					return "", 0, fmt.Errorf("invalid \\u escape")
				}
				b.WriteRune(r)
				i += 4
			default:
				return "", 0, fmt.Errorf("invalid escape \\%c", e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

// ---- parser

type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i = min(p.i+1, len(p.toks)-1); return t }

func (p *parser) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("fhirpath %q: at %d: %s", p.src, t.pos, fmt.Sprintf(format, args...))
}

func (p *parser) isOp(t token, ops ...string) bool {
	if t.kind != tokOp {
		return false
	}
	for _, o := range ops {
		if t.text == o {
			return true
		}
	}
	return false
}

func (p *parser) isWord(t token, words ...string) bool {
	if t.kind != tokIdent {
		return false
	}
	for _, w := range words {
		if t.text == w {
			return true
		}
	}
	return false
}

func (p *parser) expect(op string) error {
	if t := p.next(); !p.isOp(t, op) {
		if t.kind == tokEOF {
			return p.errorf(t, "expected %q, found the end", op)
		}
		return p.errorf(t, "expected %q, found %q", op, t.text)
	}
	return nil
}

// Precedence levels, loosest first, as in the FHIRPath grammar.
const (
	precImplies = iota
	precOr
	precAnd
	precMembership
	precEquality
	precInequality
	precUnion
	precType
	precAdditive
	precMultiplicative
	precUnary
)

// expression parses operators binding at least as tightly as level.
func (p *parser) expression(level int) (expr, error) {
	if level > precMultiplicative {
		return p.unary()
	}
	left, err := p.expression(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case level == precType && p.isWord(t, "is", "as"):
			p.next()
			typ, err := p.typeSpecifier()
			if err != nil {
				return nil, err
			}
			left = newTypeExpr(left, t.text, typ)
			continue
		case level == precUnion && p.isOp(t, "|"):
			p.next()
			right, err := p.expression(level + 1)
			if err != nil {
				return nil, err
			}
			left = &unionExpr{a: left, b: right}
			continue
		case level == precEquality && p.isOp(t, "=", "!="):
			p.next()
			right, err := p.expression(level + 1)
			if err != nil {
				return nil, err
			}
			left = &eqExpr{a: left, b: right, neg: t.text == "!="}
			continue
		case level == precAnd && p.isWord(t, "and"):
			p.next()
			right, err := p.expression(level + 1)
			if err != nil {
				return nil, err
			}
			left = &logicExpr{a: left, b: right, op: "and"}
			continue
		case level == precOr && p.isWord(t, "or", "xor"):
			p.next()
			right, err := p.expression(level + 1)
			if err != nil {
				return nil, err
			}
			left = &logicExpr{a: left, b: right, op: t.text}
			continue
		}
		// Operators of the grammar that the subset leaves out.
		unsupported := (level == precImplies && p.isWord(t, "implies")) ||
			(level == precMembership && p.isWord(t, "in", "contains")) ||
			(level == precEquality && p.isOp(t, "~", "!~")) ||
			(level == precInequality && p.isOp(t, "<", ">", "<=", ">=")) ||
			(level == precAdditive && p.isOp(t, "+", "-", "&")) ||
			(level == precMultiplicative && (p.isOp(t, "*", "/") || p.isWord(t, "div", "mod")))
		if unsupported {
			return nil, p.errorf(t, "operator %q is not supported", t.text)
		}
		return left, nil
	}
}

func (p *parser) unary() (expr, error) {
	if t := p.peek(); p.isOp(t, "+", "-") {
		return nil, p.errorf(t, "unary %q is not supported", t.text)
	}
	return p.postfix()
}

// postfix parses a term followed by .invocations.
func (p *parser) postfix() (expr, error) {
	first, err := p.term()
	if err != nil {
		return nil, err
	}
	steps := []expr{first}
	for {
		t := p.peek()
		if p.isOp(t, "[") {
			return nil, p.errorf(t, "indexers are not supported")
		}
		if !p.isOp(t, ".") {
			break
		}
		p.next()
		step, err := p.invocation(false)
		if err != nil {
			return nil, err
		}
		steps = append(steps, step)
	}
	if len(steps) == 1 {
		return first, nil
	}
	return &chainExpr{steps: steps}, nil
}

func (p *parser) term() (expr, error) {
	t := p.peek()
	switch {
	case p.isOp(t, "("):
		p.next()
		e, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return e, nil
	case p.isOp(t, "{"):
		p.next()
		if err := p.expect("}"); err != nil {
			return nil, err
		}
		return &literalExpr{}, nil
	case t.kind == tokString:
		p.next()
		return &literalExpr{items: []Item{{n: &node{kind: kindString, str: t.text}, typ: "string"}}}, nil
	case t.kind == tokNumber:
		p.next()
		typ := "integer"
		if strings.Contains(t.text, ".") {
			typ = "decimal"
		}
		return &literalExpr{items: []Item{{n: &node{kind: kindNumber, str: t.text}, typ: typ}}}, nil
	case p.isWord(t, "true", "false"):
		p.next()
		return &literalExpr{items: []Item{boolItem(t.text == "true")}}, nil
	case t.kind == tokVar:
		p.next()
		switch t.text {
		case "$this":
			return thisExpr{}, nil
		case "%resource", "%rootResource":
			return rootExpr{}, nil
		}
		return nil, p.errorf(t, "variable %s is not supported", t.text)
	case t.kind == tokIdent || t.kind == tokQuotedIdent:
		return p.invocation(true)
	case t.kind == tokEOF:
		return nil, p.errorf(t, "unexpected end of expression")
	}
	return nil, p.errorf(t, "unexpected %q", t.text)
}

// invocation parses a member name or a function call. At the start of a
// path (atTerm) a name with a capital letter is a type: the context's
// resource type, Resource or DomainResource.
func (p *parser) invocation(atTerm bool) (expr, error) {
	t := p.next()
	if t.kind != tokIdent && t.kind != tokQuotedIdent {
		return nil, p.errorf(t, "expected a name, found %q", t.text)
	}
	if t.kind == tokIdent && p.isOp(p.peek(), "(") {
		p.next()
		return p.function(t)
	}
	if atTerm && t.kind == tokIdent && t.text[0] >= 'A' && t.text[0] <= 'Z' {
		return &typeRootExpr{name: t.text}, nil
	}
	return &memberExpr{name: t.text}, nil
}

// function parses the arguments of a supported function (after "name(").
func (p *parser) function(name token) (expr, error) {
	noArgs := func(e expr) (expr, error) {
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return e, nil
	}
	switch name.text {
	case "where", "exists":
		if name.text == "exists" && p.isOp(p.peek(), ")") {
			p.next()
			return &existsExpr{}, nil
		}
		crit, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		if name.text == "where" {
			return &whereExpr{crit: crit}, nil
		}
		return &existsExpr{crit: crit}, nil
	case "empty":
		return noArgs(emptyExpr{})
	case "not":
		return noArgs(notExpr{})
	case "first":
		return noArgs(firstExpr{})
	case "resolve":
		return noArgs(resolveExpr{})
	case "as", "is", "ofType":
		typ, err := p.typeSpecifier()
		if err != nil {
			return nil, err
		}
		op := name.text
		if op == "ofType" {
			op = "as"
		}
		return noArgs(newTypeExpr(nil, op, typ))
	}
	return nil, p.errorf(name, "function %s() is not supported", name.text)
}

// typeSpecifier parses Name or Namespace.Name and drops the namespace
// (FHIR. or System.).
func (p *parser) typeSpecifier() (string, error) {
	t := p.next()
	if t.kind != tokIdent && t.kind != tokQuotedIdent {
		return "", p.errorf(t, "expected a type name, found %q", t.text)
	}
	name := t.text
	if (name == "FHIR" || name == "System") && p.isOp(p.peek(), ".") {
		p.next()
		t = p.next()
		if t.kind != tokIdent && t.kind != tokQuotedIdent {
			return "", p.errorf(t, "expected a type name after %s., found %q", name, t.text)
		}
		name = t.text
	}
	return name, nil
}
