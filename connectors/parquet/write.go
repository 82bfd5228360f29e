package parquet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/ferry-ai/ferry/connectors/driver"
	"github.com/ferry-ai/ferry/internal/graph"
)

func (c *conn) writerProps() (*parquet.WriterProperties, pqarrow.ArrowWriterProperties) {
	props := parquet.NewWriterProperties(
		parquet.WithVersion(parquet.V2_LATEST),
		parquet.WithCompression(c.cfg.compression),
		parquet.WithStats(true),
		parquet.WithDictionaryDefault(true),
		parquet.WithMaxRowGroupLength(c.cfg.rowGroupRows),
	)
	return props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
}

// writeSchema returns the schema stored for an input schema: dictionary
// columns are stored as their values. A type Parquet cannot hold is refused
// with an error naming the column.
func (c *conn) writeSchema(in *arrow.Schema) (*arrow.Schema, error) {
	props, aprops := c.writerProps()
	fields := make([]arrow.Field, in.NumFields())
	for i, f := range in.Fields() {
		switch dt := f.Type.(type) {
		case *arrow.DictionaryType:
			f.Type = dt.ValueType
		case *arrow.RunEndEncodedType:
			f.Type = dt.Encoded()
		}
		if err := toParquet(f, props, aprops); err != nil {
			return nil, fmt.Errorf("column %q: type %s cannot be stored in Parquet: %w", f.Name, f.Type, err)
		}
		fields[i] = f
	}
	return arrow.NewSchema(fields, nil), nil
}

// toParquet checks that one field maps to Parquet. pqarrow panics on some
// types (a decimal with negative scale); that becomes an error too.
func toParquet(f arrow.Field, props *parquet.WriterProperties, aprops pqarrow.ArrowWriterProperties) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	_, err = pqarrow.ToParquet(arrow.NewSchema([]arrow.Field{f}, nil), props, aprops)
	return err
}

// normalize turns a batch into the stored schema (unpacking dictionaries
// and run-end encoded columns).
// The result must be released.
func (c *conn) normalize(ctx context.Context, s *arrow.Schema, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, rec.NumCols())
	var owned []arrow.Array
	defer func() {
		for _, a := range owned {
			a.Release()
		}
	}()
	for i := range cols {
		col := rec.Column(i)
		switch col.DataType().ID() {
		case arrow.DICTIONARY:
			v, err := compute.CastArray(compute.WithAllocator(ctx, c.mem), col, compute.SafeCastOptions(s.Field(i).Type))
			if err != nil {
				return nil, fmt.Errorf("column %q: unpack dictionary: %w", s.Field(i).Name, err)
			}
			owned = append(owned, v)
			col = v
		case arrow.RUN_END_ENCODED:
			d, err := compute.RunEndDecode(compute.WithAllocator(ctx, c.mem), compute.NewDatumWithoutOwning(col))
			if err != nil {
				return nil, fmt.Errorf("column %q: decode runs: %w", s.Field(i).Name, err)
			}
			v := d.(*compute.ArrayDatum).MakeArray()
			d.Release()
			owned = append(owned, v)
			col = v
		}
		if err := validUTF8(col); err != nil {
			return nil, fmt.Errorf("column %q: %w", s.Field(i).Name, err)
		}
		cols[i] = col
	}
	return array.NewRecordBatch(s, cols, rec.NumRows()), nil
}

// validUTF8 refuses a string column holding invalid UTF-8: Parquet's
// STRING type promises UTF-8, and other readers would fail on it later.
func validUTF8(a arrow.Array) error {
	switch a := a.(type) {
	case *array.String:
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) && !utf8.ValidString(a.Value(i)) {
				return fmt.Errorf("row %d of the batch is not valid UTF-8", i)
			}
		}
	case *array.LargeString:
		for i := 0; i < a.Len(); i++ {
			if a.IsValid(i) && !utf8.ValidString(a.Value(i)) {
				return fmt.Errorf("row %d of the batch is not valid UTF-8", i)
			}
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}

// partWriter writes one part file.
type partWriter struct {
	key  string
	up   uploader
	cw   *countingWriter
	fw   *pqarrow.FileWriter
	rows int64
}

func (c *conn) newPart(ctx context.Context, key string, s *arrow.Schema) (*partWriter, error) {
	up, err := c.st.Create(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("create part %s: %w", key, err)
	}
	cw := &countingWriter{w: up}
	props, aprops := c.writerProps()
	fw, err := pqarrow.NewFileWriter(s, cw, props, aprops)
	if err != nil {
		up.Abort()
		return nil, fmt.Errorf("part %s: %w", key, err)
	}
	return &partWriter{key: key, up: up, cw: cw, fw: fw}, nil
}

func (p *partWriter) abort() {
	p.fw.Close()
	p.up.Abort()
}

