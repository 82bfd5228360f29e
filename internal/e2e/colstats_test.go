//go:build duckdb_arrow

package e2e

import (
	"database/sql"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/demodata"
	"github.com/ferry-ai/ferry/internal/graph"
)

// trueStats are a column's statistics as DuckDB computes them.
type trueStats struct {
	rows, nulls, distinct int64
	min, max              sql.NullFloat64 // of a numeric column
}

// columnTruth computes the statistics of table.column in the DuckDB
// warehouse at path (opened read-only); min and max only when numeric.
func columnTruth(t *testing.T, path, table, column string, numeric bool) trueStats {
	t.Helper()
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s trueStats
	q := fmt.Sprintf(`SELECT count(*), count(*) - count(%[1]q), count(DISTINCT %[1]q) FROM %[2]q`, column, table)
	if err := db.QueryRow(q).Scan(&s.rows, &s.nulls, &s.distinct); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if numeric {
		q := fmt.Sprintf(`SELECT min(%[1]q)::DOUBLE, max(%[1]q)::DOUBLE FROM %[2]q`, column, table)
		if err := db.QueryRow(q).Scan(&s.min, &s.max); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return s
}

// numericType reports whether the agent keeps a range for an Arrow type.
func numericType(typ string) bool {
	for _, p := range []string{"int", "uint", "float", "double", "decimal"} {
		if len(typ) >= len(p) && typ[:len(p)] == p {
			return true
		}
	}
	return false
}

// checkTableStats checks the column statistics of every table a job read
// against what DuckDB computes on the warehouse at path: null counts exact,
// null fractions in [0, 1] and equal to nulls/rows, distinct estimates at
// most the non-null values and within 4% of the exact count (HyperLogLog's
// error is about 0.8%), a range exactly the column's minimum and maximum for
// each numeric non-key column and none for any other column. It returns the
// ranges reported, by "table.column".
func checkTableStats(t *testing.T, path string, d *api.JobDetail) map[string][2]float64 {
	t.Helper()
	ranges := map[string][2]float64{}
	if len(d.TableStats) == 0 {
		t.Fatal("the job reported no table statistics")
	}
	for _, ts := range d.TableStats {
		var tbl graph.Table
		for _, gt := range demodata.Schemas() {
			if gt.Name == ts.Table {
				tbl = gt
			}
		}
		keys := slices.Clone(tbl.PrimaryKey)
		for _, fk := range tbl.ForeignKeys {
			keys = append(keys, fk.Columns...)
		}
		for _, c := range ts.Columns {
			name := ts.Table + "." + c.Name
			s := c.Stats
			if s == nil {
				t.Errorf("%s: no statistics", name)
				continue
			}
			ranged := numericType(c.Type) && !slices.Contains(keys, c.Name)
			want := columnTruth(t, path, ts.Table, c.Name, ranged)
			if want.rows != ts.Rows {
				t.Errorf("%s: the table has %d rows, the job read %d", name, want.rows, ts.Rows)
			}
			if s.Nulls != want.nulls {
				t.Errorf("%s: %d nulls reported, %d in the warehouse", name, s.Nulls, want.nulls)
			}
			if s.NullFraction < 0 || s.NullFraction > 1 || (ts.Rows > 0 && math.Abs(s.NullFraction-float64(want.nulls)/float64(ts.Rows)) > 1e-12) {
				t.Errorf("%s: null fraction %v, want %d/%d", name, s.NullFraction, want.nulls, ts.Rows)
			}
			if s.DistinctEstimate > ts.Rows-s.Nulls || s.DistinctEstimate < 0 {
				t.Errorf("%s: %d distinct estimated of %d non-null values", name, s.DistinctEstimate, ts.Rows-s.Nulls)
			}
			if off := math.Abs(float64(s.DistinctEstimate-want.distinct)) / math.Max(1, float64(want.distinct)); off > 0.04 {
				t.Errorf("%s: %d distinct estimated, %d exact (%.1f%% off)", name, s.DistinctEstimate, want.distinct, 100*off)
			}
			switch {
			case !ranged && (s.Min != nil || s.Max != nil):
				t.Errorf("%s (%s, key %v): a range is reported for a column that must have none", name, c.Type, slices.Contains(keys, c.Name))
			case ranged && want.min.Valid && (s.Min == nil || s.Max == nil):
				t.Errorf("%s: no range reported; the warehouse's is [%v, %v]", name, want.min.Float64, want.max.Float64)
			case ranged && want.min.Valid && (*s.Min != want.min.Float64 || *s.Max != want.max.Float64):
				t.Errorf("%s: range [%v, %v] reported, the warehouse's is [%v, %v]", name, *s.Min, *s.Max, want.min.Float64, want.max.Float64)
			case ranged && want.min.Valid:
				ranges[name] = [2]float64{*s.Min, *s.Max}
			}
		}
	}
	return ranges
}
