package grants

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrUnavailable marks a warehouse kind Check cannot inspect.
var ErrUnavailable = errors.New("not available")

// Target is the warehouse a check connected to.
type Target struct {
	Dialect Dialect
	// Schema is the URL's schema: where unqualified table names live, as
	// for the agent.
	Schema string
}

// Connect opens a connection for Check from a connector URL (postgres://,
// postgresql:// or redshift://, with the connector's parameters) and the
// agent's credentials (user, password). Neither the URL nor any error holds
// a credential: URLs with credentials are refused, and credential values are
// scrubbed from errors. A malformed URL wraps ErrInvalid; another scheme
// wraps ErrUnavailable.
func Connect(ctx context.Context, rawURL string, creds map[string]string) (*pgx.Conn, Target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, Target{}, fmt.Errorf("%w: warehouse URL: %v", ErrInvalid, err)
	}
	if u.User != nil {
		return nil, Target{}, fmt.Errorf("%w: warehouse URL: credentials must not be in the URL (give them with --credentials)", ErrInvalid)
	}
	t := Target{Schema: "public"}
	port := "5432"
	known := map[string]bool{"schema": true, "sslmode": true, "connect_timeout": true}
	switch u.Scheme {
	case "postgres", "postgresql":
		t.Dialect = DialectPostgres
	case "redshift":
		t.Dialect, port = DialectRedshift, "5439"
		for _, k := range []string{"staging", "staging_region", "staging_endpoint", "staging_path_style"} {
			known[k] = true // write staging: no bearing on privileges
		}
	case "":
		return nil, Target{}, fmt.Errorf("%w: warehouse URL %q has no scheme (want postgres://host:port/database)", ErrInvalid, rawURL)
	default:
		return nil, Target{}, fmt.Errorf("checking privileges is %w for %s:// warehouses, only for PostgreSQL and Redshift (postgres://, postgresql://, redshift://): see connectors/%s/README.md for what the agent needs",
			ErrUnavailable, u.Scheme, docFolder(u.Scheme))
	}
	if u.Hostname() == "" {
		return nil, Target{}, fmt.Errorf("%w: warehouse URL needs a host: %s://host:port/database", ErrInvalid, u.Scheme)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, Target{}, fmt.Errorf("%w: warehouse URL needs one database name in its path, got %q", ErrInvalid, u.Path)
	}
	sslmode, timeout := "prefer", 10*time.Second
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch {
		case !known[k]:
			return nil, Target{}, fmt.Errorf("%w: warehouse URL: unknown parameter %q", ErrInvalid, k)
		case k == "schema":
			if v == "" {
				return nil, Target{}, fmt.Errorf("%w: warehouse URL: parameter schema is empty", ErrInvalid)
			}
			t.Schema = v
		case k == "sslmode":
			switch v {
			case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
				sslmode = v
			default:
				return nil, Target{}, fmt.Errorf("%w: warehouse URL: sslmode=%q: want disable, allow, prefer, require, verify-ca or verify-full", ErrInvalid, v)
			}
		case k == "connect_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, Target{}, fmt.Errorf("%w: warehouse URL: connect_timeout=%q: want a positive duration such as 5s", ErrInvalid, v)
			}
			timeout = d
		}
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=%s sslmode=%s", connValue(u.Hostname()), connValue(port), connValue(db), sslmode))
	if err != nil {
		return nil, Target{}, fmt.Errorf("%w: warehouse URL: %v", ErrInvalid, scrub(err, creds))
	}
	cfg.ConnectTimeout = timeout
	if v := creds["user"]; v != "" {
		cfg.User = v
	}
	if v := creds["password"]; v != "" {
		cfg.Password = v
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, Target{}, fmt.Errorf("connect to %s:%s/%s: %w", u.Hostname(), port, db, scrub(err, creds))
	}
	return c, t, nil
}

func docFolder(scheme string) string {
	switch scheme {
	case "file":
		return "parquet"
	default:
		return scheme
	}
}

// connValue quotes a value for a libpq key=value connection string.
func connValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// scrub returns err with every credential value but the user name removed
// from its text.
func scrub(err error, creds map[string]string) error {
	msg := err.Error()
	changed := false
	for k, v := range creds {
		if k != "user" && v != "" && strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}
