package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/util"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/internal/cli"
	"github.com/ferry-ai/ferry/internal/graph"
)

func runCopy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry copy", flag.ContinueOnError)
	progress := fs.String("progress", "auto", "progress line on stderr: auto (on a terminal), always or never")
	srcCreds := fs.String("src-credentials", "", "YAML `file` of the source warehouse's credentials")
	dstCreds := fs.String("dst-credentials", "", "YAML `file` of the destination warehouse's credentials")
	const synopsis = "ferry copy <src url> <table> <dst url> [<dst table>] [--progress auto|always|never] [--src-credentials F] [--dst-credentials F]"
	pos, err := parseMixed(fs, args, synopsis, stdout)
	if err != nil {
		return done(err)
	}
	if len(pos) != 3 && len(pos) != 4 {
		return cli.Usagef("usage: %s", synopsis)
	}
	showProgress := false
	switch *progress {
	case "always":
		showProgress = true
	case "never":
	case "auto":
		showProgress = isTerminal(stderr)
	default:
		return cli.Usagef("--progress %q: want auto, always or never", *progress)
	}
	srcURL, table, dstURL := pos[0], pos[1], pos[2]
	dstTable := table
	if len(pos) == 4 {
		dstTable = pos[3]
	}
	if err := connectors.ValidateName(dstTable); err != nil {
		return cli.Usage(fmt.Errorf("destination table: %w", err))
	}

	src, err := openWarehouseWith(ctx, srcURL, *srcCreds)
	if err != nil {
		return err
	}
	defer src.Close()
	dst := src
	if dstURL != srcURL {
		if dst, err = openWarehouseWith(ctx, dstURL, *dstCreds); err != nil {
			return err
		}
		defer dst.Close()
	} else if dstTable == table {
		return cli.Usagef("source and destination are the same table")
	}
	meta, err := src.Table(ctx, table)
	if err != nil {
		return err
	}
	// Keep the primary key, and the foreign keys whose referenced table
	// exists at the destination.
	opts := connectors.WriteOptions{PrimaryKey: meta.PrimaryKey}
	if len(meta.ForeignKeys) > 0 {
		if dts, err := dst.Tables(ctx); err == nil {
			for _, fk := range meta.ForeignKeys {
				if _, err := connectors.FindTable(dts, fk.RefTable); err == nil {
					opts.ForeignKeys = append(opts.ForeignKeys, graph.ForeignKey{Columns: fk.Columns, RefTable: fk.RefTable, RefColumns: fk.RefColumns})
				}
			}
		}
	}
	r, err := src.Read(ctx, table, connectors.ReadOptions{BatchSize: 65536})
	if err != nil {
		return err
	}
	defer r.Release()
	cr := &countingReader{RecordReader: r}
	start := time.Now()
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if !showProgress {
			<-stop
			return
		}
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		fmt.Fprintf(stderr, "\r\033[K  %s", cr.line(time.Since(start)))
		for {
			select {
			case <-stop:
				fmt.Fprint(stderr, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(stderr, "\r\033[K  %s", cr.line(time.Since(start)))
			}
		}
	}()
	n, err := dst.Write(ctx, dstTable, cr, opts)
	close(stop)
	<-finished
	if err != nil {
		if errors.Is(err, connectors.ErrNotSupported) {
			return cli.Usage(err)
		}
		return err
	}
	fmt.Fprintf(stdout, "copied %d rows (%s) of %s to %s in %.1fs\n", n, cr.line(time.Since(start)), table, dstTable, time.Since(start).Seconds())
	return nil
}

// countingReader counts the rows and bytes that pass through it.
type countingReader struct {
	array.RecordReader
	rows, bytes atomic.Int64
}

func (c *countingReader) Next() bool {
	if !c.RecordReader.Next() {
		return false
	}
	rec := c.RecordReader.RecordBatch()
	c.rows.Add(rec.NumRows())
	c.bytes.Add(util.TotalRecordSize(rec))
	return true
}

func (c *countingReader) line(elapsed time.Duration) string {
	mb := float64(c.bytes.Load()) / 1e6
	secs := max(elapsed.Seconds(), 1e-9)
	return fmt.Sprintf("%d rows, %.1f MB, %.0f rows/s, %.1f MB/s", c.rows.Load(), mb, float64(c.rows.Load())/secs, mb/secs)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
