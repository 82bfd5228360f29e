// Package parquet is Ferry's connector for Parquet datasets on a local
// directory or on S3 (any S3-compatible store), one driver over a small
// object-store interface.
//
// URLs:
//
//	file:///abs/dir                               a dataset root on disk
//	s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
//
// Query parameters for both: compression (snappy|zstd|none, default
// snappy) and stale_write_after (a Go duration, default 10m: how long an
// unfinished write's marker protects its parts from cleanup). For s3 also
// endpoint, region (default us-east-1) and path_style (true|false). Any
// other parameter is an error. S3 credentials come from
// driver.Options.Credentials ("access_key_id", "secret_access_key",
// "session_token"), never from the URL; without them the AWS default chain
// (environment, shared config, instance role) is used.
//
// Layout: each table is a folder <root>/<table>/ holding part files
// part-NNNNN-<writeid>.parquet and a manifest _ferry_manifest.json listing
// the current parts. Readers go only by the manifest, so a write (new parts
// under a fresh write id, then the manifest, written atomically) replaces a
// table whole. A folder without a manifest holding other *.parquet files, or
// a single <root>/<table>.parquet file, is read as external data. Keys,
// foreign keys and time columns come from the sidecar <root>/_ferry_graph.json;
// see README.md for the manifest, the cleanup rules and the type mapping.
package parquet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/ferry-ai/ferry/connectors/driver"
	"github.com/ferry-ai/ferry/internal/graph"
)

// URL schemes the openers register.
const (
	FileScheme = "file"
	S3Scheme   = "s3"
)

// Defaults of reads and writes.
const (
	defaultBatchSize    = 65536
	defaultPartBytes    = 128 << 20
	defaultPartRows     = 16 << 20
	defaultRowGroupRows = 1 << 20
	defaultStaleAfter   = 10 * time.Minute
)

// FileOpener opens dataset roots on the local file system (scheme "file").
type FileOpener struct{}

// Open implements driver.Opener.
func (FileOpener) Open(ctx context.Context, u *url.URL, opts driver.Options) (driver.Conn, error) {
	if u.Scheme != FileScheme {
		return nil, fmt.Errorf("parquet: scheme %q, want %q", u.Scheme, FileScheme)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("parquet: file URL has host %q; use file:///abs/dir", u.Host)
	}
	if u.Path == "" || !path.IsAbs(u.Path) {
		return nil, fmt.Errorf("parquet: file URL needs an absolute path (file:///abs/dir)")
	}
	cfg, err := parseConfig(u.Query(), nil)
	if err != nil {
		return nil, err
	}
	c := newConn(fileStore{root: path.Clean(u.Path)}, cfg, opts)
	if err := c.st.Ping(ctx); err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return c, nil
}

type settings struct {
	compression  compress.Compression
	staleAfter   time.Duration
	partBytes    int64
	partRows     int64
	rowGroupRows int64
}

// parseConfig reads the common parameters; extra names parameters the
// caller handles itself.
func parseConfig(q url.Values, extra map[string]bool) (settings, error) {
	cfg := settings{compression: compress.Codecs.Snappy, staleAfter: defaultStaleAfter,
		partBytes: defaultPartBytes, partRows: defaultPartRows, rowGroupRows: defaultRowGroupRows}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch {
		case k == "compression":
			switch strings.ToLower(v) {
			case "snappy":
				cfg.compression = compress.Codecs.Snappy
			case "zstd":
				cfg.compression = compress.Codecs.Zstd
			case "none", "uncompressed":
				cfg.compression = compress.Codecs.Uncompressed
			default:
				return cfg, fmt.Errorf("parquet: compression %q: want snappy, zstd or none", v)
			}
		case k == "stale_write_after":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return cfg, fmt.Errorf("parquet: stale_write_after %q: want a duration such as 10m", v)
			}
			cfg.staleAfter = d
		case extra[k]:
		default:
			return cfg, fmt.Errorf("parquet: unknown URL parameter %q", k)
		}
	}
	return cfg, nil
}

type conn struct {
	st  store
	cfg settings
	mem memory.Allocator
	// graphMu serialises this connection's read-modify-write of the sidecar.
	graphMu sync.Mutex
}

func newConn(st store, cfg settings, opts driver.Options) *conn {
	mem := opts.Allocator
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &conn{st: st, cfg: cfg, mem: mem}
}

// Ping implements driver.Pinger.
func (c *conn) Ping(ctx context.Context) error {
	if err := c.st.Ping(ctx); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	return nil
}

// Close implements driver.Conn.
func (c *conn) Close() error { return c.st.Close() }

// Tables implements driver.Conn: every table folder and root-level
// *.parquet file, with keys and time columns from the sidecar.
func (c *conn) Tables(ctx context.Context) ([]driver.TableInfo, error) {
	objs, dirs, err := c.st.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("parquet: list %s: %w", c.st, err)
	}
	g, err := readGraph(ctx, c.st)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	names := map[string]bool{}
	for _, d := range dirs {
		if !strings.HasPrefix(d, ".") {
			names[d] = true
		}
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Name, parquetExt) && !strings.HasPrefix(o.Name, ".") {
			names[strings.TrimSuffix(o.Name, parquetExt)] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []driver.TableInfo
	for _, name := range sorted {
		src, err := resolve(ctx, c.st, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a folder that holds no table
		}
		if err != nil {
			return nil, fmt.Errorf("parquet: table %q: %w", name, err)
		}
		s, err := c.schemaOf(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("parquet: table %q: %w", name, err)
		}
		out = append(out, tableInfo(name, s, g))
	}
	return out, nil
}

func tableInfo(name string, s *arrow.Schema, g graph.Graph) driver.TableInfo {
	t := graph.Table{Name: name}
	for _, f := range s.Fields() {
		t.Columns = append(t.Columns, graph.Column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable})
	}
	has := func(col string) bool { return len(s.FieldIndices(col)) > 0 }
	if gt, ok := g.Table(name); ok {
		t.PrimaryKey = gt.PrimaryKey
		t.ForeignKeys = gt.ForeignKeys
		if gt.TimeColumn != "" && has(gt.TimeColumn) {
			t.TimeColumn = gt.TimeColumn
		}
	}
	if t.TimeColumn == "" {
		for _, f := range s.Fields() {
			if isTimeType(f.Type) {
				t.TimeColumn = f.Name
				break
			}
		}
	}
	return driver.TableInfo{Table: t, Schema: s}
}

func isTimeType(dt arrow.DataType) bool {
	switch dt.ID() {
	case arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64:
		return true
	}
	return false
}

// schemaOf returns a table's schema: from its manifest, else from the
// footer of its first part.
func (c *conn) schemaOf(ctx context.Context, src *tableSource) (*arrow.Schema, error) {
	if src.manifest != nil {
		return decodeSchema(src.manifest.Schema)
	}
	if len(src.parts) == 0 {
		return nil, fmt.Errorf("no parts: %w", fs.ErrNotExist)
	}
	p, err := c.openPart(ctx, src.parts[0], 0)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.schema, nil
}
