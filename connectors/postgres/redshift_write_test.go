package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-ai/ferry/connectors"
	fdriver "github.com/ferry-ai/ferry/connectors/driver"
	"github.com/ferry-ai/ferry/connectors/parquet"
	"github.com/ferry-ai/ferry/internal/s3test"
)

// emulatedCopy stands in for Redshift's COPY … FORMAT AS PARQUET MANIFEST on
// PostgreSQL, which has no such COPY: it reads the Redshift manifest from S3,
// downloads exactly the parts it lists and loads them by binary COPY. Every
// other step of a Redshift write runs for real.
type emulatedCopy struct {
	mem      memory.Allocator
	manifest redshiftManifest
	fail     error
}

func (l *emulatedCopy) load(ctx context.Context, tx pgx.Tx, table pgx.Identifier, manifestURL string, staged *parquet.Staged) error {
	if l.fail != nil {
		return l.fail
	}
	raw, err := staged.Get(ctx, manifestURL)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &l.manifest); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	for _, e := range l.manifest.Entries {
		data, err := staged.Get(ctx, e.URL)
		if err != nil {
			return err
		}
		if int64(len(data)) != e.Meta.ContentLength {
			return fmt.Errorf("%s: %d bytes, manifest says %d", e.URL, len(data), e.Meta.ContentLength)
		}
		pf, err := file.NewParquetReader(bytes.NewReader(data))
		if err != nil {
			return err
		}
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 4096}, l.mem)
		if err != nil {
			return err
		}
		rr, err := fr.GetRecordReader(ctx, nil, nil)
		if err != nil {
			return err
		}
		names := make([]string, rr.Schema().NumFields())
		for i, f := range rr.Schema().Fields() {
			names[i] = f.Name
		}
		src := &arrowSource{r: rr, row: make([]any, len(names))}
		_, err = tx.CopyFrom(ctx, table, names, src)
		rr.Release()
		pf.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// redshiftFixture is a PostgreSQL schema and an S3 staging bucket.
type redshiftFixture struct {
	s3     *s3test.Server
	schema string
	url    string
	mem    *memory.CheckedAllocator
}

func newRedshiftFixture(t *testing.T) *redshiftFixture {
	t.Helper()
	ctx := context.Background()
	srv := s3test.ForTest(t, "staging", "rsaccess", "rs-secret-Do-Not-Leak")
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "ferry_rs_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable")
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable (run `make services`): %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(context.Background(), "host=127.0.0.1 port=5432 dbname=test user=postgres sslmode=disable")
		if err == nil {
			admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck
			admin.Close(context.Background())
		}
	})
	f := &redshiftFixture{s3: srv, schema: schema, mem: memory.NewCheckedAllocator(memory.NewGoAllocator())}
	f.url = "redshift://127.0.0.1:5432/test?sslmode=disable&schema=" + schema +
		"&staging=" + url.QueryEscape("s3://staging/ferry") + "&staging_endpoint=" + url.QueryEscape(srv.Endpoint) + "&staging_path_style=true"
	t.Cleanup(func() { f.mem.AssertSize(t, 0) })
	return f
}

func (f *redshiftFixture) creds() map[string]string {
	return map[string]string{"user": "postgres", "iam_role": "arn:aws:iam::123456789012:role/Ferry'Load", "aws_access_key_id": f.s3.AccessKey, "aws_secret_access_key": f.s3.SecretKey}
}

// open opens the redshift driver with the emulated COPY.
func (f *redshiftFixture) open(t *testing.T, l *emulatedCopy) *redshiftConn {
	t.Helper()
	u, err := url.Parse(f.url)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := RedshiftOpener{}.Open(context.Background(), u, fdriver.Options{Allocator: f.mem, Credentials: f.creds()})
	if err != nil {
		t.Fatal(err)
	}
	rc := dc.(*redshiftConn)
	l.mem = f.mem
	rc.loader = l
	t.Cleanup(func() { rc.Close() })
	return rc
}

