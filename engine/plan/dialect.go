package plan

import (
	"strconv"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/engine/pql"
)

// Dialect is every difference between the SQL dialects a plan renders to.
// The rest of the rendered SQL is common to DuckDB and PostgreSQL: CTEs with
// column lists, VALUES, INTERVAL 'n unit' arithmetic on timestamps,
// aggregates with FILTER (WHERE ...), correlated scalar subqueries,
// EXISTS, LIKE, strpos, starts_with, right and length.
type Dialect interface {
	// Name is "duckdb" or "postgres".
	Name() string
	// Double is the 64-bit float type.
	Double() string
	// Text is the variable-length string type.
	Text() string
	// Seconds returns the seconds from b to a (a - b) as a double.
	Seconds(a, b string) string
}

// DuckDB renders for DuckDB (the engine's in-memory database).
type DuckDB struct{}

// Name returns "duckdb".
func (DuckDB) Name() string { return "duckdb" }

// Double returns DOUBLE.
func (DuckDB) Double() string { return "DOUBLE" }

// Text returns VARCHAR.
func (DuckDB) Text() string { return "VARCHAR" }

// Seconds uses epoch(), which takes TIMESTAMP and TIMESTAMPTZ alike.
func (DuckDB) Seconds(a, b string) string {
	return "(epoch(" + a + ") - epoch(" + b + "))"
}

// Postgres renders for PostgreSQL (and the warehouses that speak its SQL).
// Timestamps with and without time zone are compared in the session's time
// zone: sessions that run a plan use UTC.
type Postgres struct{}

// Name returns "postgres".
func (Postgres) Name() string { return "postgres" }

// Double returns DOUBLE PRECISION.
func (Postgres) Double() string { return "DOUBLE PRECISION" }

// Text returns TEXT.
func (Postgres) Text() string { return "TEXT" }

// Seconds extracts the epoch of the interval a - b.
func (Postgres) Seconds(a, b string) string {
	return "CAST(EXTRACT(EPOCH FROM (" + a + " - " + b + ")) AS DOUBLE PRECISION)"
}

// quote renders an identifier in double quotes, doubling any quote inside;
// both dialects read it the same way.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// col renders alias.column.
func col(alias, name string) string { return alias + "." + quote(name) }

// str renders a string constant.
func str(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// timestamp renders a time as a TIMESTAMP constant (UTC, microseconds).
func timestamp(t time.Time) string {
	return "TIMESTAMP " + str(t.UTC().Format("2006-01-02 15:04:05.999999"))
}

// shift renders expr moved by n units: expr + INTERVAL 'n unit'.
func shift(expr string, n int, u pql.Unit) string {
	if n == 0 {
		return expr
	}
	unit := "days"
	switch u {
	case pql.Hours:
		unit = "hours"
	case pql.Weeks:
		n *= 7
	case pql.Months:
		unit = "months"
	}
	return "(" + expr + " + INTERVAL " + str(strconv.Itoa(n)+" "+unit) + ")"
}

// number renders a float constant exactly.
func number(f float64) string {
	if f == float64(int64(f)) && f < 1e15 && f > -1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
