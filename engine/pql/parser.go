package pql

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits on what a query may hold, so that no input can exhaust the parser.
const (
	maxQueryLen = 64 << 10
	// maxWindow bounds how far from the anchor a window may reach.
	maxWindow = 100 * 366 * 24 * time.Hour
	// maxDepth bounds the nesting of parentheses and NOT.
	maxDepth = 64
	// maxList bounds the values of an IN list.
	maxList = 1000
	// maxTopK bounds RANK TOP k.
	maxTopK = 1000
)

// Parse parses a predictive query. Errors are *SyntaxError.
func Parse(text string) (*Query, error) {
	if len(text) > maxQueryLen {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: fmt.Sprintf("query is %d bytes; at most %d are allowed", len(text), maxQueryLen)}
	}
	p := &parser{lex: newLexer(text)}
	p.advance()
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	q.Text = text
	return q, nil
}

// clause says which part of the query an expression is in; it decides
// which windows and names are allowed.
type clause int

const (
	inTarget   clause = iota // future windows; the entity table's columns
	inWhere                  // past windows; the entity table's columns
	inAssuming               // future windows; the entity table's columns
	inAggWhere               // no aggregation; the aggregated table's columns
)

func (c clause) String() string {
	switch c {
	case inTarget:
		return "target"
	case inWhere:
		return "WHERE"
	case inAssuming:
		return "ASSUMING"
	}
	return "aggregation's WHERE"
}

type parser struct {
	lex   *lexer
	tok   token
	depth int
}

func (p *parser) advance() { p.tok = p.lex.next() }

