package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-ai/ferry/connectors"
	"github.com/ferry-ai/ferry/writeback"
)

// pgBench compares the PostgreSQL connector's read with a raw binary COPY
// of the same table drained to io.Discard, and writeback into PostgreSQL
// with a raw pgx CopyFrom of the same rows. It needs the local server that
// `make services` starts; without it the rows are skipped with a note.
func pgBench(ctx context.Context, mux *connectors.Mux, n int64) error {
	const dsn = "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable"
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		fmt.Printf("| PostgreSQL rows skipped: %v (run make services)\n", err)
		return nil
	}
	defer admin.Close(ctx)
	schema := fmt.Sprintf("ferry_bench_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return err
	}
	defer admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s.bench AS SELECT i::int8 AS order_id, (i %% 100000)::int8 AS customer_id,
		TIMESTAMP '2024-01-01' + make_interval(secs => i %% 63072000) AS ordered_at, ((i %% 10007) / 100.0)::float8 AS amount,
		'status_' || (i %% 7) AS status FROM generate_series(0, %d) AS g(i)`, schema, n-1)); err != nil {
		return err
	}
	// Set hint bits and statistics first, so neither timed read pays for
	// the table being new.
	if _, err := admin.Exec(ctx, "VACUUM ANALYZE "+schema+".bench"); err != nil {
		return err
	}
	raw := result{name: "PostgreSQL raw binary COPY (limit)"}
	raw.heapMB, raw.rssMB, err = peak(func() error {
		// The limit at its best: the faster of two runs (the first warms
		// the caches).
		for i := 0; i < 2; i++ {
			start := time.Now()
			cw := &countWriter{}
			if _, err := admin.PgConn().CopyTo(ctx, cw, "COPY (SELECT * FROM "+schema+".bench) TO STDOUT (FORMAT binary)"); err != nil {
				return err
			}
			if secs := time.Since(start).Seconds(); i == 0 || secs < raw.secs {
				raw.secs = secs
			}
			raw.rows, raw.bytes = n, cw.n
		}
		return nil
	})
	if err != nil {
		return err
	}
	opts := &connectors.Options{Credentials: map[string]string{"user": "postgres"}}
	url := "postgres://127.0.0.1:5432/test?sslmode=disable&schema=" + schema
	rd, err := connectorRead(ctx, mux, "PostgreSQL connector read", url, opts)
	if err != nil {
		return err
	}
	rd.limit = "raw binary COPY"
	rd.ratio = (float64(rd.rows) / rd.secs) / (float64(raw.rows) / raw.secs)
	raw.print()
	rd.print()

	// Writeback into PostgreSQL beside a raw CopyFrom of the same rows.
	s, recs := predictionBatches(min(n, 2_000_000))
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	rows := int64(0)
	for _, r := range recs {
		rows += r.NumRows()
	}
	native := result{name: "PostgreSQL raw pgx CopyFrom (limit)", rows: rows}
	native.heapMB, native.rssMB, err = peak(func() error {
		if _, err := admin.Exec(ctx, "CREATE TABLE "+schema+`.raw (customer_id int8, anchor_time timestamptz, score float8, predicted_class bool, model_id text, job_id text, created_at timestamptz)`); err != nil {
			return err
		}
		vals := make([][]any, 0, rows)
		created := time.Now()
		for _, r := range recs {
			for i := 0; i < int(r.NumRows()); i++ {
				vals = append(vals, []any{r.Column(0).(*array.Int64).Value(i), time.UnixMicro(int64(r.Column(1).(*array.Timestamp).Value(i))),
					r.Column(2).(*array.Float64).Value(i), r.Column(3).(*array.Boolean).Value(i), "m-bench", "j-bench", created})
			}
		}
		start := time.Now()
		_, err := admin.CopyFrom(ctx, pgx.Identifier{schema, "raw"}, []string{"customer_id", "anchor_time", "score", "predicted_class", "model_id", "job_id", "created_at"}, pgx.CopyFromRows(vals))
		native.secs = time.Since(start).Seconds()
		return err
	})
	if err != nil {
		return err
	}
	wb := result{name: "writeback into PostgreSQL (atomic)", rows: rows, limit: "raw pgx CopyFrom"}
	wb.heapMB, wb.rssMB, err = peak(func() error {
		c, err := mux.Open(ctx, url, opts)
		if err != nil {
			return err
		}
		defer c.Close()
		rr, _ := array.NewRecordReader(s, recs)
		defer rr.Release()
		start := time.Now()
		_, err = writeback.Write(ctx, c, "preds", rr, writeback.Meta{JobID: "j-bench", ModelID: "m-bench", CreatedAt: time.Now()}, nil)
		wb.secs = time.Since(start).Seconds()
		return err
	})
	if err != nil {
		return err
	}
	wb.ratio = (float64(rows) / wb.secs) / (float64(rows) / native.secs)
	native.print()
	wb.print()
	return nil
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// parquetBench copies the DuckDB bench table into Parquet on disk and on a
// local S3 server (versitygw), then reads each back.
func parquetBench(ctx context.Context, dir, dbPath string, mux *connectors.Mux) error {
	src, err := mux.Open(ctx, "duckdb://"+dbPath, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	root := filepath.Join(dir, "parquet")
	if err := os.Mkdir(root, 0o700); err != nil {
		return err
	}
	targets := []struct {
		name, url string
		creds     map[string]string
	}{{"Parquet on disk -> Arrow", "file://" + root, nil}}
	if stop, url, creds, err := startS3(ctx, dir); err != nil {
		fmt.Printf("| Parquet on S3 skipped: %v\n", err)
	} else {
		defer stop()
		targets = append(targets, struct {
			name, url string
			creds     map[string]string
		}{"Parquet on S3 (versitygw) -> Arrow", url, creds})
	}
	for _, tg := range targets {
		c, err := mux.Open(ctx, tg.url, &connectors.Options{Credentials: tg.creds})
		if err != nil {
			return err
		}
		r, err := src.Read(ctx, "bench", connectors.ReadOptions{BatchSize: 65536})
		if err != nil {
			c.Close()
			return err
		}
		_, err = c.Write(ctx, "bench", r, connectors.WriteOptions{})
		r.Release()
		if err != nil {
			c.Close()
			return fmt.Errorf("%s: write: %w", tg.name, err)
		}
		c.Close()
		res, err := connectorRead(ctx, mux, tg.name, tg.url, &connectors.Options{Credentials: tg.creds})
		if err != nil {
			return err
		}
		res.print()
	}
	return nil
}

// startS3 starts versitygw on a free loopback port with one bucket.
func startS3(ctx context.Context, dir string) (stop func(), url string, creds map[string]string, err error) {
	bin := os.Getenv("FERRY_VERSITYGW")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "ferry", "bin", "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, "", nil, fmt.Errorf("no versitygw at %s (run make services)", bin)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	data := filepath.Join(dir, "s3")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, "", nil, err
	}
	cmd := exec.Command(bin, "--access", "bench", "--secret", "bench-secret", "--port", addr, "posix", data)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, "", nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() } //nolint:errcheck
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench-secret", "")})
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		stop()
		return nil, "", nil, err
	}
	return stop, "s3://bench/data?endpoint=http://" + addr + "&region=us-east-1&path_style=true",
		map[string]string{"access_key_id": "bench", "secret_access_key": "bench-secret"}, nil
}

// connectorRead opens url and times a full read of its bench table through
// the connector.
func connectorRead(ctx context.Context, mux *connectors.Mux, name, url string, opts *connectors.Options) (result, error) {
	res := result{name: name}
	var err error
	res.heapMB, res.rssMB, err = peak(func() error {
		c, err := mux.Open(ctx, url, opts)
		if err != nil {
			return err
		}
		defer c.Close()
		start := time.Now()
		r, err := c.Read(ctx, "bench", connectors.ReadOptions{})
		if err != nil {
			return err
		}
		defer r.Release()
		res.rows, res.bytes, err = drain(r)
		res.secs = time.Since(start).Seconds()
		return err
	})
	return res, err
}
