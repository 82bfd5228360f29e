package controlplane

import (
	"math"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
)

// columnStats returns the statistics an agent reported for the columns of
// a table read, by column name, checked against the table's rows: counts
// within [0, rows], a null fraction within [0, 1] (else nulls/rows), a
// range only when both ends are finite numbers in order. A column reported twice keeps its first
// statistics.
func columnStats(t *agentapi.TableStats) map[string]*api.ColumnStats {
	out := make(map[string]*api.ColumnStats, len(t.GetColumnStats()))
	rows := max(t.GetRows(), 0)
	for _, c := range t.GetColumnStats() {
		if _, seen := out[c.GetName()]; seen {
			continue
		}
		nulls := min(max(c.GetNulls(), 0), rows)
		s := &api.ColumnStats{
			Nulls:            nulls,
			DistinctEstimate: min(max(c.GetDistinctEstimate(), 0), rows-nulls),
		}
		switch f := c.GetNullFraction(); {
		case f >= 0 && f <= 1:
			s.NullFraction = f
		case rows > 0: // NaN or out of bounds: the counts say what it is
			s.NullFraction = float64(nulls) / float64(rows)
		}
		if lo, hi := c.GetMin(), c.GetMax(); c.GetHasRange() && !math.IsInf(lo, 0) && !math.IsInf(hi, 0) && lo <= hi {
			s.Min, s.Max = &lo, &hi
		}
		out[c.GetName()] = s
	}
	return out
}
