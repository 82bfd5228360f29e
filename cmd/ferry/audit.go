package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/audit"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/internal/cli"
)

const auditSynopsis = `ferry audit verify|export [flags]

  verify --db <sqlite path | postgres URL> [--key-file FILE]
      walk the control plane's audit log from its anchor to its head:
      exit 0 and "chain intact: N entries from seq A to B", or exit 1
      naming the first edited, deleted, reordered or truncated entry
  verify --export FILE [--key-file FILE]
      the same, offline, for a file written by ferry audit export
  export --db … [--key-file FILE] [--since T] [--until T] [--tenant T]
         [--actor-kind K] [--actor A] [--action PREFIX] [--outcome O] [--output FILE]
      write entries as JSON lines (a header with the chain's anchor, then
      one entry per line) to stdout or FILE (created 0600)

The PostgreSQL password comes from PGPASSWORD or ~/.pgpass, never the URL.
--key-file holds the log's HMAC key (at least 32 bytes; surrounding
whitespace is ignored) and must not be readable by group or others.
Times are RFC 3339 (2025-03-01T09:00:00Z), a date (2025-03-01, UTC) or a
duration before now (720h).`

// runAudit verifies and exports the control plane's audit log.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("usage: ferry audit verify|export [flags] (see --help)")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "Usage: "+auditSynopsis)
		return nil
	case "verify":
		return runAuditVerify(ctx, args[1:], stdout)
	case "export":
		return runAuditExport(ctx, args[1:], stdout, stderr)
	default:
		return cli.Usagef("unknown audit subcommand %q (usage: ferry audit verify|export)", args[0])
	}
}

func runAuditVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ferry audit verify", flag.ContinueOnError)
	dbFlag := fs.String("db", "", "the metadata `database`: a SQLite file's path or a postgres:// URL")
	exportFlag := fs.String("export", "", "verify this export `file` instead of a database")
	keyFile := fs.String("key-file", "", "`file` holding the log's HMAC key")
	if err := parse(fs, args, "ferry audit verify (--db DATABASE | --export FILE) [--key-file FILE]", stdout); err != nil {
		return done(err)
	}
	if fs.NArg() > 0 || (*dbFlag == "") == (*exportFlag == "") {
		return cli.Usagef("ferry audit verify takes one of --db or --export, and no arguments")
	}
	key, err := readKeyFile(*keyFile)
	if err != nil {
		return err
	}
	var rep audit.Report
	if *exportFlag != "" {
		f, err := os.Open(*exportFlag)
		if err != nil {
			return cli.Usage(fmt.Errorf("export: %w", err))
		}
		defer f.Close()
		rep, err = audit.VerifyExport(f, key)
		if errors.Is(err, audit.ErrInvalid) {
			return cli.Usage(fmt.Errorf("%s: %w", *exportFlag, err))
		}
		if err != nil {
			return err
		}
	} else {
		log, closeDB, err := openAuditLog(ctx, *dbFlag, key)
		if err != nil {
			return err
		}
		defer closeDB()
		if rep, err = log.Verify(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, rep)
	if !rep.OK() {
		return fmt.Errorf("the audit log is broken: %s", rep.Broken)
	}
	return nil
}

func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry audit export", flag.ContinueOnError)
	dbFlag := fs.String("db", "", "the metadata `database`: a SQLite file's path or a postgres:// URL")
	keyFile := fs.String("key-file", "", "`file` holding the log's HMAC key")
	since := fs.String("since", "", "entries at or after this `time`")
	until := fs.String("until", "", "entries before this `time`")
	output := fs.String("output", "", "write to this `file` (0600) instead of stdout")
	var f audit.Filter
	fs.StringVar(&f.Tenant, "tenant", "", "only this `tenant`'s entries")
	fs.StringVar((*string)(&f.ActorKind), "actor-kind", "", "only this `kind` of actor: user, admin, support, agent, system")
	fs.StringVar(&f.Actor, "actor", "", "only this `actor`'s entries")
	fs.StringVar(&f.Action, "action", "", "only actions starting with this `prefix` (job.)")
	fs.StringVar((*string)(&f.Outcome), "outcome", "", "only this `outcome`: success, denied, failed")
	if err := parse(fs, args, "ferry audit export --db DATABASE [flags] > audit.jsonl", stdout); err != nil {
		return done(err)
	}
	if fs.NArg() > 0 || *dbFlag == "" {
		return cli.Usagef("ferry audit export needs --db and takes no arguments")
	}
	var err error
	now := time.Now()
	if f.Since, err = parseWhen("--since", *since, now); err != nil {
		return err
	}
	if f.Until, err = parseWhen("--until", *until, now); err != nil {
		return err
	}
	key, err := readKeyFile(*keyFile)
	if err != nil {
		return err
	}
	log, closeDB, err := openAuditLog(ctx, *dbFlag, key)
	if err != nil {
		return err
	}
	defer closeDB()
	w := stdout
	var file *os.File
	if *output != "" {
		if file, err = os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return cli.Usage(fmt.Errorf("output: %w", err))
		}
		defer file.Close()
		w = file
	}
	n, err := log.Export(ctx, w, f)
	if errors.Is(err, audit.ErrInvalid) {
		return cli.Usage(err)
	}
	if err != nil {
		return err
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	fmt.Fprintf(stderr, "exported %d audit entries\n", n)
	return nil
}

// openAuditLog opens the audit log in a metadata database read-only. A
// SQLite path that does not exist is bad input, not a new database.
func openAuditLog(ctx context.Context, target string, key []byte) (*audit.Log, func(), error) {
	if !strings.HasPrefix(target, "postgres://") && !strings.HasPrefix(target, "postgresql://") {
		if _, err := os.Stat(target); err != nil {
			return nil, nil, cli.Usagef("--db %s: no such SQLite database (or give a postgres:// URL)", target)
		}
	}
	db, err := metadb.Open(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	log, err := audit.Open(ctx, db, &audit.Options{Key: key, ReadOnly: true})
	if err != nil {
		db.Close()
		if errors.Is(err, audit.ErrNoLog) {
			return nil, nil, cli.Usage(err)
		}
		return nil, nil, err
	}
	return log, func() { db.Close() }, nil
}

// readKeyFile reads an HMAC key ("" is no key). The file must not be
// readable by group or others; its bytes are never printed.
func readKeyFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, cli.Usage(fmt.Errorf("key file: %w", err))
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, cli.Usagef("key file %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.Usage(fmt.Errorf("key file: %w", err))
	}
	key := bytes.TrimSpace(b)
	if len(key) < 32 {
		return nil, cli.Usagef("key file %s holds %d bytes: want a key of at least 32", path, len(key))
	}
	return key, nil
}

// parseWhen reads a time: RFC 3339, a date (UTC), or a duration before now.
func parseWhen(flagName, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, cli.Usagef("%s %q: want an RFC 3339 time (2025-03-01T09:00:00Z), a date (2025-03-01) or a duration before now (720h)", flagName, v)
}
