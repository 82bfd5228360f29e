package main

import (
	"context"
	"errors"
	"time"

	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/cli"
)

func runTables(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry tables", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON metadata")
	creds := fs.String("credentials", "", "YAML `file` of warehouse credentials (user, password, …)")
	pos, err := parseMixed(fs, args, "ferry tables [--json] [--credentials FILE] <url>", stdout)
	if err != nil {
		return done(err)
	}
	if len(pos) != 1 {
		return cli.Usagef("ferry tables takes one warehouse URL")
	}
	c, err := openWarehouseWith(ctx, pos[0], *creds)
	if err != nil {
		return err
	}
	defer c.Close()
	ts, err := c.Tables(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		g := connectors.Graph(ts)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	for i, t := range ts {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s\n", t.Name)
		pk := map[string]bool{}
		for _, k := range t.PrimaryKey {
			pk[k] = true
		}
		refs := map[string]string{}
		for _, fk := range t.ForeignKeys {
			for j, c := range fk.Columns {
				ref := fk.RefTable
				if j < len(fk.RefColumns) {
					ref += "." + fk.RefColumns[j]
				}
				refs[c] = ref
			}
		}
		for _, c := range t.Columns {
			var notes []string
			if pk[c.Name] {
				notes = append(notes, "primary key")
			}
			if r, ok := refs[c.Name]; ok {
				notes = append(notes, "-> "+r)
			}
			if c.Name == t.TimeColumn {
				notes = append(notes, "time column")
			}
			null := "not null"
			if c.Nullable {
				null = "null"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Name, c.Type, null, strings.Join(notes, ", "))
		}
	}
	return tw.Flush()
}

func runRead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry read", flag.ContinueOnError)
	columns := fs.String("columns", "", "comma-separated columns to read (default all)")
	limit := fs.Int64("limit", 0, "read at most N rows (0: all)")
	format := fs.String("format", "csv", "output format: csv, jsonl, arrow (IPC stream) or parquet")
	since := fs.String("since", "", "only rows whose time column is at or after `T` (RFC 3339 or YYYY-MM-DD, UTC)")
	until := fs.String("until", "", "only rows whose time column is before `T` (RFC 3339 or YYYY-MM-DD, UTC)")
	creds := fs.String("credentials", "", "YAML `file` of warehouse credentials (user, password, …)")
	const synopsis = "ferry read <url> <table> [--columns a,b] [--since T] [--until T] [--limit N] [--format csv|jsonl|arrow|parquet]"
	pos, err := parseMixed(fs, args, synopsis, stdout)
	if err != nil {
		return done(err)
	}
	if len(pos) != 2 {
		return cli.Usagef("usage: %s", synopsis)
	}
	if *limit < 0 {
		return cli.Usagef("--limit %d must not be negative", *limit)
	}
	switch *format {
	case "csv", "jsonl", "arrow", "parquet":
	default:
		return cli.Usagef("--format %q: want csv, jsonl, arrow or parquet", *format)
	}
	opts := connectors.ReadOptions{Limit: *limit}
	if opts.Since, err = parseTime("--since", *since); err != nil {
		return err
	}
	if opts.Until, err = parseTime("--until", *until); err != nil {
		return err
	}
	if *columns != "" {
		opts.Columns = strings.Split(*columns, ",")
	}
	c, err := openWarehouseWith(ctx, pos[0], *creds)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.Read(ctx, pos[1], opts)
	if err != nil {
		if errors.Is(err, connectors.ErrNotSupported) {
			return cli.Usage(err)
		}
		return err
	}
	defer r.Release()
	switch *format {
	case "csv":
		return writeCSV(stdout, r)
	case "jsonl":
		return writeJSONL(stdout, r)
	case "arrow":
		return writeArrow(stdout, r)
	default:
		return writeParquet(stdout, r)
	}
}

// parseTime reads a --since/--until value: RFC 3339, or a date (UTC).
func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, cli.Usagef("%s %q: want RFC 3339 (2025-01-31T08:00:00Z) or a date (2025-01-31)", flag, v)
}

// writeArrow writes the records as an Arrow IPC stream.
func writeArrow(w io.Writer, r array.RecordReader) error {
	iw := ipc.NewWriter(w, ipc.WithSchema(r.Schema()))
	for r.Next() {
		if err := iw.Write(r.RecordBatch()); err != nil {
			iw.Close()
			return fmt.Errorf("write Arrow stream: %w", err)
		}
	}
	if err := r.Err(); err != nil {
		iw.Close()
		return err
	}
	return iw.Close()
}

// writeParquet writes the records as one Parquet file (Zstd, statistics on).
func writeParquet(w io.Writer, r array.RecordReader) error {
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithStats(true))
	pw, err := pqarrow.NewFileWriter(r.Schema(), nopCloser{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return fmt.Errorf("write Parquet: %w", err)
	}
	for r.Next() {
		if err := pw.WriteBuffered(r.RecordBatch()); err != nil {
			pw.Close()
			return fmt.Errorf("write Parquet: %w", err)
		}
	}
	if err := r.Err(); err != nil {
		pw.Close()
		return err
	}
	return pw.Close()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func writeCSV(w io.Writer, r array.RecordReader) error {
	cw := csv.NewWriter(w)
	header := make([]string, r.Schema().NumFields())
	for i, f := range r.Schema().Fields() {
		header[i] = f.Name
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	row := make([]string, len(header))
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			for j := range row {
				row[j] = cell(rec.Column(j), i)
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return r.Err()
}

func cell(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return ""
	}
	if ts, ok := a.(*array.Timestamp); ok {
		unit := ts.DataType().(*arrow.TimestampType).Unit
		return ts.Value(i).ToTime(unit).UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	}
	return a.ValueStr(i)
}

func writeJSONL(w io.Writer, r array.RecordReader) error {
	enc := json.NewEncoder(w)
	fields := r.Schema().Fields()
	obj := make(map[string]any, len(fields))
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			for j, f := range fields {
				col := rec.Column(j)
				if _, ok := col.(*array.Timestamp); ok && !col.IsNull(i) {
					obj[f.Name] = cell(col, i)
					continue
				}
				obj[f.Name] = col.GetOneForMarshal(i)
			}
			if err := enc.Encode(obj); err != nil {
				return err
			}
		}
	}
	return r.Err()
}
