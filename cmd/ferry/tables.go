package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
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
	if err := parse(fs, args, "ferry tables [--json] <url>", stdout); err != nil {
		return done(err)
	}
	if fs.NArg() != 1 {
		return cli.Usagef("ferry tables takes one warehouse URL")
	}
	c, err := openWarehouse(ctx, fs.Arg(0))
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
	fmt.Fprintln(tw, "TABLE\tCOLUMNS\tPRIMARY KEY\tTIME COLUMN\tFOREIGN KEYS")
	for _, t := range ts {
		var fks []string
		for _, fk := range t.ForeignKeys {
			fks = append(fks, fmt.Sprintf("(%s)->%s(%s)", strings.Join(fk.Columns, ","), fk.RefTable, strings.Join(fk.RefColumns, ",")))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.Name, len(t.Columns), strings.Join(t.PrimaryKey, ","), t.TimeColumn, strings.Join(fks, " "))
	}
	return tw.Flush()
}

func runRead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry read", flag.ContinueOnError)
	columns := fs.String("columns", "", "comma-separated columns to read (default all)")
	limit := fs.Int64("limit", 0, "read at most N rows (0: all)")
	format := fs.String("format", "csv", "output format: csv or jsonl")
	const synopsis = "ferry read <url> <table> [--columns a,b] [--limit N] [--format csv|jsonl]"
	// Accept flags after the positional arguments too.
	var pos []string
	for len(args) > 0 {
		if err := parse(fs, args, synopsis, stdout); err != nil {
			return done(err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 2 {
		return cli.Usagef("usage: %s", synopsis)
	}
	if *limit < 0 {
		return cli.Usagef("--limit %d must not be negative", *limit)
	}
	if *format != "csv" && *format != "jsonl" {
		return cli.Usagef("--format %q: want csv or jsonl", *format)
	}
	var cols []string
	if *columns != "" {
		cols = strings.Split(*columns, ",")
	}
	c, err := openWarehouse(ctx, pos[0])
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.Read(ctx, pos[1], connectors.ReadOptions{Columns: cols, Limit: *limit})
	if err != nil {
		return err
	}
	defer r.Release()
	if *format == "csv" {
		return writeCSV(stdout, r)
	}
	return writeJSONL(stdout, r)
}

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
