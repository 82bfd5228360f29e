package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/controlplane/audit"
	"github.com/ferry-ai/ferry/controlplane/auth"
	"github.com/ferry-ai/ferry/controlplane/catalog"
	"github.com/ferry-ai/ferry/controlplane/metadb"
)

// deleteTenant removes a tenant's jobs, agents and everything recorded
// about them (account closure) and returns the rows removed per table.
func (s *store) deleteTenant(ctx context.Context, tenant string) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.tx(ctx, func(tx *metadb.Tx) error {
		del := func(table, where string, args ...any) error {
			res, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE `+where, args...)
			if err != nil {
				return fmt.Errorf("metadata db: delete tenant %s: %s: %w", tenant, table, err)
			}
			n, _ := res.RowsAffected()
			out[table] += n
			return nil
		}
		for _, t := range []string{"job_events", "table_stats", "models", "purge_reports", "write_reports"} {
			if err := del(t, "job_id IN (SELECT id FROM jobs WHERE tenant = ?)", tenant); err != nil {
				return err
			}
		}
		if err := del("graphs", "agent_id IN (SELECT id FROM agents WHERE tenant = ?)", tenant); err != nil {
			return err
		}
		for _, t := range []string{"jobs", "agents", "enrollment_tokens", "agent_certs"} {
			if err := del(t, "tenant = ?", tenant); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// reasonTenantClosed ends the sessions of a closed tenant's agents.
const reasonTenantClosed = "the tenant's account was closed"

// kickTenant ends every session of a tenant's agents and waits (up to
// ctx) until each has recorded its end, so that nothing a session writes
// on its way out (its job re-queued) lands after the tenant's deletion.
func (s *Server) kickTenant(ctx context.Context, tenant, reason string) error {
	s.mu.Lock()
	var kick []*session
	for _, ss := range s.sessions {
		if ss.tenant == tenant {
			kick = append(kick, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range kick {
		ss.kick(reason)
	}
	for _, ss := range kick {
		select {
		case <-ss.ended:
		case <-ctx.Done():
			return fmt.Errorf("ending the sessions of tenant %s's agents: %w", tenant, ctx.Err())
		}
	}
	return nil
}

// handleDeleteTenant closes a tenant's account: every row of its metadata
// in every component goes at once, its audit entries keep their place in
// the chain with their identifying fields removed, and the answer reports
// what was deleted. The operator may close any tenant, a tenant's admin
// their own.
func (s *Server) handleDeleteTenant(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	tenant := r.PathValue("id")
	if !isOperator(p) && p.Tenant != tenant {
		writeError(w, http.StatusForbidden, "an admin may close only their own tenant's account")
		return
	}
	ctx := r.Context()
	// Its agents' sessions end first; they cannot connect again once the
	// catalog no longer knows the tenant (the default tenant is re-made).
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := s.kickTenant(kctx, tenant, reasonTenantClosed)
	cancel()
	if err != nil {
		s.log.Error("tenant deletion failed", "tenant", tenant, "error", err.Error())
		writeError(w, http.StatusServiceUnavailable, "the tenant's agents did not disconnect in time; run the deletion again")
		return
	}
	rep := api.TenantDeletion{Tenant: tenant, Deleted: map[string]int64{}}
	add := func(m map[string]int64) {
		for k, v := range m {
			rep.Deleted[k] += v
		}
	}
	steps := []func() (map[string]int64, error){
		func() (map[string]int64, error) { return s.store.deleteTenant(ctx, tenant) },
		func() (map[string]int64, error) { return s.auth.DeleteTenant(ctx, tenant) },
		func() (map[string]int64, error) {
			n, err := s.support.DeleteTenant(ctx, tenant)
			return map[string]int64{"support_requests": n}, err
		},
		func() (map[string]int64, error) {
			m, err := s.catalog.DeleteTenant(ctx, tenant)
			if errors.Is(err, catalog.ErrNotFound) {
				return m, nil // a tenant the catalog never knew
			}
			return m, err
		},
	}
	for _, step := range steps {
		m, err := step()
		add(m)
		if err != nil {
			s.log.Error("tenant deletion failed", "tenant", tenant, "error", err.Error())
			writeError(w, http.StatusInternalServerError, "deleting the tenant failed part-way; run the deletion again (it is idempotent)")
			return
		}
	}
	n, err := s.audit.RedactTenant(ctx, tenant)
	if err != nil {
		s.log.Error("tenant deletion: audit redaction failed", "tenant", tenant, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "redacting the tenant's audit entries failed; run the deletion again")
		return
	}
	rep.AuditRedacted = n
	tables := make([]string, 0, len(rep.Deleted))
	for k, v := range rep.Deleted {
		if v > 0 {
			tables = append(tables, k)
		}
	}
	sort.Strings(tables)
	if err := s.store.db.Scrub(ctx, tables...); err != nil {
		s.log.Error("tenant deletion: scrub", "tenant", tenant, "error", err.Error())
	}
	for k, v := range rep.Deleted {
		if v == 0 {
			delete(rep.Deleted, k)
		}
	}
	keys := make([]string, 0, len(rep.Deleted))
	for k := range rep.Deleted {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	details := map[string]string{"audit_redacted": strconv.FormatInt(n, 10)}
	for i, k := range keys {
		if i < 14 {
			details[k] = strconv.FormatInt(rep.Deleted[k], 10)
		}
	}
	// The deletion itself is the provider's record (tenant "": it outlives
	// the tenant).
	s.appendAudit(ctx, audit.Entry{ActorKind: audit.Admin, Actor: p.UserID, Action: "tenant.delete", Target: "tenant/" + tenant,
		Outcome: audit.Success, Remote: r.RemoteAddr, Details: details})
	if tenant == DefaultTenant {
		// The operator's account is re-made, so its token goes on working.
		if err := s.ensureOperator(ctx); err != nil {
			s.log.Error("re-making the operator account", "error", err.Error())
		}
		if err := s.catalog.EnsureTenant(ctx, DefaultTenant, DefaultTenant); err != nil {
			s.log.Error("re-making the default tenant", "error", err.Error())
		}
	}
	writeJSON(w, http.StatusOK, rep)
}