func (p *partWriter) finish() (int64, error) {
	if err := p.fw.Close(); err != nil {
		p.up.Abort()
		return 0, fmt.Errorf("finish part %s: %w", p.key, err)
	}
	if err := p.up.Close(); err != nil {
		return 0, fmt.Errorf("upload part %s: %w", p.key, err)
	}
	return p.cw.n, nil
}

func (p *partWriter) size() int64 { return p.cw.n + p.fw.RowGroupTotalBytesWritten() }

// Write implements driver.Writer. It writes parts under a fresh write id
// (with a marker object that protects them from other writers' cleanup),
// then the manifest in one atomic put, then updates the graph sidecar and
// removes unreferenced parts. A failed write deletes its own parts; the
// previous manifest, and so the previous table, is untouched.
func (c *conn) Write(ctx context.Context, req driver.WriteRequest) (rows int64, err error) {
	s, err := c.writeSchema(req.Reader.Schema())
	if err != nil {
		return 0, fmt.Errorf("parquet: %w", err)
	}
	schemaB64, err := encodeSchema(s)
	if err != nil {
		return 0, fmt.Errorf("parquet: %w", err)
	}
	table := req.Table
	wid := newWriteID()
	marker := join(table, markerPrefix+wid)
	if err := c.st.Put(ctx, marker, []byte(wid)); err != nil {
		return 0, fmt.Errorf("parquet: write %s: start marker: %w", c.st, err)
	}
	bg := context.WithoutCancel(ctx)
	defer c.st.Delete(bg, marker)

	var (
		parts     []Part
		pw        *partWriter
		committed bool
	)
	defer func() {
		if committed {
			return
		}
		if pw != nil {
			pw.abort()
		}
		keys := make([]string, len(parts))
		for i, p := range parts {
			keys[i] = join(table, p.Path)
		}
		c.st.Delete(bg, keys...)
	}()
	closePart := func() error {
		n, err := pw.finish()
		if err != nil {
			pw = nil
			return err
		}
		parts = append(parts, Part{Path: pw.key[len(table)+1:], Size: n, Rows: pw.rows})
		pw = nil
		return nil
	}
	openPart := func() error {
		if len(parts) > 0 {
			// Refresh the marker: its age tells other writers this write is alive.
			if err := c.st.Put(ctx, marker, []byte(wid)); err != nil {
				return fmt.Errorf("refresh marker: %w", err)
			}
		}
		p, err := c.newPart(ctx, join(table, partName(len(parts), wid)), s)
		pw = p
		return err
	}
	// Small input batches (a warehouse may send 2,048 rows at a time) are
	// coalesced into row groups of at least minRowGroupRows: a row group per
	// tiny batch would cost readers a request per column per batch.
	var (
		pending     []arrow.RecordBatch
		pendingRows int64
	)
	defer func() {
		for _, r := range pending {
			r.Release()
		}
	}()
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		rec, err := concatRecords(c.mem, s, pending)
		for _, r := range pending {
			r.Release()
		}
		pending, pendingRows = pending[:0], 0
		if err != nil {
			return err
		}
		if pw == nil {
			if err := openPart(); err != nil {
				rec.Release()
				return err
			}
		}
		err = pw.fw.Write(rec)
		n := rec.NumRows()
		rec.Release()
		if err != nil {
			return fmt.Errorf("write %s: %w", pw.key, err)
		}
		pw.rows += n
		rows += n
		if pw.size() >= c.cfg.partBytes || pw.rows >= c.cfg.partRows {
			return closePart()
		}
		return nil
	}
	for req.Reader.Next() {
		if err := ctx.Err(); err != nil {
			return rows, fmt.Errorf("parquet: %w", err)
		}
		rec, err := c.normalize(ctx, s, req.Reader.RecordBatch())
		if err != nil {
			return rows, fmt.Errorf("parquet: %w", err)
		}
		pending = append(pending, rec)
		pendingRows += rec.NumRows()
		if pendingRows >= minRowGroupRows {
			if err := flush(); err != nil {
				return rows, fmt.Errorf("parquet: %w", err)
			}
		}
	}
	if err := req.Reader.Err(); err != nil {
		return rows, fmt.Errorf("parquet: input stream: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return rows, fmt.Errorf("parquet: %w", err)
	}
	if err := flush(); err != nil {
		return rows, fmt.Errorf("parquet: %w", err)
	}
	if pw == nil && len(parts) == 0 {
		if err := openPart(); err != nil { // an empty table still has a schema
			return rows, fmt.Errorf("parquet: %w", err)
		}
	}
	if pw != nil {
		if err := closePart(); err != nil {
			return rows, fmt.Errorf("parquet: %w", err)
		}
	}

	m := Manifest{Format: ManifestFormat, Table: table, WriteID: wid, Written: time.Now().UTC(), Rows: rows,
		Schema: schemaB64, Parts: parts}
	for _, f := range s.Fields() {
		m.Columns = append(m.Columns, graph.Column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable})
	}
	if old, err := readManifest(ctx, c.st, table); err == nil {
		m.Previous = old.WriteID
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return rows, fmt.Errorf("parquet: manifest: %w", err)
	}
	if err := c.st.Put(ctx, join(table, ManifestName), raw); err != nil {
		return rows, fmt.Errorf("parquet: commit manifest: %w", err)
	}
	committed = true
	gerr := c.updateGraph(bg, table, s, req)
	cerr := c.cleanup(bg, table, wid)
	if err := errors.Join(gerr, cerr); err != nil {
		return rows, fmt.Errorf("parquet: table written, but: %w", err)
	}
	return rows, nil
}