// assertClean checks that no staged object and no staging table is left.
func (f *redshiftFixture) assertClean(t *testing.T, rc *redshiftConn, tables ...string) {
	t.Helper()
	keys, err := f.s3.Keys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("staged objects left behind: %v", keys)
	}
	infos, err := rc.Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range infos {
		names = append(names, ti.Name)
	}
	if fmt.Sprint(names) != fmt.Sprint(tables) {
		t.Errorf("tables %v, want %v", names, tables)
	}
}

var rsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
	{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
	{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
	{Name: "f64", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
	{Name: "tstz", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "dec", Type: &arrow.Decimal128Type{Precision: 38, Scale: 4}, Nullable: true},
}, nil)

// rsRecords builds n rows in batches of 1,000: row 0 holds the extremes,
// row 1 nulls in every nullable column.
func rsRecords(mem memory.Allocator, n int, marker string) []arrow.RecordBatch {
	var out []arrow.RecordBatch
	max38, _ := decimal128.FromString("9999999999999999999999999999999999.9999", 38, 4)
	for start := 0; start < n; start += 1000 {
		b := array.NewRecordBuilder(mem, rsSchema)
		for i := start; i < min(n, start+1000); i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			if i == 1 {
				for f := 1; f < rsSchema.NumFields(); f++ {
					b.Field(f).AppendNull()
				}
				continue
			}
			v := int64(i)
			if i == 0 {
				v = -32768
			}
			b.Field(1).(*array.Int16Builder).Append(int16(v))
			b.Field(2).(*array.Int32Builder).Append(int32(v * 1000))
			b.Field(3).(*array.Float32Builder).Append(float32(v) / 4)
			b.Field(4).(*array.Float64Builder).Append(float64(v) / 3)
			b.Field(5).(*array.BooleanBuilder).Append(i%2 == 0)
			b.Field(6).(*array.StringBuilder).Append(fmt.Sprintf("%s-%d héllo 🚢 O'Brien", marker, i))
			b.Field(7).(*array.Date32Builder).Append(arrow.Date32(18000 + i%1000))
			at := time.Date(2024, 3, 10, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
			b.Field(8).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
			b.Field(9).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
			if i == 0 {
				b.Field(10).(*array.Decimal128Builder).Append(max38)
			} else {
				b.Field(10).(*array.Decimal128Builder).Append(decimal128.FromI64(v * 12345))
			}
		}
		out = append(out, b.NewRecordBatch())
		b.Release()
	}
	return out
}

func rsReader(t *testing.T, mem memory.Allocator, n int, marker string) array.RecordReader {
	t.Helper()
	recs := rsRecords(mem, n, marker)
	r, err := array.NewRecordReader(rsSchema, recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		rec.Release()
	}
	return r
}

// dumpTable renders a table's rows through the Redshift read path.
func dumpTable(t *testing.T, rc *redshiftConn, table string) []string {
	t.Helper()
	r, err := rc.Read(context.Background(), fdriver.ReadRequest{Table: table})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var rows []string
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			var cols []string
			for _, c := range rec.Columns() {
				cols = append(cols, c.ValueStr(i))
			}
			rows = append(rows, strings.Join(cols, "|"))
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func sourceRows(mem memory.Allocator, n int, marker string) []string {
	var rows []string
	for _, rec := range rsRecords(mem, n, marker) {
		for i := 0; i < int(rec.NumRows()); i++ {
			var cols []string
			for _, c := range rec.Columns() {
				cols = append(cols, c.ValueStr(i))
			}
			rows = append(rows, strings.Join(cols, "|"))
		}
		rec.Release()
	}
	return rows
}

// TestRedshiftWrite: a table written through the Redshift path (Parquet
// parts and a manifest on a real S3 server, the staging table, the load, the
// swap) reads back exactly, a second write replaces it whole, and nothing
// staged is left behind.
func TestRedshiftWrite(t *testing.T) {
	f := newRedshiftFixture(t)
	l := &emulatedCopy{}
	rc := f.open(t, l)
	ctx := context.Background()
	for _, tc := range []struct {
		marker string
		n      int
	}{{"first", 5000}, {"second", 2500}, {"second", 2500}} {
		r := rsReader(t, f.mem, tc.n, tc.marker)
		n, err := rc.Write(ctx, fdriver.WriteRequest{Table: "Predictions Table", Reader: r, PrimaryKey: []string{"id"}})
		r.Release()
		if err != nil || n != int64(tc.n) {
			t.Fatalf("write %s: %d rows, %v", tc.marker, n, err)
		}
		got := dumpTable(t, rc, "Predictions Table")
		want := sourceRows(f.mem, tc.n, tc.marker)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("write %s: row %d\n got %s\nwant %s", tc.marker, i, got[i], want[i])
				}
			}
			t.Fatalf("write %s: %d rows read back, want %d", tc.marker, len(got), len(want))
		}
		if len(l.manifest.Entries) == 0 || !strings.HasPrefix(l.manifest.Entries[0].URL, "s3://staging/ferry/_ferry_staging/") || !l.manifest.Entries[0].Mandatory {
			t.Fatalf("manifest entries %+v", l.manifest.Entries)
		}
		f.assertClean(t, rc, "Predictions Table")
	}
}

