// Package connectors is Ferry's portable, Arrow-native access to warehouses.
//
// A Conn wraps a driver (one sub-package per warehouse) opened from a URL whose
// scheme selects the driver in a Mux. Conn satisfies Source (list tables, read
// a table as Arrow record batches) and Sink (write an Arrow stream as a table,
// atomically). The portable layer checks names against the warehouse's
// catalogue before a driver sees them, so a missing or hostile name gets a
// clear error that names it and the nearest valid one.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/connectors/driver"
	"github.com/ferry-ai/ferry/internal/graph"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: a table or column does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalidName: a name Ferry refuses to create (quotes, control
	// characters, separators).
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidURL: the connection URL is malformed or names no driver.
	ErrInvalidURL = errors.New("invalid connection URL")
	// ErrInvalidArgument: a read or write option is out of range.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotSupported: the driver cannot do this operation.
	ErrNotSupported = errors.New("not supported")
	// ErrClosed: the connection was closed.
	ErrClosed = errors.New("connection closed")
	// ErrMemoryBudget: a batch exceeded the read's memory budget.
	ErrMemoryBudget = errors.New("memory budget exceeded")
)

// Source lists tables and reads them as Arrow.
type Source interface {
	Tables(ctx context.Context) ([]Table, error)
	Read(ctx context.Context, table string, opts ReadOptions) (array.RecordReader, error)
}

// Sink writes an Arrow stream as a whole table, atomically.
type Sink interface {
	Write(ctx context.Context, table string, r array.RecordReader, opts WriteOptions) (int64, error)
}

// Table is a table's metadata with its Arrow schema.
type Table = driver.TableInfo

// ReadOptions shape a read.
type ReadOptions struct {
	// Columns projects the read; nil means every column.
	Columns []string
	// Limit caps the rows read; 0 means all.
	Limit int64
	// BatchSize is the target rows per batch; 0 means the driver's default.
	BatchSize int
	// Since and Until select rows whose time column lies in [Since, Until);
	// a zero bound is open. A table without a time column refuses a range.
	Since time.Time
	Until time.Time
	// OrderBy reads the rows in the order of these columns (ascending,
	// nulls last) and Offset skips the first Offset rows of it: over a
	// unique key, a read broken mid-table goes on from where it stopped on
	// a new connection (an agent whose credentials were replaced). A
	// warehouse that cannot order its reads refuses them (ErrNotSupported);
	// see CanOrderReads.
	OrderBy []string
	Offset  int64
	// MemoryBudget bounds the bytes of Arrow buffers in one batch; 0 means
	// no budget. Batches are sized to fit it (BatchSize is lowered as
	// needed), a budget too small for one row is refused before the read
	// starts, and a batch that still exceeds it ends the read with
	// ErrMemoryBudget.
	MemoryBudget int64
}

// WriteOptions shape a write.
type WriteOptions struct {
	PrimaryKey  []string
	ForeignKeys []graph.ForeignKey
}

// Options are given to Open.
type Options struct {
	// Allocator for Arrow buffers built in Go; nil means memory.DefaultAllocator.
	Allocator memory.Allocator
	// Credentials by name (user, password, …); never taken from the URL.
	Credentials map[string]string
}

// Mux maps URL schemes to drivers. It is built by the binary that needs it,
// so each binary carries only the drivers it imports.
type Mux struct {
	mu      sync.RWMutex
	openers map[string]driver.Opener
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{openers: map[string]driver.Opener{}} }

// Register adds a driver for a scheme. Registering a scheme twice panics: it is
// a programming error.
func (m *Mux) Register(scheme string, o driver.Opener) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.openers[scheme]; dup {
		panic(fmt.Sprintf("connectors: scheme %q registered twice", scheme))
	}
	m.openers[scheme] = o
}

// Schemes lists the registered schemes, sorted.
func (m *Mux) Schemes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.openers))
	for s := range m.openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens a connection for rawURL.
