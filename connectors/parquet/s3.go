package parquet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferry-ai/ferry/connectors/driver"
)

// S3Opener opens dataset roots on S3 or an S3-compatible store (scheme "s3").
type S3Opener struct{}

// Open implements driver.Opener. It checks the bucket, prefix and
// credentials with one small list request.
func (S3Opener) Open(ctx context.Context, u *url.URL, opts driver.Options) (driver.Conn, error) {
	if u.Scheme != S3Scheme {
		return nil, fmt.Errorf("parquet: scheme %q, want %q", u.Scheme, S3Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("parquet: s3 URL needs a bucket (s3://bucket/prefix)")
	}
	q := u.Query()
	cfg, err := parseConfig(q, map[string]bool{"endpoint": true, "region": true, "path_style": true})
	if err != nil {
		return nil, err
	}
	region := q.Get("region")
	if region == "" {
		region = "us-east-1"
	}
	pathStyle := false
	if v := q.Get("path_style"); v != "" {
		if pathStyle, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("parquet: path_style %q: want true or false", v)
		}
	}
	endpoint := q.Get("endpoint")
	if endpoint != "" {
		eu, err := url.Parse(endpoint)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" || eu.User != nil {
			return nil, fmt.Errorf("parquet: endpoint %q: want http(s)://host[:port] without credentials", endpoint)
		}
	}
	loadOpts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	creds := opts.Credentials
	if creds["access_key_id"] != "" || creds["secret_access_key"] != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			creds["access_key_id"], creds["secret_access_key"], creds["session_token"])))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("parquet: s3 config: %w", err)
	}
	// Own the transport (with any CA bundle the config added) so Close can
	// drop its idle connections and no goroutine outlives the connection.
	var tr *http.Transport
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		tr = bc.GetTransport()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.MaxIdleConnsPerHost = 16
	awsCfg.HTTPClient = &http.Client{Transport: tr}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	st := &s3Store{client: client, tr: tr, bucket: u.Host, prefix: prefix}
	if err := st.Ping(ctx); err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("parquet: %w", err)
	}
	return newConn(st, cfg, opts), nil
}

// s3Store is a dataset root under a bucket prefix.
type s3Store struct {
	client *s3.Client
	tr     *http.Transport
	bucket string
	prefix string // "" or ends with "/"
}

func (s *s3Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

func (s *s3Store) key(k string) string { return s.prefix + k }

// mapErr turns a 404 into fs.ErrNotExist (keeping the original reachable).
func mapErr(op, key string, err error) error {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("%s %s: %w (%w)", op, key, fs.ErrNotExist, err)
	}
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return fmt.Errorf("%s %s: %w (%w)", op, key, fs.ErrNotExist, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func (s *s3Store) List(ctx context.Context, dir string) ([]objectInfo, []string, error) {
	p := s.prefix
	if dir != "" {
		p += dir + "/"
	}
	var objs []objectInfo
	var dirs []string
	pg := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &p, Delimiter: aws.String("/")})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return nil, nil, mapErr("list", s.bucket+"/"+p, err)
		}
		for _, o := range out.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), p)
			if name == "" || strings.Contains(name, "/") {
				continue
			}
			objs = append(objs, objectInfo{Name: name, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
		for _, cp := range out.CommonPrefixes {
			name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), p), "/")
			if name != "" {
				dirs = append(dirs, name)
			}
		}
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
	sort.Strings(dirs)
	return objs, dirs, nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (objectInfo, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(key))})
	if err != nil {
		return objectInfo{}, mapErr("head", key, err)
	}
	return objectInfo{Name: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

func (s *s3Store) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(key))})
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// Put is one PutObject: S3 makes it visible atomically.
func (s *s3Store) Put(ctx context.Context, key string, data []byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(key)),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	if err != nil {
		return mapErr("put", key, err)
	}
	return nil
}

func (s *s3Store) Delete(ctx context.Context, keys ...string) error {
	var errs []error
	for _, k := range keys {
		if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.key(k))}); err != nil {
			if err := mapErr("delete", k, err); !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Ping lists at most one key under the prefix: it checks the bucket and
// the credentials (S3 answers SignatureDoesNotMatch or AccessDenied).
func (s *s3Store) Ping(ctx context.Context) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &s.prefix, MaxKeys: aws.Int32(1)})
	if err != nil {
		return fmt.Errorf("s3 %s: %w", s, err)
	}
	return nil
}

