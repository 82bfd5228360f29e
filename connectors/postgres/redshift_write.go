package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/jackc/pgx/v5"

	"github.com/ferry-ai/ferry/connectors"
	fdriver "github.com/ferry-ai/ferry/connectors/driver"
	"github.com/ferry-ai/ferry/connectors/parquet"
)

// Redshift limits that shape the DDL of a written table.
const (
	redshiftMaxVarchar = 65535   // bytes
	redshiftMaxVarbyte = 1024000 // bytes
)

// parseStaging takes the staging parameters off a redshift:// URL and
// returns the URL the PostgreSQL driver parses and the S3 staging location
// (nil when none is configured).
func parseStaging(u *url.URL) (*url.URL, *url.URL, error) {
	q := u.Query()
	raw := q.Get("staging")
	params := map[string]string{"staging_region": "region", "staging_endpoint": "endpoint", "staging_path_style": "path_style"}
	sq := url.Values{}
	for k, to := range params {
		if v := q.Get(k); v != "" {
			sq.Set(to, v)
		}
		q.Del(k)
	}
	q.Del("staging")
	pg := *u
	pg.RawQuery = q.Encode()
	if raw == "" {
		if len(sq) > 0 {
			return nil, nil, fmt.Errorf("redshift: staging_* URL parameters given without staging=s3://bucket/prefix: %w", connectors.ErrInvalidURL)
		}
		return &pg, nil, nil
	}
	su, err := url.Parse(raw)
	if err != nil || su.Scheme != "s3" || su.Host == "" || su.User != nil || su.RawQuery != "" {
		return nil, nil, fmt.Errorf("redshift: URL parameter staging=%q: want s3://bucket/prefix (options as staging_region, staging_endpoint, staging_path_style): %w", raw, connectors.ErrInvalidURL)
	}
	su.RawQuery = sq.Encode()
	return &pg, su, nil
}

// s3Loader loads the Parquet parts listed in a Redshift manifest into a
// table, inside the write's transaction. Production issues Redshift's COPY;
// the tests, which have PostgreSQL but no Redshift, load the same parts with
// binary COPY.
type s3Loader interface {
	load(ctx context.Context, tx pgx.Tx, table pgx.Identifier, manifestURL string, staged *parquet.Staged) error
}

// redshiftCopy is the production loader.
type redshiftCopy struct{ iamRole string }

func (l redshiftCopy) load(ctx context.Context, tx pgx.Tx, table pgx.Identifier, manifestURL string, _ *parquet.Staged) error {
	if _, err := tx.Exec(ctx, copySQL(table, manifestURL, l.iamRole)); err != nil {
		return fmt.Errorf("COPY … FORMAT AS PARQUET from %s: %w", manifestURL, redact(err, map[string]string{"iam_role": l.iamRole}))
	}
	return nil
}

// copySQL is Redshift's load of a manifest of Parquet objects.
func copySQL(table pgx.Identifier, manifestURL, iamRole string) string {
	return "COPY " + table.Sanitize() + " FROM " + quoteLiteral(manifestURL) + " IAM_ROLE " + quoteLiteral(iamRole) + " FORMAT AS PARQUET MANIFEST"
}

// quoteLiteral quotes a SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// redshiftType returns the Redshift column type for an Arrow type.
func redshiftType(t arrow.DataType) (string, error) {
	switch t := t.(type) {
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Uint8Type:
		return "SMALLINT", nil
	case *arrow.Int32Type, *arrow.Uint16Type:
		return "INTEGER", nil
	case *arrow.Int64Type, *arrow.Uint32Type:
		return "BIGINT", nil
	case *arrow.Float32Type:
		return "REAL", nil
	case *arrow.Float64Type:
		return "DOUBLE PRECISION", nil
	case *arrow.BooleanType:
		return "BOOLEAN", nil
	case *arrow.StringType, *arrow.LargeStringType, *arrow.StringViewType:
		return fmt.Sprintf("VARCHAR(%d)", redshiftMaxVarchar), nil
	case *arrow.BinaryType, *arrow.LargeBinaryType, *arrow.BinaryViewType:
		return fmt.Sprintf("VARBYTE(%d)", redshiftMaxVarbyte), nil
	case *arrow.Date32Type, *arrow.Date64Type:
		return "DATE", nil
	case *arrow.TimestampType:
		if t.TimeZone != "" {
			return "TIMESTAMPTZ", nil
		}
		return "TIMESTAMP", nil
	case *arrow.Time64Type, *arrow.Time32Type:
		return "TIME", nil
	case *arrow.Decimal128Type:
		if t.Scale < 0 || t.Precision > 38 {
			return "", fmt.Errorf("decimal(%d,%d) has no Redshift mapping (precision up to 38, scale 0 or more)", t.Precision, t.Scale)
		}
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision, t.Scale), nil
	case *arrow.DictionaryType:
		return redshiftType(t.ValueType)
	case *arrow.RunEndEncodedType:
		return redshiftType(t.Encoded())
	}
	return "", fmt.Errorf("type %s has no Redshift mapping", t)
}

