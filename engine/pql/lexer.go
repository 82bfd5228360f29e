package pql

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokenKind classifies a lexical token.
type tokenKind int

const (
	tokEOF     tokenKind = iota
	tokIllegal           // a character or sequence the lexer cannot use
	tokIdent             // bare identifier or keyword
	tokQuoted            // "double quoted" identifier
	tokString            // 'single quoted' string literal
	tokNumber            // unsigned numeric literal
	tokLParen            // (
	tokRParen            // )
	tokComma             // ,
	tokDot               // .
	tokStar              // *
	tokMinus             // -
	tokPlus              // +
	tokOp                // comparison operator: > >= < <= = != <>
)

// token is one lexical token with its position.
type token struct {
	kind tokenKind
	text string // identifier (unquoted), number text, operator, or the offending text
	pos  Pos
	msg  string // for tokIllegal: why
}

// describe renders the token for "found ..." in error messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of input"
	case tokQuoted:
		return quoteIdent(t.text, true)
	case tokString:
		return "'" + truncate(strings.ReplaceAll(t.text, "'", "''"), 32) + "'"
	default:
		return fmt.Sprintf("%q", truncate(t.text, 32))
	}
}

// truncate shortens s to at most n runes, adding "..." when it cuts.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "..."
}

// lexer turns query text into tokens. It never panics: bad input becomes a
// tokIllegal token that the parser reports.
type lexer struct {
	src  string
	off  int // byte offset of the next rune
	line int
	col  int
}

func newLexer(src string) *lexer {
	return &lexer{src: src, line: 1, col: 1}
}

// peekRune returns the rune at the current offset without consuming it.
func (l *lexer) peekRune() (rune, int) {
	if l.off >= len(l.src) {
		return -1, 0
	}
	return utf8.DecodeRuneInString(l.src[l.off:])
}

// advance consumes one rune and updates line and column.
func (l *lexer) advance() rune {
	r, w := l.peekRune()
	if w == 0 {
		return -1
	}
	l.off += w
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return r
}

func (l *lexer) pos() Pos { return Pos{Line: l.line, Col: l.col} }

// skipSpace skips white space and "--" line comments.
func (l *lexer) skipSpace() {
	for {
		r, _ := l.peekRune()
		switch {
		case r == '-' && strings.HasPrefix(l.src[l.off:], "--"):
			for r != '\n' && r != -1 {
				l.advance()
				r, _ = l.peekRune()
			}
		case r != -1 && unicode.IsSpace(r):
			l.advance()
		default:
			return
		}
	}
}

func isIdentStart(r rune) bool {
	return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
}

func isIdentPart(r rune) bool {
	return isIdentStart(r) || (r >= '0' && r <= '9') || r == '$'
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// maxIdentLen bounds identifiers so that error messages and names stay sane.
const maxIdentLen = 255

// next returns the next token.
func (l *lexer) next() token {
	l.skipSpace()
	p := l.pos()
	r, w := l.peekRune()
	switch {
	case w == 0:
		return token{kind: tokEOF, pos: p}
	case r == utf8.RuneError && w == 1:
		l.advance()
		return token{kind: tokIllegal, text: "\\x" + fmt.Sprintf("%02x", l.src[l.off-1]), pos: p, msg: "invalid UTF-8"}
	case isIdentStart(r):
		start := l.off
		for {
			r, _ := l.peekRune()
			if r == -1 || !isIdentPart(r) {
				break
			}
			l.advance()
		}
		text := l.src[start:l.off]
		if len(text) > maxIdentLen {
			return token{kind: tokIllegal, text: text, pos: p, msg: fmt.Sprintf("identifier longer than %d characters", maxIdentLen)}
		}
		return token{kind: tokIdent, text: text, pos: p}
	case r == '"':
		return l.quoted(p)
	case r == '\'':
		return l.str(p)
	case isDigit(r) || (r == '.' && l.off+1 < len(l.src) && isDigit(rune(l.src[l.off+1]))):
		return l.number(p)
	}
	l.advance()
	switch r {
	case '(':
		return token{kind: tokLParen, text: "(", pos: p}
	case ')':
		return token{kind: tokRParen, text: ")", pos: p}
	case ',':
		return token{kind: tokComma, text: ",", pos: p}
	case '.':
		return token{kind: tokDot, text: ".", pos: p}
	case '*':
		return token{kind: tokStar, text: "*", pos: p}
	case '-':
		return token{kind: tokMinus, text: "-", pos: p}
	case '+':
		return token{kind: tokPlus, text: "+", pos: p}
	case '=':
		if n, _ := l.peekRune(); n == '=' {
			l.advance()
		}
		return token{kind: tokOp, text: "=", pos: p}
	case '>':
		if n, _ := l.peekRune(); n == '=' {
			l.advance()
			return token{kind: tokOp, text: ">=", pos: p}
		}
		return token{kind: tokOp, text: ">", pos: p}
	case '<':
		switch n, _ := l.peekRune(); n {
		case '=':
			l.advance()
			return token{kind: tokOp, text: "<=", pos: p}
		case '>':
			l.advance()
			return token{kind: tokOp, text: "!=", pos: p}
		}
		return token{kind: tokOp, text: "<", pos: p}
	case '!':
		if n, _ := l.peekRune(); n == '=' {
			l.advance()
			return token{kind: tokOp, text: "!=", pos: p}
		}
		return token{kind: tokIllegal, text: "!", pos: p, msg: `unexpected "!" (did you mean "!="?)`}
	}
	return token{kind: tokIllegal, text: string(r), pos: p, msg: fmt.Sprintf("unexpected character %q", truncate(string(r), 4))}
}

// quoted lexes a double-quoted identifier; "" inside stands for one quote.
func (l *lexer) quoted(p Pos) token {
	l.advance() // opening quote
	var b strings.Builder
	for {
		r, w := l.peekRune()
		switch {
		case w == 0:
			return token{kind: tokIllegal, text: `"` + truncate(b.String(), 32), pos: p, msg: "unterminated quoted identifier"}
		case r == utf8.RuneError && w == 1:
			return token{kind: tokIllegal, text: `"` + truncate(b.String(), 32), pos: p, msg: "invalid UTF-8 in quoted identifier"}
		case r == '\n':
			return token{kind: tokIllegal, text: `"` + truncate(b.String(), 32), pos: p, msg: "newline in quoted identifier"}
		case r == '"':
			l.advance()
			if n, _ := l.peekRune(); n == '"' {
				l.advance()
				b.WriteRune('"')
				continue
			}
			name := b.String()
			if name == "" {
				return token{kind: tokIllegal, text: `""`, pos: p, msg: "empty quoted identifier"}
			}
			if utf8.RuneCountInString(name) > maxIdentLen {
				return token{kind: tokIllegal, text: `"` + name, pos: p, msg: fmt.Sprintf("identifier longer than %d characters", maxIdentLen)}
			}
			return token{kind: tokQuoted, text: name, pos: p}
		case r < 0x20 || r == 0x7f:
			return token{kind: tokIllegal, text: `"` + truncate(b.String(), 32), pos: p, msg: "control character in quoted identifier"}
		default:
			l.advance()
			b.WriteRune(r)
		}
	}
}

// maxStringLen bounds string literals.
const maxStringLen = 4096

// str lexes a single-quoted string literal; a doubled quote inside stands
// for one.
// It may hold any character but a control character.
func (l *lexer) str(p Pos) token {
	l.advance() // opening quote
	var b strings.Builder
	for {
		r, w := l.peekRune()
		switch {
		case w == 0:
			return token{kind: tokIllegal, text: "'" + truncate(b.String(), 32), pos: p, msg: "unterminated string"}
		case r == utf8.RuneError && w == 1:
			return token{kind: tokIllegal, text: "'" + truncate(b.String(), 32), pos: p, msg: "invalid UTF-8 in string"}
		case r == '\'':
			l.advance()
			if n, _ := l.peekRune(); n == '\'' {
				l.advance()
				b.WriteRune('\'')
				continue
			}
			return token{kind: tokString, text: b.String(), pos: p}
		case r < 0x20 || r == 0x7f:
			return token{kind: tokIllegal, text: "'" + truncate(b.String(), 32), pos: p, msg: "control character in string (strings are one line)"}
		case b.Len() >= maxStringLen:
			return token{kind: tokIllegal, text: "'" + truncate(b.String(), 32), pos: p, msg: fmt.Sprintf("string longer than %d bytes", maxStringLen)}
		default:
			l.advance()
			b.WriteRune(r)
		}
	}
}

// number lexes digits [ "." digits ] [ ("e"|"E") ["+"|"-"] digits ].
func (l *lexer) number(p Pos) token {
	start := l.off
	digits := func() int {
		n := 0
		for {
			r, _ := l.peekRune()
			if !isDigit(r) {
				return n
			}
			l.advance()
			n++
		}
	}
	digits()
	if r, _ := l.peekRune(); r == '.' {
		l.advance()
		digits()
	}
	if r, _ := l.peekRune(); r == 'e' || r == 'E' {
		l.advance()
		if s, _ := l.peekRune(); s == '+' || s == '-' {
			l.advance()
		}
		if digits() == 0 {
			return token{kind: tokIllegal, text: l.src[start:l.off], pos: p, msg: "malformed number"}
		}
	}
	if r, _ := l.peekRune(); r != -1 && isIdentPart(r) {
		for {
			r, _ := l.peekRune()
			if r == -1 || !isIdentPart(r) {
				break
			}
			l.advance()
		}
		return token{kind: tokIllegal, text: l.src[start:l.off], pos: p, msg: "malformed number"}
	}
	text := l.src[start:l.off]
	if len(text) > 64 {
		return token{kind: tokIllegal, text: text, pos: p, msg: "number too long"}
	}
	return token{kind: tokNumber, text: text, pos: p}
}
