package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/internal/pki"
)

// Limits of enrollment.
const (
	DefaultEnrollmentTTL     = time.Hour
	MaxEnrollmentTTL         = 24 * time.Hour
	DefaultAgentCertValidity = 24 * time.Hour
	// crlValidity is how long a published revocation list stays valid;
	// followers refresh well within it.
	crlValidity = time.Hour
	// enrollTokenPrefix marks Ferry enrollment tokens (for secret scanners).
	enrollTokenPrefix = "fet_"
)

// errBadEnrollToken is the one answer to every unusable token, so that a
// caller learns nothing about which tokens exist.
var errBadEnrollToken = errors.New("enrollment token is invalid, expired or already used: ask your Ferry admin for a new one")

// errRevoked is returned for an agent that was revoked.
var errRevoked = errors.New("agent is revoked")

// createEnrollment stores the hash of a new one-time token.
func (s *store) createEnrollment(ctx context.Context, id pki.AgentIdentity, tokenHash string, now, expires time.Time) error {
	return s.tx(ctx, func(tx *metadb.Tx) error {
		var revoked int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM revoked_agents WHERE agent_id = ?`, id.AgentID).Scan(&revoked); err != nil {
			return fmt.Errorf("metadata db: %w", err)
		}
		if revoked > 0 {
			return fmt.Errorf("agent %q: %w; enroll it under a new agent ID", id.AgentID, errRevoked)
		}
		switch tenant, found, err := agentTenant(ctx, tx, id.AgentID); {
		case err != nil:
			return err
		case found && tenant != id.Tenant:
			return fmt.Errorf("agent %q: %w", id.AgentID, errAgentOfOtherTenant)
		}
		_, err := tx.Exec(ctx, `INSERT INTO enrollment_tokens (token_hash, agent_id, tenant, created_unix_nanos, expires_unix_nanos) VALUES (?, ?, ?, ?, ?)`,
			tokenHash, id.AgentID, id.Tenant, now.UnixNano(), expires.UnixNano())
		if err != nil {
			return fmt.Errorf("metadata db: enrollment: %w", err)
		}
		return nil
	})
}

// agentTenant returns the tenant an agent ID belongs to: its record's, its
// certificates' or its enrollments'. It reports false for an ID never seen.
func agentTenant(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) *sql.Row
}, agentID string) (string, bool, error) {
	var tenant string
	err := q.QueryRow(ctx, `
SELECT tenant FROM agents WHERE id = ?
UNION ALL SELECT tenant FROM agent_certs WHERE agent_id = ?
UNION ALL SELECT tenant FROM enrollment_tokens WHERE agent_id = ?
LIMIT 1`, agentID, agentID, agentID).Scan(&tenant)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("metadata db: tenant of agent %q: %w", agentID, err)
	}
	return tenant, true, nil
}

// redeemEnrollment marks a token used and returns the identity it was
// issued for; a token works once, before it expires, for an agent not
// revoked.
func (s *store) redeemEnrollment(ctx context.Context, tokenHash string, now time.Time) (pki.AgentIdentity, error) {
	var id pki.AgentIdentity
	err := s.tx(ctx, func(tx *metadb.Tx) error {
		err := tx.QueryRow(ctx, `
UPDATE enrollment_tokens SET used_unix_nanos = ?
WHERE token_hash = ? AND used_unix_nanos = 0 AND expires_unix_nanos > ?
	AND agent_id NOT IN (SELECT agent_id FROM revoked_agents)
RETURNING agent_id, tenant`, now.UnixNano(), tokenHash, now.UnixNano()).Scan(&id.AgentID, &id.Tenant)
		if errors.Is(err, sql.ErrNoRows) {
			return errBadEnrollToken
		}
		if err != nil {
			return fmt.Errorf("metadata db: enrollment: %w", err)
		}
		return nil
	})
	return id, err
}

// recordCert remembers an issued certificate (its serial, for revocation).
func (s *store) recordCert(ctx context.Context, id pki.AgentIdentity, cert *x509.Certificate, how string, now time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO agent_certs (serial, agent_id, tenant, not_after_unix_nanos, issued_unix_nanos, how) VALUES (?, ?, ?, ?, ?, ?)`,
		cert.SerialNumber.Text(16), id.AgentID, id.Tenant, cert.NotAfter.UnixNano(), now.UnixNano(), how)
	if err != nil {
		return fmt.Errorf("metadata db: record certificate: %w", err)
	}
	return nil
}

// revokeAgent revokes an agent and returns how many certificates were
// issued to it.
func (s *store) revokeAgent(ctx context.Context, agentID, reason string, now time.Time) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *metadb.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO revoked_agents (agent_id, revoked_unix_nanos, reason) VALUES (?, ?, ?) ON CONFLICT (agent_id) DO NOTHING`,
			agentID, now.UnixNano(), reason); err != nil {
			return fmt.Errorf("metadata db: revoke: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE enrollment_tokens SET used_unix_nanos = ? WHERE agent_id = ? AND used_unix_nanos = 0`, now.UnixNano(), agentID); err != nil {
			return fmt.Errorf("metadata db: revoke: %w", err)
		}
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM agent_certs WHERE agent_id = ?`, agentID).Scan(&n)
	})
	return n, err
}

// revocations returns the revoked agent IDs, the serials of their
// certificates still within validity, and the list's number (it grows with
// every revocation).
func (s *store) revocations(ctx context.Context, now time.Time) (agents map[string]bool, serials []pki.RevokedCert, number int64, err error) {
	agents = map[string]bool{}
	rows, err := s.db.Query(ctx, `SELECT agent_id FROM revoked_agents`)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("metadata db: revocations: %w", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, nil, 0, fmt.Errorf("metadata db: revocations: %w", err)
		}
		agents[id] = true
	}
	rows.Close()
	rows, err = s.db.Query(ctx, `