// redshiftDDL returns the column definitions of a table written from s.
func redshiftDDL(s *arrow.Schema, req fdriver.WriteRequest, qualify func(string) string) ([]string, error) {
	defs := make([]string, 0, s.NumFields()+1)
	for _, f := range s.Fields() {
		if len(f.Name) > maxIdentBytes {
			return nil, fmt.Errorf("redshift: column name %q is longer than %d bytes", f.Name, maxIdentBytes)
		}
		typ, err := redshiftType(f.Type)
		if err != nil {
			return nil, fmt.Errorf("redshift: column %q: %w", f.Name, err)
		}
		def := quoteIdent(f.Name) + " " + typ
		if !f.Nullable {
			def += " NOT NULL"
		}
		defs = append(defs, def)
	}
	// Redshift records keys without enforcing them; the planner uses them.
	if len(req.PrimaryKey) > 0 {
		defs = append(defs, "PRIMARY KEY ("+quoteList(req.PrimaryKey)+")")
	}
	for _, fk := range req.ForeignKeys {
		if len(fk.Columns) == 0 || len(fk.Columns) != len(fk.RefColumns) {
			return nil, fmt.Errorf("redshift: malformed foreign key %v -> %s%v", fk.Columns, fk.RefTable, fk.RefColumns)
		}
		defs = append(defs, fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s (%s)", quoteList(fk.Columns), qualify(fk.RefTable), quoteList(fk.RefColumns)))
	}
	return defs, nil
}

// redshiftManifest is the manifest format of Redshift's COPY … MANIFEST.
type redshiftManifest struct {
	Entries []manifestEntry `json:"entries"`
}

type manifestEntry struct {
	URL       string `json:"url"`
	Mandatory bool   `json:"mandatory"`
	Meta      struct {
		ContentLength int64 `json:"content_length"`
	} `json:"meta"`
}

// Write implements driver.Writer for Redshift: the stream is staged as
// Parquet parts on S3 (bounded memory, as a Parquet write), a Redshift
// manifest listing exactly those parts is written last, and one transaction
// creates a staging table, loads it with COPY … FORMAT AS PARQUET MANIFEST,
// drops the old table and renames the staging table in its place. Readers
// see the old table until COMMIT; a failure rolls back to it. The staged
// objects are removed on success and on failure.
func (c *redshiftConn) Write(ctx context.Context, req fdriver.WriteRequest) (n int64, err error) {
	if c.staging == nil {
		return 0, fmt.Errorf("redshift: writing loads Parquet from S3 and needs a staging location: add staging=s3://bucket/prefix to the URL: %w", connectors.ErrNotSupported)
	}
	if rc, ok := c.loader.(redshiftCopy); ok && rc.iamRole == "" {
		return 0, fmt.Errorf("redshift: writing needs the iam_role credential (the ARN COPY assumes to read the staging bucket): %w", connectors.ErrInvalidArgument)
	}
	if len(req.Table) > maxIdentBytes {
		return 0, fmt.Errorf("redshift: table name %q is longer than %d bytes", req.Table, maxIdentBytes)
	}
	// Refuse unmappable columns before anything is uploaded.
	defs, err := redshiftDDL(req.Reader.Schema(), req, c.qualified)
	if err != nil {
		return 0, err
	}
	s3creds := map[string]string{}
	for from, to := range map[string]string{"aws_access_key_id": "access_key_id", "aws_secret_access_key": "secret_access_key", "aws_session_token": "session_token"} {
		if v := c.creds[from]; v != "" {
			s3creds[to] = v
		}
	}
	staged, err := parquet.Stage(ctx, c.staging, fdriver.Options{Allocator: c.mem, Credentials: s3creds}, req.Reader)
	if err != nil {
		return 0, fmt.Errorf("redshift: stage: %w", err)
	}
	defer func() {
		if rerr := staged.Remove(context.WithoutCancel(ctx)); rerr != nil {
			if err == nil {
				err = fmt.Errorf("redshift: table %q written, but %w", req.Table, rerr)
			} else {
				err = errors.Join(err, rerr)
			}
		}
	}()
	var m redshiftManifest
	for _, p := range staged.Parts {
		e := manifestEntry{URL: p.URL, Mandatory: true}
		e.Meta.ContentLength = p.Size
		m.Entries = append(m.Entries, e)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return 0, fmt.Errorf("redshift: manifest: %w", err)
	}
	manifestURL, err := staged.Put(ctx, "redshift.manifest", raw)
	if err != nil {
		return 0, fmt.Errorf("redshift: %w", err)
	}

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	stagingTable := "__ferry_stage_" + hex.EncodeToString(rnd[:])
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("redshift: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if _, err := tx.Exec(ctx, "CREATE TABLE "+c.qualifiedOut(stagingTable)+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return 0, fmt.Errorf("redshift: create staging table: %w", err)
	}
	if err := c.loader.load(ctx, tx, pgx.Identifier{c.cfg.outputSchema, stagingTable}, manifestURL, staged); err != nil {
		return 0, fmt.Errorf("redshift: load: %w", err)
	}
	if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+c.qualifiedOut(req.Table)); err != nil {
		return 0, fmt.Errorf("redshift: drop the old table: %w", err)
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE "+c.qualifiedOut(stagingTable)+" RENAME TO "+quoteIdent(req.Table)); err != nil {
		return 0, fmt.Errorf("redshift: swap in the new table: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("redshift: commit: %w", err)
	}
	return staged.Rows, nil
}