// TestRedshiftFailedWrites: a load that fails, an input that fails halfway
// and a cancelled write each leave the previous table intact, no staging
// table and no staged object.
func TestRedshiftFailedWrites(t *testing.T) {
	f := newRedshiftFixture(t)
	l := &emulatedCopy{}
	rc := f.open(t, l)
	ctx := context.Background()
	r := rsReader(t, f.mem, 3000, "old")
	if _, err := rc.Write(ctx, fdriver.WriteRequest{Table: "t", Reader: r}); err != nil {
		t.Fatal(err)
	}
	r.Release()
	want := dumpTable(t, rc, "t")

	l.fail = errors.New("S3ServiceException: Access Denied")
	r = rsReader(t, f.mem, 100, "new")
	_, err := rc.Write(ctx, fdriver.WriteRequest{Table: "t", Reader: r})
	r.Release()
	if err == nil || !strings.Contains(err.Error(), "Access Denied") {
		t.Fatalf("failed load: %v", err)
	}
	l.fail = nil

	r = rsReader(t, f.mem, 5000, "new")
	fr := &failAfter{RecordReader: r, left: 2}
	_, err = rc.Write(ctx, fdriver.WriteRequest{Table: "t", Reader: fr})
	r.Release()
	if err == nil {
		t.Fatal("a write whose input failed returned no error")
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r = rsReader(t, f.mem, 100, "new")
	_, err = rc.Write(cctx, fdriver.WriteRequest{Table: "t", Reader: r})
	r.Release()
	if err == nil {
		t.Fatal("a cancelled write returned no error")
	}

	if got := dumpTable(t, rc, "t"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after failed writes the table has %d rows, want the old %d", len(got), len(want))
	}
	f.assertClean(t, rc, "t")
}

type failAfter struct {
	array.RecordReader
	left int
	err  error
}

func (f *failAfter) Next() bool {
	if f.left == 0 {
		f.err = errors.New("source failed mid-stream")
		return false
	}
	f.left--
	return f.RecordReader.Next()
}

func (f *failAfter) Err() error {
	if f.err != nil {
		return f.err
	}
	return f.RecordReader.Err()
}

// TestRedshiftRefusals: bad configuration and unmappable columns are
// refused with errors naming what is wrong, before anything is uploaded.
func TestRedshiftRefusals(t *testing.T) {
	f := newRedshiftFixture(t)
	ctx := context.Background()
	rc := f.open(t, &emulatedCopy{})
	for _, dt := range []arrow.DataType{arrow.PrimitiveTypes.Uint64, arrow.ListOf(arrow.PrimitiveTypes.Int64), arrow.FixedWidthTypes.MonthDayNanoInterval, &arrow.Decimal128Type{Precision: 10, Scale: -2}} {
		s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "bad col", Type: dt}}, nil)
		r, _ := array.NewRecordReader(s, nil)
		_, err := rc.Write(ctx, fdriver.WriteRequest{Table: "t", Reader: r})
		r.Release()
		if err == nil || !strings.Contains(err.Error(), `"bad col"`) {
			t.Errorf("%s: %v, want an error naming the column", dt, err)
		}
	}
	f.assertClean(t, rc)

	for _, tc := range []struct {
		name, url string
		creds     map[string]string
		want      error
	}{
		{"no staging", "redshift://127.0.0.1:5432/test?sslmode=disable&schema=" + f.schema, f.creds(), connectors.ErrNotSupported},
		{"no iam role", f.url, map[string]string{"user": "postgres"}, connectors.ErrInvalidArgument},
	} {
		u, _ := url.Parse(tc.url)
		dc, err := RedshiftOpener{}.Open(ctx, u, fdriver.Options{Credentials: tc.creds})
		if err != nil {
			t.Fatalf("%s: open: %v", tc.name, err)
		}
		r := rsReader(t, f.mem, 10, "x")
		_, err = dc.(*redshiftConn).Write(ctx, fdriver.WriteRequest{Table: "t", Reader: r})
		r.Release()
		dc.Close()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	for _, bad := range []string{"staging=http://x/y", "staging=s3://", "staging_region=us-east-1", "staging=" + url.QueryEscape("s3://b/p?x=1")} {
		u, _ := url.Parse("redshift://127.0.0.1:5432/test?sslmode=disable&" + bad)
		if _, err := (RedshiftOpener{}).Open(ctx, u, fdriver.Options{Credentials: f.creds()}); !errors.Is(err, connectors.ErrInvalidURL) {
			t.Errorf("%s: %v, want ErrInvalidURL", bad, err)
		}
	}
}