func errAt(at Pos, format string, args ...any) error {
	return &SyntaxError{Line: at.Line, Col: at.Col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) errf(at token, format string, args ...any) error {
	if at.kind == tokIllegal {
		return errAt(at.pos, "%s", at.msg)
	}
	return errAt(at.pos, format, args...)
}

func (p *parser) isKeyword(kw string) bool {
	return p.tok.kind == tokIdent && strings.EqualFold(p.tok.text, kw)
}

func (p *parser) expectKeyword(kw, context string) error {
	if !p.isKeyword(kw) {
		return p.errf(p.tok, "expected %s%s, found %s", kw, context, p.tok.describe())
	}
	p.advance()
	return nil
}

func (p *parser) expect(kind tokenKind, what, context string) (token, error) {
	t := p.tok
	if t.kind != kind {
		return t, p.errf(t, "expected %s%s, found %s", what, context, t.describe())
	}
	p.advance()
	return t, nil
}

// enter counts one level of nesting; leave undoes it.
func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errf(p.tok, "conditions nest deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// query := PREDICT target FOR EACH name "." name [WHERE cond] [ASSUMING cond] EOF
func (p *parser) query() (*Query, error) {
	if err := p.expectKeyword("PREDICT", " at the start of the query"); err != nil {
		return nil, err
	}
	target, err := p.target()
	if err != nil {
		return nil, err
	}
	if err := p.expectKeyword("FOR", " after the target"); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("EACH", " after FOR"); err != nil {
		return nil, err
	}
	q := &Query{Target: target}
	q.Entity.Pos = p.tok.pos
	if q.Entity.Table, err = p.name("entity table", " after FOR EACH"); err != nil {
		return nil, err
	}
	if _, err := p.expect(tokDot, `"."`, " between the entity table and its primary key"); err != nil {
		return nil, err
	}
	q.Entity.ColumnPos = p.tok.pos
	if q.Entity.Column, err = p.name("primary key column", " after "+quoteIdent(q.Entity.Table, false)+"."); err != nil {
		return nil, err
	}
	want := "WHERE, ASSUMING or end of query"
	if p.isKeyword("WHERE") {
		p.advance()
		if q.Where, err = p.or(inWhere); err != nil {
			return nil, err
		}
		want = "AND, OR, ASSUMING or end of query"
	}
	if p.isKeyword("ASSUMING") {
		p.advance()
		if q.Assuming, err = p.or(inAssuming); err != nil {
			return nil, err
		}
		want = "AND, OR or end of query"
	}
	if p.tok.kind != tokEOF {
		return nil, p.errf(p.tok, "expected %s, found %s", want, p.tok.describe())
	}
	// Columns outside aggregations are the entity's own.
	for _, e := range []Expr{q.Target.Expr, q.Where, q.Assuming} {
		if err := entityColumns(e, q.Entity.Table); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// entityColumns checks that the columns used outside aggregations belong to
// the entity table.
func entityColumns(e Expr, entity string) error {
	var err error
	var visit func(Expr)
	visit = func(x Expr) {
		if err != nil || x == nil {
			return
		}
		switch n := x.(type) {
		case *Aggregation:
			return // its WHERE uses its own table, checked when parsed
		case *Column:
			if n.Table != entity {
				err = errAt(n.At, "%s is not a column of the entity table %s: use another table's columns inside an aggregation, e.g. COUNT(%s.* WHERE %s = ..., -30, 0, days)",
					n, quoteIdent(entity, false), quoteIdent(n.Table, false), n)
			}
		case *Binary:
			visit(n.Left)
			visit(n.Right)
		case *Logical:
			for _, t := range n.Terms {
				visit(t)
			}
		case *Not:
			visit(n.X)
		case *In:
			visit(n.X)
		case *IsNull:
			visit(n.X)
		}
	}
	visit(e)
	return err
}

// target := cond [RANK TOP integer]
func (p *parser) target() (Target, error) {
	t := Target{At: p.tok.pos}
	e, err := p.or(inTarget)
	if err != nil {
		return t, err
	}
	t.Expr = e
	if p.isKeyword("RANK") {
		rank := p.tok
		p.advance()
		if err := p.expectKeyword("TOP", " after RANK"); err != nil {
			return t, err
		}
		k, kTok, err := p.number(true, "the number of items k (an integer)", " after RANK TOP")
		if err != nil {
			return t, err
		}
		if k < 1 || k > maxTopK {
			return t, p.errf(kTok, "RANK TOP %s: k must be between 1 and %d", kTok.text, maxTopK)
		}
		if a, ok := e.(*Aggregation); !ok || a.Func != FuncListDistinct {
			return t, p.errf(rank, "RANK TOP k follows a LIST_DISTINCT(table.column, start, end, unit) target")
		}
		t.TopK = int(k)
	}
	if l, ok := e.(*Literal); ok {
		return t, errAt(l.At, "expected an aggregation or a column as the target, found the constant %s", l)
	}
	var listErr error
	Walk(e, func(x Expr) {
		if a, ok := x.(*Aggregation); ok && a.Func == FuncListDistinct && listErr == nil {
			switch {
			case x != e:
				listErr = errAt(a.At, "LIST_DISTINCT is a whole target (LIST_DISTINCT(%s.%s, ...) RANK TOP k); it cannot be compared or combined",
					quoteIdent(a.Table, false), colString(a.Column))
			case t.TopK == 0:
				listErr = errAt(a.At, "LIST_DISTINCT needs RANK TOP k after it: the number of items to recommend per entity")
			}
		}
	})
	return t, listErr
}

// or := and {OR and}
func (p *parser) or(c clause) (Expr, error) {
	first, err := p.and(c)
	if err != nil || !p.isKeyword("OR") {
		return first, err
	}
	l := &Logical{Op: "OR", Terms: []Expr{first}, At: first.Position()}
	for p.isKeyword("OR") {
		p.advance()
		t, err := p.and(c)
		if err != nil {
			return nil, err
		}
		l.Terms = append(l.Terms, t)
	}
	return l, nil
}

// and := not {AND not}
func (p *parser) and(c clause) (Expr, error) {
	first, err := p.not(c)
	if err != nil || !p.isKeyword("AND") {
		return first, err
	}
	l := &Logical{Op: "AND", Terms: []Expr{first}, At: first.Position()}
	for p.isKeyword("AND") {
		p.advance()
		t, err := p.not(c)
		if err != nil {
			return nil, err
		}
		// A parenthesized AND joins this one: its canonical text has no
		// parentheses, and the tree should read back the same.
		if in, ok := t.(*Logical); ok && in.Op == "AND" {
			l.Terms = append(l.Terms, in.Terms...)
			continue
		}
		l.Terms = append(l.Terms, t)
	}
	return l, nil
}

// not := NOT not | predicate
func (p *parser) not(c clause) (Expr, error) {
	if !p.isKeyword("NOT") {
		return p.predicate(c)
	}
	at := p.tok.pos
	p.advance()
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.not(c)
	if err != nil {
		return nil, err
	}
	return &Not{X: x, At: at}, nil
}

// predicate := "(" or ")" [postfix] | value [postfix]
func (p *parser) predicate(c clause) (Expr, error) {
	if p.tok.kind == tokLParen {
		p.advance()
		if err := p.enter(); err != nil {
			return nil, err
		}
		e, err := p.or(c)
		p.leave()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tokRParen, `")"`, " to close the parenthesis"); err != nil {
			return nil, err
		}
		if isValue(e) {
			return p.postfix(e, c)
		}
		return e, nil
	}
	v, err := p.value(c)
	if err != nil {
		return nil, err
	}
	return p.postfix(v, c)
}

// isValue reports whether e is a value rather than a condition.
func isValue(e Expr) bool {
	switch e.(type) {
	case *Aggregation, *Column, *Literal:
		return true
	}
	return false
}

// postfix := op value | [NOT] LIKE string | CONTAINS string | STARTS WITH
// string | ENDS WITH string | [NOT] IN "(" literal {"," literal} ")" | IS
// [NOT] NULL | (nothing: a bare value)
func (p *parser) postfix(left Expr, c clause) (Expr, error) {
	at := left.Position()
	switch {
	case p.tok.kind == tokOp:
		op := p.tok.text
		p.advance()
		right, err := p.value(c)
		if err != nil {
			return nil, err
		}
		_, l1 := left.(*Literal)
		_, l2 := right.(*Literal)
		if l1 && l2 {
			return nil, errAt(at, "a comparison of two constants (%s %s %s) says nothing about the data", left, op, right)
		}
		if lit, ok := right.(*Literal); ok && lit.Kind == LitNull {
			return nil, errAt(lit.At, "comparing with NULL is never true: use IS NULL or IS NOT NULL")
		}
		if lit, ok := left.(*Literal); ok && lit.Kind == LitNull {
			return nil, errAt(lit.At, "comparing with NULL is never true: use IS NULL or IS NOT NULL")
		}
		return &Binary{Op: op, Left: left, Right: right, At: at}, nil
	case p.isKeyword("NOT"):
		p.advance()
		switch {
		case p.isKeyword("LIKE"):
			p.advance()
			return p.match(left, OpNotLike)
		case p.isKeyword("IN"):
			p.advance()
			return p.in(left, true)
		}
		return nil, p.errf(p.tok, "expected LIKE or IN after NOT, found %s", p.tok.describe())
	case p.isKeyword("LIKE"):
		p.advance()
		return p.match(left, OpLike)
	case p.isKeyword("CONTAINS"):
		p.advance()
		return p.match(left, OpContains)
	case p.isKeyword("STARTS"), p.isKeyword("ENDS"):
		op := OpStartsWith
		if p.isKeyword("ENDS") {
			op = OpEndsWith
		}
		p.advance()
		if err := p.expectKeyword("WITH", " after "+strings.Fields(op)[0]); err != nil {
			return nil, err
		}
		return p.match(left, op)
	case p.isKeyword("IN"):
		p.advance()
		return p.in(left, false)
	case p.isKeyword("IS"):
		p.advance()
		neg := false
		if p.isKeyword("NOT") {
			neg = true
			p.advance()
		}
		if err := p.expectKeyword("NULL", " after IS"); err != nil {
			return nil, err
		}
		if l, ok := left.(*Literal); ok {
			return nil, errAt(l.At, "IS NULL tests a column or an aggregation, not the constant %s", l)
		}
		return &IsNull{X: left, Negated: neg, At: at}, nil
	}
	return left, nil
}

// match builds a string match; the pattern is a string literal.
func (p *parser) match(left Expr, op string) (Expr, error) {
	if l, ok := left.(*Literal); ok {
		return nil, errAt(l.At, "%s matches a column or an aggregation, not the constant %s", op, l)
	}
	t, err := p.expect(tokString, "a 'string'", " after "+op)
	if err != nil {
		return nil, err
	}
	return &Binary{Op: op, Left: left, Right: &Literal{Kind: LitString, Str: t.text, At: t.pos}, At: left.Position()}, nil
}

// in parses "(" literal {"," literal} ")".
func (p *parser) in(left Expr, neg bool) (Expr, error) {
	if l, ok := left.(*Literal); ok {
		return nil, errAt(l.At, "IN tests a column or an aggregation, not the constant %s", l)
	}
	if _, err := p.expect(tokLParen, `"("`, " after IN"); err != nil {
		return nil, err
	}
	n := &In{X: left, Negated: neg, At: left.Position()}
	for {
		lit, err := p.literal("a constant (a number, a 'string', TRUE or FALSE)", " in the IN list")
		if err != nil {
			return nil, err
		}
		if lit.Kind == LitNull {
			return nil, errAt(lit.At, "NULL in an IN list never matches: use IS NULL")
		}
		if len(n.List) > 0 && n.List[0].Kind != lit.Kind {
			return nil, errAt(lit.At, "an IN list holds constants of one kind: %s after %s", lit, n.List[0])
		}
		if len(n.List) == maxList {
			return nil, errAt(lit.At, "an IN list holds at most %d values", maxList)
		}
		n.List = append(n.List, lit)
		if p.tok.kind != tokComma {
			break
		}
		p.advance()
	}
	if _, err := p.expect(tokRParen, `")"`, " to close the IN list"); err != nil {
		return nil, err
	}
	return n, nil
}

// value := aggregation | column | literal
func (p *parser) value(c clause) (Expr, error) {
	t := p.tok
	switch t.kind {
	case tokIdent:
		up := strings.ToUpper(t.text)
		if isFunc(up) {
			return p.aggregation(c)
		}
		switch up {
		case "TRUE", "FALSE", "NULL":
			return p.literal("", "")
		}
		if isKeyword(t.text) {
			return nil, p.errf(t, "expected a value (an aggregation such as COUNT(orders.*, 0, 30, days), a table.column or a constant), found the keyword %s", strings.ToUpper(t.text))
		}
		return p.column()
	case tokQuoted:
		return p.column()
	case tokNumber, tokMinus, tokPlus, tokString:
		return p.literal("", "")
	}
	return nil, p.errf(t, "expected a value (an aggregation such as COUNT(orders.*, 0, 30, days), a table.column or a constant), found %s", t.describe())
}

func isFunc(up string) bool {
	switch up {
	case FuncCount, FuncCountDistinct, FuncSum, FuncAvg, FuncMin, FuncMax, FuncFirst, FuncLast, FuncExists, FuncListDistinct:
		return true
	}
	return false
}

// column := name "." name
func (p *parser) column() (Expr, error) {
	c := &Column{At: p.tok.pos}
	var err error
	if c.Table, err = p.name("a table name", ""); err != nil {
		return nil, err
	}
	if _, err := p.expect(tokDot, `"."`, " after the table name "+quoteIdent(c.Table, false)+" (columns are written table.column)"); err != nil {
		return nil, err
	}
	if p.tok.kind == tokStar {
		return nil, p.errf(p.tok, "%s.* is only valid inside COUNT or EXISTS", quoteIdent(c.Table, false))
	}
	c.NameAt = p.tok.pos
	if c.Name, err = p.name("a column name", " after "+quoteIdent(c.Table, false)+"."); err != nil {
		return nil, err
	}
	return c, nil
}

// literal := ["-"|"+"] number | string | TRUE | FALSE | NULL
func (p *parser) literal(what, context string) (*Literal, error) {
	t := p.tok
	switch {
	case t.kind == tokString:
		p.advance()
		return &Literal{Kind: LitString, Str: t.text, At: t.pos}, nil
	case t.kind == tokIdent && strings.EqualFold(t.text, "TRUE"), t.kind == tokIdent && strings.EqualFold(t.text, "FALSE"):
		p.advance()
		return &Literal{Kind: LitBool, Bool: strings.EqualFold(t.text, "TRUE"), At: t.pos}, nil
	case t.kind == tokIdent && strings.EqualFold(t.text, "NULL"):
		p.advance()
		return &Literal{Kind: LitNull, At: t.pos}, nil
	case t.kind == tokNumber || t.kind == tokMinus || t.kind == tokPlus:
		if what == "" {
			what = "a number"
		}
		v, _, err := p.number(false, what, context)
		if err != nil {
			return nil, err
		}
		return &Literal{Kind: LitNumber, Num: v, At: t.pos}, nil
	}
	if what == "" {
		what = "a constant"
	}
	return nil, p.errf(t, "expected %s%s, found %s", what, context, t.describe())
}

// name reads an identifier, bare or "quoted"; a bare keyword is not a name.
func (p *parser) name(what, context string) (string, error) {
	t := p.tok
	if (t.kind == tokIdent && !isKeyword(t.text)) || t.kind == tokQuoted {
		p.advance()
		return t.text, nil
	}
	if t.kind == tokIdent {
		return "", p.errf(t, "expected %s%s, found the keyword %s (quote a name spelled like a keyword: %s)", what, context, strings.ToUpper(t.text), quoteIdent(t.text, true))
	}
	return "", p.errf(t, "expected %s%s, found %s", what, context, t.describe())
}

// aggregation := FUNC "(" name "." (name | "*") [WHERE or] "," int "," int ["," unit] ")"
func (p *parser) aggregation(c clause) (Expr, error) {
	fnTok := p.tok
	fn := strings.ToUpper(fnTok.text)
	a := &Aggregation{Func: fn, At: fnTok.pos}
	if c == inAggWhere {
		return nil, p.errf(fnTok, "%s cannot appear inside an aggregation's WHERE: it filters the aggregated rows by their own columns", fn)
	}
	p.advance()
	if _, err := p.expect(tokLParen, `"("`, " after "+fn); err != nil {
		return nil, err
	}
	var err error
	a.TablePos = p.tok.pos
	if a.Table, err = p.name("a table name", " in "+fn+"("); err != nil {
		return nil, err
	}
	if _, err := p.expect(tokDot, `"."`, " after the table name "+quoteIdent(a.Table, false)); err != nil {
		return nil, err
	}
	a.ColumnPos = p.tok.pos
	if p.tok.kind == tokStar {
		if fn != FuncCount && fn != FuncExists {
			return nil, p.errf(p.tok, "%s needs a column (%s(%s.column, ...)); only COUNT and EXISTS take %s.*", fn, fn, quoteIdent(a.Table, false), quoteIdent(a.Table, false))
		}
		a.Column = "*"
		p.advance()
	} else if a.Column, err = p.name(`a column name or "*"`, " after "+quoteIdent(a.Table, false)+"."); err != nil {
		return nil, err
	}
	if p.isKeyword("WHERE") {
		p.advance()
		if a.Where, err = p.or(inAggWhere); err != nil {
			return nil, err
		}
		if err := aggColumns(a); err != nil {
			return nil, err
		}
	}
	if _, err := p.expect(tokComma, `","`, " before the window start"); err != nil {
		return nil, err
	}
	start, startTok, err := p.number(true, "the window start (an integer)", "")
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tokComma, `","`, " before the window end"); err != nil {
		return nil, err
	}
	end, endTok, err := p.number(true, "the window end (an integer)", "")
	if err != nil {
		return nil, err
	}
	a.Unit = Days
	if p.tok.kind == tokIdent {
		return nil, p.errf(p.tok, `expected "," before the time unit, found %s`, p.tok.describe())
	}
	if p.tok.kind == tokComma {
		p.advance()
		unitTok := p.tok
		if unitTok.kind != tokIdent {
			return nil, p.errf(unitTok, "expected a time unit (hours, days, weeks, months), found %s", unitTok.describe())
		}
		switch strings.ToLower(unitTok.text) {
		case "day", "days":
			a.Unit = Days
		case "hour", "hours":
			a.Unit = Hours
		case "week", "weeks":
			a.Unit = Weeks
		case "month", "months":
			a.Unit = Months
		default:
			return nil, p.errf(unitTok, "expected a time unit (hours, days, weeks, months), found %s", unitTok.describe())
		}
		p.advance()
	}
	if _, err := p.expect(tokRParen, `")"`, " to close "+fn+"("); err != nil {
		return nil, err
	}
	// Bounds stay within maxWindow so that durations never overflow.
	limit := float64(maxWindow / a.Unit.Duration(1))
	for _, b := range []struct {
		v   float64
		tok token
	}{{start, startTok}, {end, endTok}} {
		if math.Abs(b.v) > limit {
			return nil, p.errf(b.tok, "window bound %s %s is more than 100 years from the anchor", strconv.FormatFloat(b.v, 'f', -1, 64), a.Unit)
		}
	}
	a.Start, a.End = int(start), int(end)
	if a.Start >= a.End {
		return nil, errAt(a.At, "window start %d must be less than its end %d", a.Start, a.End)
	}
	switch c {
	case inTarget, inAssuming:
		if a.Start < 0 {
			return nil, errAt(a.At, "a %s window (%d, %d] must lie in the future: start must be >= 0", c, a.Start, a.End)
		}
	case inWhere:
		if a.End > 0 {
			return nil, errAt(a.At, "a WHERE window (%d, %d] must lie in the past: end must be <= 0 (future conditions go in ASSUMING)", a.Start, a.End)
		}
	}
	return a, nil
}

// aggColumns checks that an aggregation's WHERE uses only the aggregated
// table's columns.
func aggColumns(a *Aggregation) error {
	var err error
	Walk(a.Where, func(x Expr) {
		if col, ok := x.(*Column); ok && err == nil && col.Table != a.Table {
			err = errAt(col.At, "inside %s(%s...), conditions use the columns of %s; %s belongs to another table",
				a.Func, quoteIdent(a.Table, false), quoteIdent(a.Table, false), col)
		}
	})
	return err
}

// number parses an optionally signed number; integer requires an integer.
func (p *parser) number(integer bool, what, context string) (float64, token, error) {
	t := p.tok
	sign := 1.0
	if t.kind == tokMinus || t.kind == tokPlus {
		if t.kind == tokMinus {
			sign = -1
		}
		p.advance()
	}
	n := p.tok
	if n.kind != tokNumber {
		return 0, n, p.errf(n, "expected %s%s, found %s", what, context, n.describe())
	}
	v, err := strconv.ParseFloat(n.text, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, n, p.errf(n, "number %s is out of range", n.describe())
	}
	if integer && (v != math.Trunc(v) || strings.ContainsAny(n.text, ".eE")) {
		return 0, n, p.errf(n, "expected %s%s, found %s", what, context, n.describe())
	}
	p.advance()
	return sign * v, t, nil
}
