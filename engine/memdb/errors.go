//go:build duckdb_arrow

package memdb

import (
	"errors"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// safeErrorTypes are the DuckDB error types whose messages describe SQL,
// names, settings, paths or resources, never row values; they are passed on
// unchanged. Every other type's message may quote a value (a failed cast
// quotes the string, a constraint violation the key, strptime and JSON
// functions their input, error() its argument), so it is withheld.
var safeErrorTypes = map[duckdb.ErrorType]bool{
	duckdb.ErrorTypeParser:               true,
	duckdb.ErrorTypeSyntax:               true,
	duckdb.ErrorTypeBinder:               true,
	duckdb.ErrorTypeCatalog:              true,
	duckdb.ErrorTypePermission:           true,
	duckdb.ErrorTypeOutOfMemory:          true,
	duckdb.ErrorTypeInterrupt:            true,
	duckdb.ErrorTypeSettings:             true,
	duckdb.ErrorTypeNotImplemented:       true,
	duckdb.ErrorTypeTransaction:          true,
	duckdb.ErrorTypeDependency:           true,
	duckdb.ErrorTypeMissingExtension:     true,
	duckdb.ErrorTypeAutoLoad:             true,
	duckdb.ErrorTypePlanner:              true,
	duckdb.ErrorTypeOptimizer:            true,
	duckdb.ErrorTypeParameterNotResolved: true,
	duckdb.ErrorTypeParameterNotAllowed:  true,
	duckdb.ErrorTypeInvalidConfiguration: true,
	duckdb.ErrorTypeConnection:           true,
	duckdb.ErrorTypeScheduler:            true,
}

// safePrefixes are the message prefixes of safeErrorTypes, for errors that
// reach memdb as text only (duckdb-go's Arrow API formats DuckDB's message
// into a plain error).
var safePrefixes = []string{
	"Parser Error", "Syntax Error", "Binder Error", "Catalog Error",
	"Permission Error", "Out of Memory Error", "INTERRUPT Error",
	"Settings Error", "Not implemented Error", "TransactionContext Error",
	"Dependency Error", "Missing Extension Error", "Extension Autoloading Error",
	"Planner Error", "Optimizer Error", "Parameter Not Resolved Error",
	"Parameter Not Allowed Error", "Invalid Configuration Error",
	"Connection Error", "Scheduler Error",
}

// safeMessages are message prefixes, of otherwise withheld types, that carry
// only a setting name: DuckDB refusing to change a locked setting.
var safeMessages = []string{
	`Invalid Input Error: Cannot change configuration option "`,
}

const withheld = "message withheld by memdb: it may quote row values"

// redact returns err unchanged if its message cannot carry row values, and
// otherwise an error of the same DuckDB type whose message is withheld.
func redact(err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts := j.Unwrap()
		out := make([]error, len(parts))
		for i, p := range parts {
			out[i] = redact(p)
		}
		return errors.Join(out...)
	}
	var de *duckdb.Error
	if errors.As(err, &de) {
		if safeErrorTypes[de.Type] || hasAnyPrefix(de.Msg, safeMessages) {
			return err
		}
		kind, _, _ := strings.Cut(de.Msg, ": ")
		if len(kind) > 40 || !strings.HasSuffix(kind, "Error") {
			kind = "DuckDB error"
		}
		return &duckdb.Error{Type: de.Type, Msg: kind + ": " + withheld}
	}
	// A text-only DuckDB message has the form "… <Kind> Error: <details>".
	msg := err.Error()
	i := strings.Index(msg, "Error: ")
	if i < 0 {
		return err // not a DuckDB message: from duckdb-go or Arrow, no values
	}
	head := msg[:i+len("Error")]
	for _, p := range safePrefixes {
		if strings.HasSuffix(head, p) {
			return err
		}
	}
	if start := strings.LastIndex(head, ": ") + 1; hasAnyPrefix(strings.TrimSpace(msg[start:]), safeMessages) {
		return err
	}
	return errors.New(head + ": " + withheld)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
