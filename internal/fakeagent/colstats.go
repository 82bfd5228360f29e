package fakeagent

import (
	"slices"
	"strings"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
)

// columnStats makes up the statistics ferry-agent would report for the
// columns of t read in rows rows: a twentieth of a nullable column's
// values null, a range for the numeric columns that are not keys (from 1.25
// to 4999.5), and about nine distinct values in ten (two for a boolean).
func columnStats(t *agentapi.TableMeta, rows int64) []*agentapi.ColumnStats {
	keys := slices.Clone(t.GetPrimaryKey())
	for _, fk := range t.GetForeignKeys() {
		keys = append(keys, fk.GetColumns()...)
	}
	var out []*agentapi.ColumnStats
	for _, c := range t.GetColumns() {
		s := &agentapi.ColumnStats{Name: c.GetName()}
		if c.GetNullable() {
			s.Nulls = rows / 20
		}
		if rows > 0 {
			s.NullFraction = float64(s.Nulls) / float64(rows)
		}
		typ := c.GetType()
		switch {
		case typ == "bool":
			s.DistinctEstimate = min(2, rows-s.Nulls)
		case slices.Contains(keys, c.GetName()):
			s.DistinctEstimate = rows - s.Nulls
		default:
			s.DistinctEstimate = (rows - s.Nulls) * 9 / 10
			if strings.HasPrefix(typ, "int") || strings.HasPrefix(typ, "uint") || strings.HasPrefix(typ, "float") || strings.HasPrefix(typ, "double") {
				s.HasRange, s.Min, s.Max = true, 1.25, 4999.5
			}
		}
		out = append(out, s)
	}
	return out
}