// TestRedshiftCopySQL: the exact COPY statement, with a hostile schema and
// table name quoted, and the IAM role in the statement but in no error.
func TestRedshiftCopySQL(t *testing.T) {
	got := copySQL(pgx.Identifier{`we"ird`, "Predictions; DROP TABLE x"}, "s3://bucket/it's/redshift.manifest", "arn:aws:iam::1:role/R'x")
	want := `COPY "we""ird"."Predictions; DROP TABLE x" FROM 's3://bucket/it''s/redshift.manifest' IAM_ROLE 'arn:aws:iam::1:role/R''x' FORMAT AS PARQUET MANIFEST`
	if got != want {
		t.Fatalf("COPY SQL\n got %s\nwant %s", got, want)
	}
	for _, tc := range []struct {
		dt   arrow.DataType
		want string
	}{
		{arrow.PrimitiveTypes.Int8, "SMALLINT"}, {arrow.PrimitiveTypes.Uint32, "BIGINT"}, {arrow.BinaryTypes.String, "VARCHAR(65535)"},
		{arrow.BinaryTypes.Binary, "VARBYTE(1024000)"}, {&arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "Europe/Paris"}, "TIMESTAMPTZ"},
		{&arrow.Decimal128Type{Precision: 38, Scale: 10}, "DECIMAL(38,10)"}, {arrow.FixedWidthTypes.Time64us, "TIME"},
		{&arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, "VARCHAR(65535)"},
	} {
		if got, err := redshiftType(tc.dt); err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %s", tc.dt, got, err, tc.want)
		}
	}
	// The production loader against PostgreSQL, which rejects Redshift's
	// COPY syntax: the error reaches the caller without the role.
	f := newRedshiftFixture(t)
	rc := f.open(t, &emulatedCopy{})
	rc.loader = redshiftCopy{iamRole: "arn:aws:iam::123456789012:role/Secret-Role-Name"}
	r := rsReader(t, f.mem, 10, "x")
	_, err := rc.Write(context.Background(), fdriver.WriteRequest{Table: "t", Reader: r})
	r.Release()
	if err == nil {
		t.Fatal("PostgreSQL accepted Redshift's COPY … FORMAT AS PARQUET")
	}
	if strings.Contains(err.Error(), "Secret-Role-Name") {
		t.Fatalf("error leaks the IAM role: %v", err)
	}
	t.Logf("PostgreSQL on Redshift's COPY: %v", err)
	f.assertClean(t, rc)
}
