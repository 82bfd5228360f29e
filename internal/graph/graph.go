// Package graph describes a relational schema as Ferry sees it: tables, their
// columns, primary keys, foreign keys and time columns. It is metadata only and
// travels between the agent, the engine and the control plane.
package graph

import (
	"fmt"
	"sort"
	"strings"
)

// Column is one column of a table: its name, its Arrow type as a string
// (arrow.DataType.String()) and whether it may hold nulls.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

// ForeignKey says that Columns of the owning table reference RefColumns of
// RefTable.
type ForeignKey struct {
	Columns    []string `json:"columns"`
	RefTable   string   `json:"ref_table"`
	RefColumns []string `json:"ref_columns"`
}

// Table is the metadata of one table. TimeColumn is empty for a static table.
type Table struct {
	Name        string       `json:"name"`
	Columns     []Column     `json:"columns"`
	PrimaryKey  []string     `json:"primary_key,omitempty"`
	ForeignKeys []ForeignKey `json:"foreign_keys,omitempty"`
	TimeColumn  string       `json:"time_column,omitempty"`
}

// Column returns the named column.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// ColumnNames returns the names of the table's columns in order.
func (t *Table) ColumnNames() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// Graph is a set of tables linked by foreign keys.
type Graph struct {
	Tables []Table `json:"tables"`
}

// Table returns the named table.
func (g *Graph) Table(name string) (*Table, bool) {
	for i := range g.Tables {
		if g.Tables[i].Name == name {
			return &g.Tables[i], true
		}
	}
	return nil, false
}

// TableNames returns the names of all tables, sorted.
func (g *Graph) TableNames() []string {
	names := make([]string, len(g.Tables))
	for i, t := range g.Tables {
		names[i] = t.Name
	}
	sort.Strings(names)
	return names
}

// Referencing returns the tables that have a foreign key to the named table,
// with the foreign key that links them, in the graph's order.
func (g *Graph) Referencing(table string) []Link {
	var out []Link
	for i := range g.Tables {
		for _, fk := range g.Tables[i].ForeignKeys {
			if fk.RefTable == table {
				out = append(out, Link{From: &g.Tables[i], FK: fk})
			}
		}
	}
	return out
}

// Link is a foreign key seen from the referencing table.
type Link struct {
	From *Table
	FK   ForeignKey
}

// Nearest returns the candidate closest to name by edit distance, or "" when
// none is reasonably close. It serves "did you mean" hints in error messages.
func Nearest(name string, candidates []string) string {
	best, bestDist := "", -1
	lower := strings.ToLower(name)
	for _, c := range candidates {
		d := levenshtein(lower, strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist < 0 {
		return ""
	}
	limit := len([]rune(name))/2 + 1
	if limit < 3 {
		limit = 3
	}
	if bestDist > limit {
		return ""
	}
	return best
}

// NotFoundError reports a missing table or column and the nearest valid name.
type NotFoundError struct {
	Kind    string // "table" or "column"
	Name    string
	Table   string // for a column: the table searched
	Nearest string
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	if e.Kind == "column" && e.Table != "" {
		fmt.Fprintf(&b, "column %q not found in table %q", e.Name, e.Table)
	} else {
		fmt.Fprintf(&b, "%s %q not found", e.Kind, e.Name)
	}
	if e.Nearest != "" {
		fmt.Fprintf(&b, " (did you mean %q?)", e.Nearest)
	}
	return b.String()
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
