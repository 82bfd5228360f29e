package grants

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// s3Loc is a bucket and a key prefix ("" for the whole bucket, else ending
// in "/"), as the Parquet connector reads s3://bucket/prefix.
type s3Loc struct{ bucket, prefix string }

var s3Bucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// s3Param reports whether k is one of the connector's URL parameters; they
// do not change what the agent may touch, so the policy ignores them.
func s3Param(k string) bool {
	switch k {
	case "endpoint", "region", "path_style", "compression", "stale_write_after":
		return true
	}
	return false
}

func parseS3(raw string) (s3Loc, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return s3Loc{}, fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "s3" || u.Opaque != "" || u.Host == "" {
		return s3Loc{}, errors.New("want s3://bucket/prefix")
	}
	if u.User != nil {
		return s3Loc{}, errors.New("credentials do not belong in the URL")
	}
	if u.Fragment != "" {
		return s3Loc{}, errors.New("a '#' in a prefix must be written %23")
	}
	for k := range u.Query() {
		if !s3Param(k) {
			return s3Loc{}, fmt.Errorf("unknown URL parameter %q (a '?' in a prefix must be written %%3F)", k)
		}
	}
	if !s3Bucket.MatchString(u.Host) || strings.Contains(u.Host, "..") {
		return s3Loc{}, fmt.Errorf("bucket %q: bucket names are 3 to 63 lower-case letters, digits, dots and hyphens", u.Host)
	}
	prefix := strings.Trim(u.Path, "/")
	if i := strings.IndexAny(prefix, "*?"); i >= 0 {
		return s3Loc{}, fmt.Errorf("prefix %q has %q, which IAM reads as a wildcard", prefix, prefix[i])
	}
	if strings.Contains(prefix, "${") {
		return s3Loc{}, fmt.Errorf("prefix %q has \"${\", which IAM reads as a policy variable", prefix)
	}
	if err := checkParts([]string{prefix}); err != nil {
		return s3Loc{}, err
	}
	if prefix != "" {
		prefix += "/"
	}
	return s3Loc{bucket: u.Host, prefix: prefix}, nil
}

func (l s3Loc) objects() string { return "arn:aws:s3:::" + l.bucket + "/" + l.prefix + "*" }

func (l s3Loc) overlaps(o s3Loc) bool {
	return l.bucket == o.bucket && (strings.HasPrefix(l.prefix, o.prefix) || strings.HasPrefix(o.prefix, l.prefix))
}

// iamStatement is one statement of an IAM policy; fields print in AWS's
// customary order.
type iamStatement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

type iamPolicy struct {
	Version   string         `json:"Version"`
	Statement []iamStatement `json:"Statement"`
}

// genS3 writes an IAM policy: list only under the prefixes, get objects
// under the read prefixes, and under the output prefix get, put and delete
// objects and abort multipart uploads (the Parquet connector's write
// protocol reads its own manifests and deletes replaced parts).
func genS3(p Plan) (string, error) {
	var reads []s3Loc
	for _, item := range p.Read {
		l, err := parseS3(item)
		if err != nil {
			return "", fmt.Errorf("%w: read %q: %v", ErrInvalid, item, err)
		}
		dup := false
		for _, r := range reads {
			dup = dup || r == l
		}
		if !dup {
			reads = append(reads, l)
		}
	}
	out, err := parseS3(p.Write)
	if err != nil {
		return "", fmt.Errorf("%w: write %q: %v", ErrInvalid, p.Write, err)
	}
	for _, r := range reads {
		if r.overlaps(out) {
			return "", fmt.Errorf("%w: write %q overlaps read s3://%s/%s: give the output a prefix of its own, outside every read prefix", ErrInvalid, p.Write, r.bucket, r.prefix)
		}
	}
	var buckets []string
	prefixes := map[string][]string{}
	for _, l := range append(reads, out) {
		if _, seen := prefixes[l.bucket]; !seen {
			buckets = append(buckets, l.bucket)
		}
		prefixes[l.bucket] = append(prefixes[l.bucket], l.prefix)
	}
	pol := iamPolicy{Version: "2012-10-17"}
	for i, b := range buckets {
		st := iamStatement{Sid: "FerryList", Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: []string{"arn:aws:s3:::" + b}}
		if len(buckets) > 1 {
			st.Sid = fmt.Sprintf("FerryList%d", i+1)
		}
		var like []string
		whole := false
		for _, pre := range prefixes[b] {
			whole = whole || pre == ""
			like = append(like, pre, pre+"*")
		}
		if !whole {
			st.Condition = map[string]map[string][]string{"StringLike": {"s3:prefix": like}}
		}
		pol.Statement = append(pol.Statement, st)
	}
	read := iamStatement{Sid: "FerryRead", Effect: "Allow", Action: []string{"s3:GetObject"}}
	for _, r := range reads {
		read.Resource = append(read.Resource, r.objects())
	}
	pol.Statement = append(pol.Statement, read, iamStatement{
		Sid: "FerryWriteOutput", Effect: "Allow",
		Action:   []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
		Resource: []string{out.objects()},
	})
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(pol); err != nil {
		return "", fmt.Errorf("encode IAM policy: %w", err)
	}
	return buf.String(), nil
}