// updateGraph records the written table's keys in the sidecar: a
// read-modify-write, serialised within this connection; across processes
// the last writer wins.
func (c *conn) updateGraph(ctx context.Context, table string, s *arrow.Schema, req driver.WriteRequest) error {
	c.graphMu.Lock()
	defer c.graphMu.Unlock()
	g, err := readGraph(ctx, c.st)
	if err != nil {
		return err
	}
	t, ok := g.Table(table)
	if !ok {
		if len(req.PrimaryKey) == 0 && len(req.ForeignKeys) == 0 {
			return nil
		}
		g.Tables = append(g.Tables, graph.Table{Name: table})
		t = &g.Tables[len(g.Tables)-1]
	}
	t.PrimaryKey = req.PrimaryKey
	t.ForeignKeys = req.ForeignKeys
	if t.TimeColumn != "" && len(s.FieldIndices(t.TimeColumn)) == 0 {
		t.TimeColumn = ""
	}
	t.Columns = nil
	for _, f := range s.Fields() {
		t.Columns = append(t.Columns, graph.Column{Name: f.Name, Type: f.Type.String(), Nullable: f.Nullable})
	}
	sort.Slice(g.Tables, func(i, j int) bool { return g.Tables[i].Name < g.Tables[j].Name })
	raw, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	if err := c.st.Put(ctx, GraphName, raw); err != nil {
		return fmt.Errorf("update %s: %w", GraphName, err)
	}
	return nil
}

// cleanup deletes the table folder's debris after a commit. It lists first
// and reads the current manifest second, so a part whose writer finished
// (marker gone) before the listing is judged against a manifest at least
// as new as that writer's. It keeps the parts of the current manifest and
// of the one it replaced (in-flight readers of that version finish), and
// the parts of writes whose marker is younger than stale_write_after;
// everything else Ferry wrote (parts, stale markers, temporary files) goes.
func (c *conn) cleanup(ctx context.Context, table, self string) error {
	objs, _, err := c.st.List(ctx, table)
	if err != nil {
		return fmt.Errorf("cleanup list: %w", err)
	}
	cur, err := readManifest(ctx, c.st, table)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	markers := map[string]time.Time{}
	var now time.Time
	for _, o := range objs {
		if w, ok := strings.CutPrefix(o.Name, markerPrefix); ok {
			markers[w] = o.ModTime
		}
		if o.ModTime.After(now) {
			now = o.ModTime
		}
	}
	if t, ok := markers[self]; ok {
		now = t
	}
	live := func(w string) bool {
		t, ok := markers[w]
		return ok && w != self && now.Sub(t) < c.cfg.staleAfter
	}
	var del []string
	for _, o := range objs {
		switch {
		case partRE.MatchString(o.Name):
			w := partRE.FindStringSubmatch(o.Name)[2]
			if w == cur.WriteID || w == cur.Previous || live(w) {
				continue
			}
			del = append(del, join(table, o.Name))
		case strings.HasPrefix(o.Name, markerPrefix):
			w := strings.TrimPrefix(o.Name, markerPrefix)
			if w != self && !live(w) {
				del = append(del, join(table, o.Name))
			}
		case strings.HasPrefix(o.Name, ".") && strings.Contains(o.Name, ".tmp-") && now.Sub(o.ModTime) >= c.cfg.staleAfter:
			del = append(del, join(table, o.Name))
		}
	}
	if err := c.st.Delete(ctx, del...); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	return nil
}

// minRowGroupRows is the fewest rows a row group gets unless the table ends
// first.
const minRowGroupRows = 64 << 10

// concatRecords joins batches of schema s into one; a single batch is
// returned retained.
func concatRecords(mem memory.Allocator, s *arrow.Schema, recs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	if len(recs) == 1 {
		recs[0].Retain()
		return recs[0], nil
	}
	cols := make([]arrow.Array, s.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	var n int64
	for _, r := range recs {
		n += r.NumRows()
	}
	parts := make([]arrow.Array, len(recs))
	for i := range cols {
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		c, err := array.Concatenate(parts, mem)
		if err != nil {
			return nil, fmt.Errorf("coalesce column %q: %w", s.Field(i).Name, err)
		}
		cols[i] = c
	}
	return array.NewRecordBatch(s, cols, n), nil
}
