// Package e2e holds Ferry's end-to-end tests: they build the real binaries,
// generate a demo warehouse, start the control plane, the engine and the
// agent as three processes on loopback over mutual TLS, and check the
// architecture's invariants from the outside (row data never reaches the
// control plane, 0-day retention in the engine, mTLS on every agent-facing
// port, atomic idempotent writeback, clear errors on bad input).
package e2e
