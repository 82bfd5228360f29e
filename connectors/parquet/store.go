package parquet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// objectInfo describes one object (file) of a store.
type objectInfo struct {
	Name    string // relative to the listed folder
	Size    int64
	ModTime time.Time
}

// readerAtCloser is random access to one object (Parquet needs it).
type readerAtCloser interface {
	io.ReaderAt
	io.Seeker
	io.Closer
}

// uploader streams one object; Close commits it, Abort drops it.
type uploader interface {
	io.Writer
	Close() error
	Abort()
}

// store is the small object-store interface both backends implement. Keys
// are '/'-separated and relative to the dataset root. Missing objects are
// reported as errors wrapping fs.ErrNotExist.
type store interface {
	// List returns the objects and sub-folders directly inside dir ("" is
	// the root), sorted by name.
	List(ctx context.Context, dir string) (objs []objectInfo, dirs []string, err error)
	// Stat returns one object's size and modification time.
	Stat(ctx context.Context, key string) (objectInfo, error)
	// Get reads a small object whole (manifests, sidecars).
	Get(ctx context.Context, key string) ([]byte, error)
	// Put writes a small object atomically: readers see the old or the new
	// content, never a mix.
	Put(ctx context.Context, key string, data []byte) error
	// Create streams a new object.
	Create(ctx context.Context, key string) (uploader, error)
	// Open opens an object for random access; size < 0 means unknown.
	Open(ctx context.Context, key string, size int64) (readerAtCloser, error)
	// Delete removes objects; missing ones are not an error.
	Delete(ctx context.Context, keys ...string) error
	// Ping checks the store is reachable and the credentials work.
	Ping(ctx context.Context) error
	// Close releases idle connections.
	Close() error
	// String names the store for error messages (no secrets).
	String() string
}

// fileStore is a dataset root on a local (or mounted) file system.
type fileStore struct{ root string }

func (s fileStore) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

func (s fileStore) String() string { return "file://" + s.root }

func (s fileStore) List(ctx context.Context, dir string) ([]objectInfo, []string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(s.path(dir))
	if err != nil {
		return nil, nil, err
	}
	var objs []objectInfo
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while listing
		}
		if err != nil {
			return nil, nil, err
		}
		if !info.Mode().IsRegular() {
			continue
		}
		objs = append(objs, objectInfo{Name: e.Name(), Size: info.Size(), ModTime: info.ModTime()})
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
	sort.Strings(dirs)
	return objs, dirs, nil
}

func (s fileStore) Stat(ctx context.Context, key string) (objectInfo, error) {
	if err := ctx.Err(); err != nil {
		return objectInfo{}, err
	}
	info, err := os.Stat(s.path(key))
	if err != nil {
		return objectInfo{}, err
	}
	return objectInfo{Name: info.Name(), Size: info.Size(), ModTime: info.ModTime()}, nil
}

func (s fileStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return os.ReadFile(s.path(key))
}

// Put writes a temporary file in the same folder, syncs it and renames it
// over key, so the replacement is atomic.
func (s fileStore) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

type fileUploader struct {
	*os.File
}

func (u fileUploader) Close() error {
	err := u.Sync()
	if cerr := u.File.Close(); err == nil {
		err = cerr
	}
	return err
}

func (u fileUploader) Abort() {
	u.File.Close()
	os.Remove(u.Name())
}

func (s fileStore) Create(ctx context.Context, key string) (uploader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := s.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return fileUploader{f}, nil
}

func (s fileStore) Open(ctx context.Context, key string, _ int64) (readerAtCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return os.Open(s.path(key))
}

func (s fileStore) Delete(ctx context.Context, keys ...string) error {
	var errs []error
	for _, k := range keys {
		if err := os.Remove(s.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s fileStore) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	info, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("dataset root: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("dataset root %s is not a directory", s.root)
	}
	return nil
}

func (fileStore) Close() error { return nil }

// join joins key parts with '/'.
func join(parts ...string) string {
	var nonEmpty []string
	for _, p := range parts {
		if p != "" {
			nonEmpty = append(nonEmpty, strings.Trim(p, "/"))
		}
	}
	return strings.Join(nonEmpty, "/")
}
