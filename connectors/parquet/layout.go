package parquet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ferry-ai/ferry/internal/graph"
)

// Layout names.
const (
	// ManifestName is the manifest file inside a table folder.
	ManifestName = "_ferry_manifest.json"
	// GraphName is the graph sidecar at the dataset root.
	GraphName = "_ferry_graph.json"
	// ManifestFormat is the manifest's format tag.
	ManifestFormat = "ferry-parquet-manifest/1"

	markerPrefix = "_ferry_writing_"
	parquetExt   = ".parquet"
)

// partRE matches the part files Ferry writes: part-NNNNN-<writeid>.parquet.
var partRE = regexp.MustCompile(`^part-(\d{5,})-([0-9a-z]+-[0-9a-f]+)\.parquet$`)

// Manifest lists the parts of a Ferry-written table. Readers go only by
// the manifest, so replacing it (atomically) replaces the table.
type Manifest struct {
	Format  string `json:"format"`
	Table   string `json:"table"`
	WriteID string `json:"write_id"`
	// Previous is the write id this manifest replaced; its parts are kept
	// until the next write so that reads of that version can finish.
	Previous string `json:"previous_write_id,omitempty"`
	// Written is when the write committed (writer's clock, informational).
	Written time.Time `json:"written"`
	Rows    int64     `json:"rows"`
	// Schema is the table's Arrow schema, IPC-serialized, base64.
	Schema string `json:"schema"`
	// Columns describes the schema for humans and non-Arrow tools.
	Columns []graph.Column `json:"columns"`
	Parts   []Part         `json:"parts"`
}

// Part is one Parquet file of a table.
type Part struct {
	// Path is relative to the table folder.
	Path string `json:"path"`
	Size int64  `json:"size"`
	Rows int64  `json:"rows"`
}

func newWriteID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return fmt.Sprintf("%s-%s", strings.ToLower(fmt.Sprintf("%012x", time.Now().UnixMilli())), hex.EncodeToString(b[:]))
}

func partName(i int, writeID string) string { return fmt.Sprintf("part-%05d-%s.parquet", i, writeID) }

func encodeSchema(s *arrow.Schema) (string, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(s), ipc.WithAllocator(memory.DefaultAllocator))
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("serialize schema: %w", err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func decodeSchema(s string) (*arrow.Schema, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("manifest schema: %w", err)
	}
	r, err := ipc.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest schema: %w", err)
	}
	defer r.Release()
	return r.Schema(), nil
}

// readManifest returns the table's manifest, or an error wrapping
// fs.ErrNotExist when it has none.
func readManifest(ctx context.Context, st store, table string) (*Manifest, error) {
	raw, err := st.Get(ctx, join(table, ManifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest of %q: %w", table, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("manifest of %q: format %q, want %q", table, m.Format, ManifestFormat)
	}
	return &m, nil
}

// readGraph reads the sidecar; a missing sidecar is an empty graph.
func readGraph(ctx context.Context, st store) (graph.Graph, error) {
	raw, err := st.Get(ctx, GraphName)
	if errors.Is(err, fs.ErrNotExist) {
		return graph.Graph{}, nil
	}
	if err != nil {
		return graph.Graph{}, fmt.Errorf("read %s: %w", GraphName, err)
	}
	var g graph.Graph
	if err := json.Unmarshal(raw, &g); err != nil {
		return graph.Graph{}, fmt.Errorf("parse %s: %w", GraphName, err)
	}
	return g, nil
}

// tableSource is where a table's rows live.
type tableSource struct {
	name     string
	manifest *Manifest // nil for external data
	// parts are keys relative to the root, with sizes (-1 when unknown).
	parts []Part
}

// resolve finds a table: a folder with a manifest, a folder of external
// *.parquet files, or a single <root>/<table>.parquet file. A folder holding
// only Ferry part files and no manifest is an unfinished first write and is
// not a table.
func resolve(ctx context.Context, st store, table string) (*tableSource, error) {
	m, err := readManifest(ctx, st, table)
	if err == nil {
		src := &tableSource{name: table, manifest: m}
		for _, p := range m.Parts {
			src.parts = append(src.parts, Part{Path: join(table, p.Path), Size: p.Size, Rows: p.Rows})
		}
		return src, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	objs, _, err := st.List(ctx, table)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	src := &tableSource{name: table}
	external := false
	for _, o := range objs {
		if !strings.HasSuffix(o.Name, parquetExt) || strings.HasPrefix(o.Name, ".") {
			continue
		}
		if !partRE.MatchString(o.Name) {
			external = true
		}
		src.parts = append(src.parts, Part{Path: join(table, o.Name), Size: o.Size, Rows: -1})
	}
	if external {
		return src, nil
	}
	info, err := st.Stat(ctx, table+parquetExt)
	if err == nil {
		return &tableSource{name: table, parts: []Part{{Path: table + parquetExt, Size: info.Size, Rows: -1}}}, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("table %q: %w", table, fs.ErrNotExist)
	}
	return nil, err
}