func (s *s3Store) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

// Open returns a ReaderAt over ranged GETs; nothing is downloaded whole.
func (s *s3Store) Open(ctx context.Context, key string, size int64) (readerAtCloser, error) {
	if size < 0 {
		info, err := s.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		size = info.Size
	}
	return &objectReader{ctx: ctx, s: s, key: key, size: size}, nil
}

// objectReader implements io.ReaderAt and io.Seeker over one object. The
// context of the read that opened it bounds every request.
type objectReader struct {
	ctx  context.Context
	s    *s3Store
	key  string
	size int64
	pos  int64
}

func (r *objectReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	end := min(off+int64(len(p)), r.size)
	out, err := r.s.client.GetObject(r.ctx, &s3.GetObjectInput{Bucket: &r.s.bucket, Key: aws.String(r.s.key(r.key)),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, end-1))})
	if err != nil {
		return 0, mapErr("get", r.key, err)
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, p[:end-off])
	if err != nil {
		return n, fmt.Errorf("get %s range %d-%d: %w", r.key, off, end-1, err)
	}
	if end-off < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (r *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("seek %s: bad whence %d", r.key, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek %s: negative offset", r.key)
	}
	r.pos = offset
	return offset, nil
}

func (r *objectReader) Close() error { return nil }

// partSize is the size of each multipart upload part (S3's minimum is 5 MiB).
const partSize = 8 << 20

// Create streams an object with a multipart upload, holding one part in
// memory; objects smaller than one part go up in a single PutObject.
func (s *s3Store) Create(ctx context.Context, key string) (uploader, error) {
	return &s3Uploader{ctx: ctx, s: s, key: key, buf: make([]byte, 0, partSize)}, nil
}

type s3Uploader struct {
	ctx      context.Context
	s        *s3Store
	key      string
	buf      []byte
	uploadID *string
	parts    []types.CompletedPart
	err      error
}

func (u *s3Uploader) Write(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), partSize-len(u.buf))
		u.buf = append(u.buf, p[:k]...)
		p = p[k:]
		if len(u.buf) == partSize {
			if err := u.flush(); err != nil {
				u.err = err
				return 0, err
			}
		}
	}
	return n, nil
}

func (u *s3Uploader) flush() error {
	if u.uploadID == nil {
		out, err := u.s.client.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{Bucket: &u.s.bucket, Key: aws.String(u.s.key(u.key))})
		if err != nil {
			return mapErr("start upload", u.key, err)
		}
		u.uploadID = out.UploadId
	}
	num := int32(len(u.parts) + 1)
	out, err := u.s.client.UploadPart(u.ctx, &s3.UploadPartInput{Bucket: &u.s.bucket, Key: aws.String(u.s.key(u.key)),
		UploadId: u.uploadID, PartNumber: aws.Int32(num), Body: bytes.NewReader(u.buf), ContentLength: aws.Int64(int64(len(u.buf)))})
	if err != nil {
		return mapErr("upload part", u.key, err)
	}
	u.parts = append(u.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
	u.buf = u.buf[:0]
	return nil
}

func (u *s3Uploader) Close() error {
	if u.err != nil {
		u.Abort()
		return u.err
	}
	if u.uploadID == nil {
		err := u.s.Put(u.ctx, u.key, u.buf)
		u.buf = nil
		return err
	}
	if len(u.buf) > 0 {
		if err := u.flush(); err != nil {
			u.Abort()
			return err
		}
	}
	_, err := u.s.client.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{Bucket: &u.s.bucket, Key: aws.String(u.s.key(u.key)),
		UploadId: u.uploadID, MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts}})
	if err != nil {
		u.Abort()
		return mapErr("complete upload", u.key, err)
	}
	u.buf = nil
	return nil
}

// Abort drops the upload (and any object a finished upload created).
func (u *s3Uploader) Abort() {
	ctx := context.WithoutCancel(u.ctx)
	if u.uploadID != nil {
		u.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.s.bucket, Key: aws.String(u.s.key(u.key)), UploadId: u.uploadID})
		u.uploadID = nil
	}
	u.buf = nil
}
