// Package secrets holds Ferry's credentials. A Secret is a value that never
// prints: not through fmt (any verb, at any depth of a struct), JSON, text
// encoding or log/slog. Code reveals it only where it is used (Reveal),
// never where it is logged or reported.
//
// Vault-backed, short-lived, least-privilege credentials (auth methods, KV
// and dynamic database secrets with lease renewal and revocation, Transit
// data keys) build on it.
package secrets

import (
	"fmt"
	"io"
	"log/slog"
)

// Redacted is what a Secret prints as, everywhere.
const Redacted = "[redacted]"

// Secret is a sensitive string. Its zero value is empty. The value is held
// by a closure: fmt prints a struct's unexported fields by reflection,
// without calling their methods, and a func prints as an address, never as
// what it holds.
type Secret struct {
	v func() string
}

// New wraps a sensitive string.
func New(v string) Secret { return Secret{v: func() string { return v }} }

// Reveal returns the value, for the one place that uses it (a connection,
// a request header). Never log or report what it returns.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return s.v()
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// String returns Redacted.
func (s Secret) String() string { return Redacted }

// GoString returns Redacted (the %#v verb).
func (s Secret) GoString() string { return Redacted }

// Format writes Redacted for every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, Redacted) }

// MarshalJSON encodes Redacted.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText encodes Redacted (YAML, TOML and text encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue logs Redacted.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }
