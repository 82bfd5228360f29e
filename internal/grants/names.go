package grants

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// nameRules say how a dialect reads an unquoted name part.
type nameRules struct {
	fold   func(string) string // applied to unquoted parts
	hyphen bool                // unquoted parts may hold '-' (BigQuery project ids)
}

// Unquoted parts are ASCII (as Snowflake's and Databricks' regular
// identifiers are), so folding them is ASCII folding, as PostgreSQL's is on
// UTF-8 databases; other names are written quoted.

// lowerRules fold to lower case: PostgreSQL, Redshift, Databricks.
func lowerRules() nameRules { return nameRules{fold: asciiFold('A', 'a')} }

// upperRules fold to upper case: Snowflake.
func upperRules() nameRules { return nameRules{fold: asciiFold('a', 'A')} }

// keepRules keep names as written and allow hyphens: BigQuery.
func keepRules() nameRules {
	return nameRules{fold: func(s string) string { return s }, hyphen: true}
}

// asciiFold maps the ASCII letters from..from+25 to to..to+25.
func asciiFold(from, to byte) func(string) string {
	return func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if c >= from && c < from+26 {
				b[i] = c - from + to
			}
		}
		return string(b)
	}
}

// parsed is a dotted name: its parts as the catalog spells them, and whether
// it ended in `.*` (every table of the schema).
type parsed struct {
	parts    []string
	wildcard bool
}

// parseName reads a dotted name with SQL's quoting rules.
func parseName(s string, r nameRules) (parsed, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return parsed{}, errors.New("empty name")
	}
	var p parsed
	i := 0
	for {
		if p.wildcard {
			return parsed{}, errors.New("'*' must be the last part")
		}
		switch c := s[i]; c {
		case '"', '`':
			part, n, err := quotedPart(s[i:], c)
			if err != nil {
				return parsed{}, err
			}
			p.parts = append(p.parts, part)
			i += n
		case '*':
			if len(p.parts) == 0 {
				return parsed{}, errors.New("'*' needs a schema before it (schema.*)")
			}
			p.wildcard = true
			i++
		default:
			j := strings.IndexByte(s[i:], '.')
			if j < 0 {
				j = len(s) - i
			}
			part := s[i : i+j]
			if err := checkUnquoted(part, r); err != nil {
				return parsed{}, err
			}
			p.parts = append(p.parts, r.fold(part))
			i += j
		}
		if i == len(s) {
			return p, nil
		}
		if s[i] != '.' {
			return parsed{}, fmt.Errorf("unexpected %q after a quoted part (parts are separated by '.')", s[i])
		}
		i++
		if i == len(s) {
			return parsed{}, errors.New("name ends with '.'")
		}
	}
}

// quotedPart reads a part quoted with q from the start of s and returns it
// and the bytes consumed.
func quotedPart(s string, q byte) (string, int, error) {
	var b strings.Builder
	for j := 1; j < len(s); j++ {
		if s[j] != q {
			b.WriteByte(s[j])
			continue
		}
		if j+1 < len(s) && s[j+1] == q {
			b.WriteByte(q)
			j++
			continue
		}
		if b.Len() == 0 {
			return "", 0, errors.New("empty quoted part")
		}
		return b.String(), j + 1, nil
	}
	return "", 0, fmt.Errorf("unterminated %c quote", q)
}

// checkUnquoted refuses an unquoted part that SQL would not read as one
// identifier.
func checkUnquoted(part string, r nameRules) error {
	if part == "" {
		return errors.New("empty part (two dots, or a leading dot)")
	}
	for i, c := range part {
		letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
		ok := letter || (i > 0 && ((c >= '0' && c <= '9') || c == '$' || (r.hyphen && c == '-')))
		if !ok {
			return fmt.Errorf("unquoted part %q has %q: quote the part (\"…\") to use it as written", part, c)
		}
	}
	return nil
}

// SplitList splits a comma-separated list of names or URLs; commas inside
// quotes belong to the name.
func SplitList(s string) ([]string, error) {
	var out []string
	var quote rune
	start := 0
	add := func(item string) error {
		item = strings.TrimSpace(item)
		if item == "" {
			return fmt.Errorf("%w: empty item in list %q", ErrInvalid, s)
		}
		out = append(out, item)
		return nil
	}
	for i, c := range s {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0 // a doubled quote closes and reopens: same result
			}
		case c == '"' || c == '`':
			quote = c
		case c == ',':
			if err := add(s[start:i]); err != nil {
				return nil, err
			}
			start = i + 1
		}
	}
	if err := add(s[start:]); err != nil {
		return nil, err
	}
	return out, nil
}

// checkParts applies the limits every dialect shares: no control characters
// (they would garble the statements an admin reads) and valid UTF-8.
func checkParts(parts []string) error {
	for _, p := range parts {
		if !utf8.ValidString(p) {
			return fmt.Errorf("part %q is not valid UTF-8", p)
		}
		for _, c := range p {
			if unicode.IsControl(c) {
				return fmt.Errorf("part %q has the control character %U", p, c)
			}
		}
	}
	return nil
}

// quoteDouble quotes an identifier for PostgreSQL, Redshift and Snowflake.
func quoteDouble(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteBacktick quotes an identifier for Databricks SQL.
func quoteBacktick(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// qualify quotes each part and joins them with dots.
func qualify(parts []string, quote func(string) string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = quote(p)
	}
	return strings.Join(q, ".")
}

// shellQuote quotes a word for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// displayName renders parts for messages the way they can be typed back:
// plain lower-case identifiers as they are, anything else double-quoted.
func displayName(parts ...string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p
		if !plainLower(p) {
			out[i] = quoteDouble(p)
		}
	}
	return strings.Join(out, ".")
}

func plainLower(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && ((c >= '0' && c <= '9') || c == '$'))
		if !ok {
			return false
		}
	}
	return true
}
