package pql

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxQueryLen bounds the text a query may have.
const maxQueryLen = 64 << 10

// maxWindow bounds how far from the anchor a window may reach.
const maxWindow = 100 * 366 * 24 * time.Hour

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

type parser struct {
	lex *lexer
	tok token
}

func (p *parser) advance() { p.tok = p.lex.next() }

func (p *parser) errf(at token, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if at.kind == tokIllegal {
		msg = at.msg
	}
	return &SyntaxError{Line: at.pos.Line, Col: at.pos.Col, Msg: msg}
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

// query := PREDICT comparison FOR EACH ident "." ident [WHERE comparison {AND comparison}] EOF
func (p *parser) query() (*Query, error) {
	if err := p.expectKeyword("PREDICT", " at the start of the query"); err != nil {
		return nil, err
	}
	agg, op, v, pos, err := p.comparison("target")
	if err != nil {
		return nil, err
	}
	target := Target{Agg: agg, Op: op, Value: v, Pos: pos}
	if target.Agg.Start < 0 {
		return nil, &SyntaxError{Line: target.Agg.Pos.Line, Col: target.Agg.Pos.Col,
			Msg: fmt.Sprintf("the target window (%d, %d] must lie in the future: start must be >= 0", target.Agg.Start, target.Agg.End)}
	}
	if err := p.expectKeyword("FOR", " after the target"); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("EACH", " after FOR"); err != nil {
		return nil, err
	}
	q := &Query{Target: target}
	q.Entity.Pos = p.tok.pos
	if q.Entity.Table, err = p.ident("entity table", " after FOR EACH"); err != nil {
		return nil, err
	}
	if _, err := p.expect(tokDot, `"."`, " between the entity table and its primary key"); err != nil {
		return nil, err
	}
	q.Entity.ColumnPos = p.tok.pos
	if q.Entity.Column, err = p.ident("primary key column", " after "+quoteIdent(q.Entity.Table, false)+"."); err != nil {
		return nil, err
	}
	if p.isKeyword("WHERE") {
		p.advance()
		for {
			agg, op, v, pos, err := p.comparison("filter")
			if err != nil {
				return nil, err
			}
			c := Condition{Agg: agg, Op: op, Value: v, Pos: pos}
			if c.Agg.End > 0 {
				return nil, &SyntaxError{Line: c.Agg.Pos.Line, Col: c.Agg.Pos.Col,
					Msg: fmt.Sprintf("a WHERE window (%d, %d] must lie in the past: end must be <= 0", c.Agg.Start, c.Agg.End)}
			}
			q.Filters = append(q.Filters, c)
			if !p.isKeyword("AND") {
				break
			}
			p.advance()
		}
	}
	if p.isKeyword("OR") {
		return nil, p.errf(p.tok, "OR is not supported yet; WHERE conditions are joined with AND")
	}
	if p.tok.kind != tokEOF {
		want := "WHERE or end of query"
		if len(q.Filters) > 0 {
			want = "AND or end of query"
		}
		return nil, p.errf(p.tok, "expected %s, found %s", want, p.tok.describe())
	}
	return q, nil
}

func (p *parser) ident(what, context string) (string, error) {
	if p.tok.kind == tokIdent || p.tok.kind == tokQuoted {
		s := p.tok.text
		p.advance()
		return s, nil
	}
	return "", p.errf(p.tok, "expected %s%s, found %s", what, context, p.tok.describe())
}

// comparison := aggregation op number
func (p *parser) comparison(role string) (agg Aggregation, op string, value float64, pos Pos, err error) {
	pos = p.tok.pos
	if agg, err = p.aggregation(role); err != nil {
		return
	}
	opTok, err := p.expect(tokOp, "a comparison (>, >=, <, <=, =, !=)", " after the "+role+" aggregation")
	if err != nil {
		return
	}
	op = opTok.text
	value, _, err = p.number(false, "a number", " after "+op)
	return
}

// aggregation := COUNT "(" ident "." "*" "," int "," int "," unit ")"
func (p *parser) aggregation(role string) (Aggregation, error) {
	a := Aggregation{Pos: p.tok.pos}
	if p.tok.kind != tokIdent {
		return a, p.errf(p.tok, "expected an aggregation such as COUNT(orders.*, 0, 30, days) as the %s, found %s", role, p.tok.describe())
	}
	fn := strings.ToUpper(p.tok.text)
	switch fn {
	case "COUNT":
	case "SUM", "AVG", "MIN", "MAX", "COUNT_DISTINCT", "FIRST", "LAST", "EXISTS", "LIST_DISTINCT":
		return a, p.errf(p.tok, "%s is not supported yet; this version supports COUNT(table.*, start, end, unit)", fn)
	default:
		return a, p.errf(p.tok, "expected an aggregation such as COUNT(orders.*, 0, 30, days) as the %s, found %s", role, p.tok.describe())
	}
	a.Func = fn
	p.advance()
	if _, err := p.expect(tokLParen, `"("`, " after "+fn); err != nil {
		return a, err
	}
	var err error
	a.TablePos = p.tok.pos
	if a.Table, err = p.ident("a table name", " in "+fn+"("); err != nil {
		return a, err
	}
	if _, err := p.expect(tokDot, `"."`, " after the table name "+quoteIdent(a.Table, false)); err != nil {
		return a, err
	}
	if _, err := p.expect(tokStar, `"*"`, " (COUNT counts rows: "+quoteIdent(a.Table, false)+".*)"); err != nil {
		return a, err
	}
	a.Column = "*"
	if _, err := p.expect(tokComma, `","`, " before the window start"); err != nil {
		return a, err
	}
	start, startTok, err := p.number(true, "the window start (an integer)", "")
	if err != nil {
		return a, err
	}
	if _, err := p.expect(tokComma, `","`, " before the window end"); err != nil {
		return a, err
	}
	end, endTok, err := p.number(true, "the window end (an integer)", "")
	if err != nil {
		return a, err
	}
	if _, err := p.expect(tokComma, `","`, " before the time unit"); err != nil {
		return a, err
	}
	unitTok := p.tok
	if p.tok.kind != tokIdent {
		return a, p.errf(p.tok, "expected a time unit (hours, days, weeks), found %s", p.tok.describe())
	}
	switch u := strings.ToLower(p.tok.text); u {
	case "day", "days":
		a.Unit = Days
	case "hour", "hours":
		a.Unit = Hours
	case "week", "weeks":
		a.Unit = Weeks
	default:
		return a, p.errf(unitTok, "expected a time unit (hours, days, weeks), found %s", p.tok.describe())
	}
	p.advance()
	if _, err := p.expect(tokRParen, `")"`, " to close "+fn+"("); err != nil {
		return a, err
	}
	// Bounds stay within maxWindow so that durations never overflow.
	limit := float64(maxWindow / a.Unit.Duration(1))
	for _, b := range []struct {
		v   float64
		tok token
	}{{start, startTok}, {end, endTok}} {
		if math.Abs(b.v) > limit {
			return a, p.errf(b.tok, "window bound %s %s is more than 100 years from the anchor", strconv.FormatFloat(b.v, 'f', -1, 64), a.Unit)
		}
	}
	a.Start, a.End = int(start), int(end)
	if a.Start >= a.End {
		return a, &SyntaxError{Line: a.Pos.Line, Col: a.Pos.Col, Msg: fmt.Sprintf("window start %d must be less than its end %d", a.Start, a.End)}
	}
	return a, nil
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
		return 0, n, p.errf(n, "expected %s, found %s", what, n.describe())
	}
	p.advance()
	return sign * v, t, nil
}