func (m *Mux) Open(ctx context.Context, rawURL string, opts *Options) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidURL, redactURLError(err))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials must not be in the URL (pass them as secrets)", ErrInvalidURL)
	}
	m.mu.RLock()
	o, ok := m.openers[u.Scheme]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: no driver for scheme %q (have %s)", ErrInvalidURL, u.Scheme, strings.Join(m.Schemes(), ", "))
	}
	dopts := driver.Options{Allocator: memory.DefaultAllocator}
	if opts != nil {
		if opts.Allocator != nil {
			dopts.Allocator = opts.Allocator
		}
		dopts.Credentials = opts.Credentials
	}
	d, err := o.Open(ctx, u, dopts)
	if err != nil {
		return nil, fmt.Errorf("open %s connection: %w", u.Scheme, err)
	}
	return &Conn{drv: d, scheme: u.Scheme, url: u.String()}, nil
}

func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "unparsable"
}

// Conn is a portable connection to one warehouse. It is safe for concurrent use.
type Conn struct {
	drv    driver.Conn
	scheme string
	url    string

	mu     sync.Mutex
	closed bool
}

var (
	_ Source = (*Conn)(nil)
	_ Sink   = (*Conn)(nil)
)

// Scheme returns the URL scheme the connection was opened with.
func (c *Conn) Scheme() string { return c.scheme }

func (c *Conn) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return nil
}

// Tables lists the warehouse's tables with schemas, keys and time columns.
func (c *Conn) Tables(ctx context.Context) ([]Table, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ts, err := c.drv.Tables(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return ts, nil
}

// Table returns one table's metadata, or an error wrapping ErrNotFound that
// names the nearest existing table.
func (c *Conn) Table(ctx context.Context, name string) (Table, error) {
	ts, err := c.Tables(ctx)
	if err != nil {
		return Table{}, err
	}
	return FindTable(ts, name)
}

// FindTable returns the named table from ts, or a not-found error naming the
// nearest one.
func FindTable(ts []Table, name string) (Table, error) {
	names := make([]string, len(ts))
	for i, t := range ts {
		if t.Name == name {
			return t, nil
		}
		names[i] = t.Name
	}
	return Table{}, notFound(&graph.NotFoundError{Kind: "table", Name: name, Nearest: graph.Nearest(name, names)})
}

type notFoundErr struct{ *graph.NotFoundError }

func (e notFoundErr) Is(target error) bool { return target == ErrNotFound }
func (e notFoundErr) Unwrap() error        { return e.NotFoundError }

func notFound(e *graph.NotFoundError) error { return notFoundErr{e} }

// Read streams a table as Arrow record batches. The caller must Release the
// reader.
func (c *Conn) Read(ctx context.Context, table string, opts ReadOptions) (array.RecordReader, error) {
	t, err := c.Table(ctx, table)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("read %q: limit %d is negative: %w", table, opts.Limit, ErrInvalidArgument)
	}
	cols := opts.Columns
	for _, col := range cols {
		if _, ok := t.Column(col); !ok {
			return nil, fmt.Errorf("read: %w", notFound(&graph.NotFoundError{
				Kind: "column", Name: col, Table: table, Nearest: graph.Nearest(col, t.ColumnNames()),
			}))
		}
	}
	req := driver.ReadRequest{Table: table, Columns: cols, Limit: opts.Limit, BatchSize: opts.BatchSize, Since: opts.Since, Until: opts.Until}
	if len(opts.OrderBy) > 0 || opts.Offset != 0 {
		if !c.CanOrderReads() {
			return nil, fmt.Errorf("read %q: ordered reads on %s: %w", table, c.scheme, ErrNotSupported)
		}
		if opts.Offset < 0 || len(opts.OrderBy) == 0 {
			return nil, fmt.Errorf("read %q: offset %d needs a non-negative offset and an order: %w", table, opts.Offset, ErrInvalidArgument)
		}
		for _, col := range opts.OrderBy {
			if _, ok := t.Column(col); !ok {
				return nil, fmt.Errorf("read: order by: %w", notFound(&graph.NotFoundError{
					Kind: "column", Name: col, Table: table, Nearest: graph.Nearest(col, t.ColumnNames()),
				}))
			}
		}
		req.OrderBy, req.Offset = opts.OrderBy, opts.Offset
	}
	if opts.MemoryBudget < 0 || opts.BatchSize < 0 {
		return nil, fmt.Errorf("read %q: memory budget %d and batch size %d must not be negative: %w", table, opts.MemoryBudget, opts.BatchSize, ErrInvalidArgument)
	}
	if opts.MemoryBudget > 0 {
		size, err := budgetBatchSize(t, cols, opts.MemoryBudget, opts.BatchSize)
		if err != nil {
			return nil, fmt.Errorf("read %q: %w", table, err)
		}
		req.BatchSize = size
	}
	if !opts.Since.IsZero() || !opts.Until.IsZero() {
		if t.TimeColumn == "" {
			return nil, fmt.Errorf("read %q: a time range needs a time column, and the table has none: %w", table, ErrNotSupported)
		}
		if !opts.Since.IsZero() && !opts.Until.IsZero() && !opts.Since.Before(opts.Until) {
			return nil, fmt.Errorf("read %q: time range [%s, %s) is empty: %w", table, opts.Since.Format(time.RFC3339Nano), opts.Until.Format(time.RFC3339Nano), ErrInvalidArgument)
		}
		req.TimeColumn = t.TimeColumn
	}
	r, err := c.drv.Read(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", table, err)
	}
	if opts.MemoryBudget > 0 {
		return &budgetReader{RecordReader: r, table: table, budget: opts.MemoryBudget}, nil
	}
	return r, nil
}

