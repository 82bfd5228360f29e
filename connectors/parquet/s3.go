package parquet

import (
	"context"
	"fmt"
	"net/url"

	"github.com/ferry-ai/ferry/connectors/driver"
)

// S3Opener opens dataset roots on S3 or an S3-compatible store (scheme "s3").
type S3Opener struct{}

// Open implements driver.Opener.
func (S3Opener) Open(ctx context.Context, u *url.URL, opts driver.Options) (driver.Conn, error) {
	return nil, fmt.Errorf("parquet: s3 not yet implemented")
}