SELECT c.serial, r.revoked_unix_nanos FROM agent_certs c JOIN revoked_agents r ON r.agent_id = c.agent_id
WHERE c.not_after_unix_nanos > ? ORDER BY c.serial`, now.UnixNano())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("metadata db: revocations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var hexSerial string
		var at int64
		if err := rows.Scan(&hexSerial, &at); err != nil {
			return nil, nil, 0, fmt.Errorf("metadata db: revocations: %w", err)
		}
		n, ok := new(big.Int).SetString(hexSerial, 16)
		if !ok {
			return nil, nil, 0, fmt.Errorf("metadata db: certificate serial %q is not hex", hexSerial)
		}
		serials = append(serials, pki.RevokedCert{Serial: n, RevokedAt: time.Unix(0, at)})
	}
	return agents, serials, int64(len(agents)) + 1, rows.Err()
}

// loadRevocations fills the in-memory set of revoked agents the agent
// listener checks at every handshake.
func (s *Server) loadRevocations(ctx context.Context) error {
	agents, _, _, err := s.store.revocations(ctx, time.Now())
	if err != nil {
		return err
	}
	s.revokedMu.Lock()
	s.revoked = agents
	s.revokedMu.Unlock()
	return nil
}

// verifyAgentConn refuses a handshake from a revoked agent. Every new
// connection is checked, so a revoked agent is refused on its next one.
func (s *Server) verifyAgentConn(cs tls.ConnectionState) error {
	cn := pki.PeerCommonName(cs)
	if cn == "" {
		return nil // ClientAuth already requires a verified certificate
	}
	s.revokedMu.RLock()
	revoked := s.revoked[cn]
	s.revokedMu.RUnlock()
	if revoked {
		s.log.Warn("revoked agent refused", "agent_id", cn)
		return fmt.Errorf("agent %q: %w", cn, errRevoked)
	}
	return nil
}

// enrollmentRequest checks that r is a POST to a control plane that holds
// the CA key and decodes its body into req; it answers the error itself and
// returns false when not.
func (s *Server) enrollmentRequest(w http.ResponseWriter, r *http.Request, req any) bool {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return false
	}
	if s.ca == nil {
		writeError(w, http.StatusNotImplemented, "enrollment is off: the control plane has no CA key (ca_key in its config)")
		return false
	}
	if code, err := decodeBody(w, r, req); err != nil {
		writeError(w, code, err.Error())
		return false
	}
	return true
}

// handleEnrollments issues a one-time enrollment token (bearer token).
func (s *Server) handleEnrollments(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollmentRequest
	if !s.enrollmentRequest(w, r, &req) {
		return
	}
	// An admin enrolls agents of their own tenant; the operator's token
	// (api_token_file) may name any.
	p := principal(r)
	if req.Tenant == "" {
		req.Tenant = p.Tenant
	}
	if req.Tenant != p.Tenant && !isOperator(p) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("tenant %q: an admin enrolls agents of their own tenant (%s) only", req.Tenant, p.Tenant))
		return
	}
	id := pki.AgentIdentity{AgentID: req.AgentID, Tenant: req.Tenant}
	if err := id.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.catalog.EnsureTenant(r.Context(), id.Tenant, id.Tenant); err != nil {
		s.log.Error("enrollment failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "could not record the tenant")
		return
	}
	ttl := DefaultEnrollmentTTL
	if req.TTLSeconds != 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	if ttl <= 0 || ttl > MaxEnrollmentTTL {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl_seconds %d: want 1 to %d", req.TTLSeconds, int64(MaxEnrollmentTTL/time.Second)))
		return
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		writeError(w, http.StatusInternalServerError, "could not make a token")
		return
	}
	token := enrollTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := time.Now()
	if err := s.store.createEnrollment(r.Context(), id, hashEnrollToken(token), now, now.Add(ttl)); err != nil {
		if errors.Is(err, errRevoked) || errors.Is(err, errAgentOfOtherTenant) {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		s.log.Error("enrollment failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "could not store the enrollment")
		return
	}
	s.log.Info("enrollment token issued", "agent_id", id.AgentID, "tenant", id.Tenant, "expires", now.Add(ttl).UTC().Format(time.RFC3339))
	writeJSON(w, http.StatusCreated, api.Enrollment{Token: token, AgentID: id.AgentID, Tenant: id.Tenant, ExpiresAt: now.Add(ttl).UTC()})
}

func hashEnrollToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// handleEnroll exchanges a one-time token and a certificate request for the
// agent's first certificate. The token is the only credential: this route
// is not behind the bearer token.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req api.EnrollRequest
	if !s.enrollmentRequest(w, r, &req) {
		return
	}
	block, rest := pem.Decode([]byte(req.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" || strings.TrimSpace(string(rest)) != "" {
		writeError(w, http.StatusBadRequest, "csr: want one PEM block of type CERTIFICATE REQUEST")
		return
	}
	// Check the request before spending the token on it.
	if _, err := x509.ParseCertificateRequest(block.Bytes); err != nil {
		writeError(w, http.StatusBadRequest, "csr: "+err.Error())
		return
	}
	now := time.Now()
	id, err := s.store.redeemEnrollment(r.Context(), hashEnrollToken(strings.TrimSpace(req.Token)), now)
	if err != nil {
		if errors.Is(err, errBadEnrollToken) {
			s.log.Warn("enrollment refused: bad token", "remote", r.RemoteAddr)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		s.log.Error("enrollment failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "could not redeem the token")
		return
	}
	cert, err := s.issue(r.Context(), block.Bytes, id, "enroll", now)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.log.Info("agent enrolled", "agent_id", id.AgentID, "tenant", id.Tenant, "serial", cert.SerialNumber.Text(16), "not_after", cert.NotAfter.UTC().Format(time.RFC3339))
	writeJSON(w, http.StatusOK, api.EnrollResponse{
		AgentID: id.AgentID, Tenant: id.Tenant, NotAfter: cert.NotAfter.UTC(),
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		CA:          string(s.ca.CertificatePEM()),
	})
}

// issue signs a certificate for id and records its serial.
func (s *Server) issue(ctx context.Context, csrDER []byte, id pki.AgentIdentity, how string, now time.Time) (*x509.Certificate, error) {
	cert, err := s.ca.SignAgent(csrDER, id, s.cfg.AgentCertValidity)
	if err != nil {
		return nil, err
	}
	if err := s.store.recordCert(ctx, id, cert, how, now); err != nil {
		return nil, err
	}
	return cert, nil
}

// handleRevoke revokes an agent (bearer token): its sessions end now, its
// next connection to the control plane is refused, and its certificates go
// on the revocation list the engine follows.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	agentID := r.PathValue("id")
	var req api.RevokeRequest
	if code, err := decodeBody(w, r, &req); err != nil {
		writeError(w, code, err.Error())
		return
	}
	if len(req.Reason) > 256 {
		writeError(w, http.StatusBadRequest, "reason: at most 256 bytes")
		return
	}
	// An admin revokes their own tenant's agents: another tenant's agent is
	// not found, so its ID tells nothing.
	if p := principal(r); !isOperator(p) {
		tenant, found, err := agentTenant(r.Context(), s.store.db, agentID)
		if err != nil {
			s.log.Error("revoke failed", "agent_id", agentID, "error", err.Error())
			writeError(w, http.StatusInternalServerError, "could not revoke the agent")
			return
		}
		if !found || tenant != p.Tenant {
			writeError(w, http.StatusNotFound, fmt.Sprintf("agent %q not found", agentID))
			return
		}
	}
	now := time.Now()
	n, err := s.store.revokeAgent(r.Context(), agentID, req.Reason, now)
	if err != nil {
		s.log.Error("revoke failed", "agent_id", agentID, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "could not revoke the agent")
		return
	}
	s.revokedMu.Lock()
	s.revoked[agentID] = true
	s.revokedMu.Unlock()
	s.mu.Lock()
	ss := s.sessions[agentID]
	s.mu.Unlock()
	if ss != nil {
		ss.kick("agent revoked")
	}
	s.log.Warn("agent revoked", "agent_id", agentID, "certificates", n, "reason", req.Reason)
	writeJSON(w, http.StatusOK, api.Revocation{AgentID: agentID, RevokedAt: now.UTC(), Certificates: n})
}

// handleCRL serves the CA-signed revocation list (DER).
func (s *Server) handleCRL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, http.MethodGet, http.MethodHead)
		return
	}
	if s.ca == nil {
		writeError(w, http.StatusNotImplemented, "no revocation list: the control plane has no CA key (ca_key in its config)")
		return
	}
	_, serials, number, err := s.store.revocations(r.Context(), time.Now())
	if err != nil {
		s.log.Error("revocation list failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "could not build the revocation list")
		return
	}
	der, err := s.ca.RevocationList(serials, number, crlValidity)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "could not sign the revocation list")
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(der)
}

// Renew issues a new certificate to the calling agent for the key of a new
// certificate request. The identity comes from the verified certificate of
// the connection, never from the request.
func (a *agentService) Renew(ctx context.Context, req *agentapi.RenewRequest) (*agentapi.RenewResponse, error) {
	s := a.s
	if s.ca == nil {
		return nil, status.Error(codes.Unimplemented, "renewal is off: the control plane has no CA key")
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	id, err := pki.IdentityOf(ti.State.VerifiedChains[0][0])
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "renew: %v", err)
	}
	s.revokedMu.RLock()
	revoked := s.revoked[id.AgentID]
	s.revokedMu.RUnlock()
	if revoked {
		return nil, status.Errorf(codes.PermissionDenied, "agent %q: %v", id.AgentID, errRevoked)
	}
	now := time.Now()
	cert, err := s.issue(ctx, req.CsrDer, id, "renew", now)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "renew: %v", err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "agent certificate renewed", slog.String("agent_id", id.AgentID),
		slog.String("serial", cert.SerialNumber.Text(16)), slog.String("not_after", cert.NotAfter.UTC().Format(time.RFC3339)))
	return &agentapi.RenewResponse{CertificateDer: cert.Raw}, nil
}
