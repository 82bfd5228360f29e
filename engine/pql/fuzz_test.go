package pql

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that no input makes the parser or the validator panic,
// that every error has a position inside the text, and that a parsed
// query's canonical form parses to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		demo,
		"PREDICT COUNT(o.*, 0, 7, hours) > 0 FOR EACH c.id",
		`PREDICT COUNT("a""b".*, 0, 1, weeks) != 2 FOR EACH "x y"."z" WHERE COUNT(q.*, -1, 0, days) = 0 AND COUNT(q.*, -3, -1, days) > 1`,
		"PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH",
		"predict count(o.*,-0,+1,day)>=1e3 for each c.id",
		"PREDICT COUNT(o.*, 0, 30, days) > 0 FOR EACH c.id; DROP TABLE x --",
		"\xff\xfe",
		"PREDICT COUNT(\"unterminated",
		"PREDICT SUM(orders.amount WHERE orders.status IN ('a', 'b') AND NOT orders.note LIKE '%x%', 0, 2, months) FOR EACH customers.customer_id",
		"PREDICT LIST_DISTINCT(orders.product_id, 0, 30, days) RANK TOP 10 FOR EACH customers.customer_id WHERE customers.vip",
		"PREDICT (customers.segment = 'gold' OR customers.age >= 30) AND NOT customers.vip FOR EACH customers.customer_id",
		"PREDICT MAX(orders.amount, 0, 7) > 1 FOR EACH customers.customer_id WHERE customers.signup_at < '2024-01-01' ASSUMING EXISTS(returns.*, 0, 7)",
		"PREDICT customers.segment FOR EACH customers.customer_id WHERE customers.segment IS NOT NULL AND customers.segment ENDS WITH 'd'",
		"PREDICT COUNT(o.* WHERE o.s = 'it''s', 0, 1) > 0 FOR EACH c.id",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			se, ok := err.(*SyntaxError)
			if !ok {
				t.Fatalf("error %T %v is not a SyntaxError", err, err)
			}
			lines := strings.Count(s, "\n") + 1
			if se.Line < 1 || se.Line > lines || se.Col < 1 || se.Msg == "" {
				t.Fatalf("bad error position %d:%d (%d lines) %q for %q", se.Line, se.Col, lines, se.Msg, s)
			}
			if !utf8.ValidString(se.Error()) {
				t.Fatalf("error message is not valid UTF-8: %q", se.Error())
			}
			return
		}
		_, _ = q.Task(shop()) // must not panic, whatever the query
		canon := q.String()
		q2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if q2.String() != canon {
			t.Fatalf("canonical form not stable: %q -> %q", canon, q2.String())
		}
	})
}
