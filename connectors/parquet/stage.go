package parquet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ferry-ai/ferry/connectors/driver"
)

// StagedPart is one Parquet object of a staged table.
type StagedPart struct {
	// URL is the object's s3://bucket/key.
	URL  string
	Size int64
	Rows int64
}

// Staged is a table written as Parquet parts under a fresh S3 folder for a
// warehouse's bulk load (Redshift's COPY … FORMAT AS PARQUET). Remove it
// when the load has committed or failed.
type Staged struct {
	// Folder is the s3://bucket/prefix/ folder holding every staged object.
	Folder string
	Rows   int64
	Parts  []StagedPart

	c *conn
}

// stagedTable is the table name of a staged write inside its folder.
const stagedTable = "data"

// Stage writes r as Parquet parts under a new folder
// <prefix>/_ferry_staging/<random id>/ of the S3 location u
// (s3://bucket/prefix?endpoint=…&region=…&path_style=…), with the same type
// mapping, validation and bounded memory as a table write. On error nothing
// is left behind.
func Stage(ctx context.Context, u *url.URL, opts driver.Options, r array.RecordReader) (*Staged, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("parquet: stage id: %w", err)
	}
	su := *u
	su.Path = "/" + join(strings.Trim(u.Path, "/"), "_ferry_staging", hex.EncodeToString(id[:]))
	dc, err := S3Opener{}.Open(ctx, &su, opts)
	if err != nil {
		return nil, err
	}
	c := dc.(*conn)
	st := &Staged{c: c, Folder: c.st.String()}
	rows, err := c.Write(ctx, driver.WriteRequest{Table: stagedTable, Reader: r})
	if err != nil {
		c.Close()
		return nil, err
	}
	m, err := readManifest(ctx, c.st, stagedTable)
	if err != nil {
		st.Remove(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("parquet: staged manifest: %w", err)
	}
	s3st := c.st.(*s3Store)
	st.Rows = rows
	for _, p := range m.Parts {
		st.Parts = append(st.Parts, StagedPart{URL: "s3://" + s3st.bucket + "/" + s3st.key(join(stagedTable, p.Path)), Size: p.Size, Rows: p.Rows})
	}
	return st, nil
}

// Put writes a small object (a load manifest) into the staged folder and
// returns its s3:// URL.
func (s *Staged) Put(ctx context.Context, name string, data []byte) (string, error) {
	if strings.ContainsAny(name, "/\\") || name == "" || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("parquet: staged object name %q: want a plain file name", name)
	}
	if err := s.c.st.Put(ctx, name, data); err != nil {
		return "", fmt.Errorf("parquet: put %s: %w", name, err)
	}
	s3st := s.c.st.(*s3Store)
	return "s3://" + s3st.bucket + "/" + s3st.key(name), nil
}

// Get reads a small object of the staged folder by its s3:// URL (a load
// manifest or a part), which must lie inside the folder.
func (s *Staged) Get(ctx context.Context, objectURL string) ([]byte, error) {
	key, ok := strings.CutPrefix(objectURL, s.Folder)
	if !ok || key == "" {
		return nil, fmt.Errorf("parquet: %s is not inside staged folder %s", objectURL, s.Folder)
	}
	return s.c.st.Get(ctx, key)
}

// Remove deletes every object of the staged folder and closes its client.
func (s *Staged) Remove(ctx context.Context) error {
	defer s.c.Close()
	var keys []string
	var walk func(dir string) error
	walk = func(dir string) error {
		objs, dirs, err := s.c.st.List(ctx, dir)
		if err != nil {
			return err
		}
		for _, o := range objs {
			keys = append(keys, join(dir, o.Name))
		}
		for _, d := range dirs {
			if err := walk(join(dir, d)); err != nil {
				return err
			}
		}
		return nil
	}
	err := walk("")
	if len(keys) > 0 {
		err = errors.Join(err, s.c.st.Delete(ctx, keys...))
	}
	if err != nil {
		return fmt.Errorf("parquet: remove staged %s: %w", s.Folder, err)
	}
	return nil
}
