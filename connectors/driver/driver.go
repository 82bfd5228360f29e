// Package driver defines the small interfaces a warehouse driver implements.
// Users do not call drivers directly: they use the portable types of package
// connectors, which add name checks, error mapping and close-safety.
package driver

import (
	"context"
	"net/url"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/internal/graph"
)

// Opener opens a connection for a URL whose scheme it registered.
type Opener interface {
	Open(ctx context.Context, u *url.URL, opts Options) (Conn, error)
}

// Options are passed to every Open.
type Options struct {
	// Allocator allocates the Arrow buffers the driver builds in Go.
	Allocator memory.Allocator
	// Credentials holds secret settings (user, password, keys) by name; drivers
	// never log them and never read them from the URL.
	Credentials map[string]string
}

// ReadRequest asks for a table's rows.
type ReadRequest struct {
	Table string
	// Columns projects the read; nil means every column, in table order.
	Columns []string
	// Limit caps the row count; 0 means no limit.
	Limit int64
	// BatchSize is the target rows per record batch; 0 means the driver's default.
	BatchSize int
	// TimeColumn, Since and Until select rows whose time column lies in
	// [Since, Until); a zero bound is open. TimeColumn is set by the portable
	// layer whenever a bound is. Drivers push the range down where they can
	// and must otherwise filter exactly.
	TimeColumn string
	Since      time.Time
	Until      time.Time
	// OrderBy orders the rows by these columns, ascending with nulls last,
	// and Offset skips the first Offset rows of that order. Over a unique
	// key the order is total, so a read broken mid-table can go on from
	// the row it reached on a new connection. Only a Conn that implements
	// OrderedReader is given them.
	OrderBy []string
	Offset  int64
}

// OrderedReader is implemented by a Conn whose reads honour
// ReadRequest.OrderBy and Offset.
type OrderedReader interface {
	// OrderedReads reports that reads honour OrderBy and Offset.
	OrderedReads() bool
}

// WriteRequest writes a stream of records as a whole table.
type WriteRequest struct {
	Table  string
	Reader array.RecordReader
	// PrimaryKey and ForeignKeys are declared on the new table where the
	// warehouse supports constraints.
	PrimaryKey  []string
	ForeignKeys []graph.ForeignKey
}

// TableInfo is a table's metadata with its Arrow schema.
type TableInfo struct {
	graph.Table
	Schema *arrow.Schema
}

// Conn is a live connection to a warehouse.
type Conn interface {
	// Tables lists the tables with their metadata.
	Tables(ctx context.Context) ([]TableInfo, error)
	// Read streams a table. The caller has checked that the table and columns
	// exist, so names are trusted to exist but must still be quoted.
	Read(ctx context.Context, req ReadRequest) (array.RecordReader, error)
	// Close releases the connection.
	Close() error
}

// Writer is implemented by drivers that can write tables. Write replaces the
// table atomically: a concurrent reader sees the old table or the new one,
// never a mix and never an empty table.
type Writer interface {
	Write(ctx context.Context, req WriteRequest) (rows int64, err error)
}

// Pinger is implemented by drivers that can check their connection cheaply.
type Pinger interface {
	Ping(ctx context.Context) error
}

// TimeColumnComment marks a column as its table's time column when a
// warehouse column comment contains it (COMMENT ON COLUMN t.c IS
// 'ferry:time_column'). Drivers without such a mark take the first
// timestamp or date column.
const TimeColumnComment = "ferry:time_column"