// CanOrderReads reports whether reads honour ReadOptions.OrderBy and
// Offset (and so can go on after a broken connection).
func (c *Conn) CanOrderReads() bool {
	o, ok := c.drv.(driver.OrderedReader)
	return ok && o.OrderedReads()
}

// Write replaces (or creates) table with the records of r, atomically. It
// returns the number of rows written. r is consumed but not released.
func (c *Conn) Write(ctx context.Context, table string, r array.RecordReader, opts WriteOptions) (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	if err := ValidateName(table); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	for _, f := range r.Schema().Fields() {
		if err := ValidateName(f.Name); err != nil {
			return 0, fmt.Errorf("write %q: column: %w", table, err)
		}
	}
	w, ok := c.drv.(driver.Writer)
	if !ok {
		return 0, fmt.Errorf("write %q: %s: %w", table, c.scheme, ErrNotSupported)
	}
	n, err := w.Write(ctx, driver.WriteRequest{Table: table, Reader: r, PrimaryKey: opts.PrimaryKey, ForeignKeys: opts.ForeignKeys})
	if err != nil {
		return n, fmt.Errorf("write %q: %w", table, err)
	}
	return n, nil
}

// URL returns the URL the connection was opened with. It holds no secret:
// Open refuses URLs with credentials.
func (c *Conn) URL() string { return c.url }

// Ping checks the connection where the driver can.
func (c *Conn) Ping(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	if p, ok := c.drv.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	_, err := c.drv.Tables(ctx)
	return err
}

// Close closes the connection; closing twice is safe.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	return c.drv.Close()
}

// ValidateName checks a table or column name Ferry is asked to create. Names
// are letters (any script), digits, '_' and '$', not starting with a digit, at
// most 128 characters; anything else (quotes, semicolons, spaces, dots,
// control characters) is refused with ErrInvalidName. Reads accept any name
// that exists in the warehouse, since they are checked against its catalogue.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	if len([]rune(name)) > 128 {
		return fmt.Errorf("%w: %q is longer than 128 characters", ErrInvalidName, name)
	}
	for i, r := range name {
		ok := unicode.IsLetter(r) || r == '_' || (i > 0 && (unicode.IsDigit(r) || r == '$'))
		if !ok {
			return fmt.Errorf("%w: %q has %q at byte %d (allowed: letters, digits, '_', '$'; not starting with a digit)", ErrInvalidName, name, r, i)
		}
	}
	return nil
}

// SchemaColumns turns an Arrow schema into graph columns.
func SchemaColumns(s *arrow.Schema) []graph.Column {
	cols := make([]graph.Column, s.NumFields())
	for i, f := range s.Fields() {
		cols[i] = graph.Column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable}
	}
	return cols
}

// Graph returns the metadata of ts as a graph.
func Graph(ts []Table) graph.Graph {
	g := graph.Graph{Tables: make([]graph.Table, len(ts))}
	for i, t := range ts {
		g.Tables[i] = t.Table
		g.Tables[i].Columns = slices.Clone(t.Columns)
	}
	return g
}
