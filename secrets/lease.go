package secrets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// DBCredentials are short-lived database credentials from Vault's database
// secrets engine: a user of their own for one job.
type DBCredentials struct {
	Username string
	Password Secret
	LeaseID  string
	TTL      time.Duration
}

// Session holds the leases one job takes. It renews each at about two
// thirds of its TTL (with jitter, as Vault Agent does), replaces one whose
// maximum TTL is ending, and revokes them all on Close, whether the job
// succeeded, failed or was cancelled.
type Session struct {
	v      *Vault
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	leases map[string]bool // lease IDs held, not yet revoked
	closed bool
}

// NewSession starts a job's set of leases.
func (v *Vault) NewSession() *Session {
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{v: v, ctx: ctx, cancel: cancel, leases: map[string]bool{}}
}

// DatabaseCredentials reads credentials at mount/creds/role and keeps them
// alive: renewed in the background while renewable; when the lease reaches
// its maximum TTL, new credentials are read and given to onReplace (which
// may be nil), and those are kept alive in turn.
func (s *Session) DatabaseCredentials(ctx context.Context, mount, role string, onReplace func(DBCredentials)) (DBCredentials, error) {
	path := mount + "/creds/" + role
	sec, creds, err := s.read(ctx, path)
	if err != nil {
		return DBCredentials{}, err
	}
	s.wg.Add(1)
	go s.keep(path, sec, onReplace)
	return creds, nil
}

// read reads credentials and records their lease.
func (s *Session) read(ctx context.Context, path string) (*vault.Secret, DBCredentials, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, DBCredentials{}, fmt.Errorf("vault: %s: session closed", path)
	}
	var sec *vault.Secret
	err := s.v.retry(ctx, path, func() error {
		var err error
		sec, err = s.v.c.Logical().ReadWithContext(ctx, path)
		return err
	})
	if err != nil {
		return nil, DBCredentials{}, err
	}
	if sec == nil || sec.LeaseID == "" {
		return nil, DBCredentials{}, fmt.Errorf("vault: %s: no lease in the response: %w", path, ErrVault)
	}
	user, _ := sec.Data["username"].(string)
	pass, _ := sec.Data["password"].(string)
	if user == "" || pass == "" {
		return nil, DBCredentials{}, fmt.Errorf("vault: %s: the response has no username and password: %w", path, ErrVault)
	}
	s.mu.Lock()
	s.leases[sec.LeaseID] = true
	s.mu.Unlock()
	s.v.log.Info("vault: lease taken", "path", path, "lease_id", sec.LeaseID, "ttl", time.Duration(sec.LeaseDuration)*time.Second)
	return sec, DBCredentials{Username: user, Password: New(pass), LeaseID: sec.LeaseID, TTL: time.Duration(sec.LeaseDuration) * time.Second}, nil
}

// keep renews a lease until it cannot be renewed any more — its maximum
// TTL nears, or the token it was taken with is replaced by a new sign-in
// (Vault revokes a token's leases when the token expires) — then replaces
// it, until the session closes.
func (s *Session) keep(path string, sec *vault.Secret, onReplace func(DBCredentials)) {
	defer s.wg.Done()
	for {
		w, err := s.v.c.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: sec, Increment: sec.LeaseDuration})
		if err != nil {
			s.v.log.Warn("vault: lease renewal", "path", path, "error", err.Error())
			return
		}
		signedIn := s.v.signedIn()
		go w.Start()
	renew:
		for {
			select {
			case <-s.ctx.Done():
				w.Stop()
				return
			case <-signedIn:
				w.Stop()
				s.v.log.Info("vault: signed in again; replacing the credentials taken with the old token", "path", path)
				break renew
			case r := <-w.RenewCh():
				s.v.log.Debug("vault: lease renewed", "path", path, "lease_id", sec.LeaseID, "ttl", time.Duration(r.Secret.LeaseDuration)*time.Second)
				if f := s.v.cfg.OnLeaseRenewed; f != nil {
					f()
				}
			case err := <-w.DoneCh():
				w.Stop()
				if err != nil {
					s.v.log.Warn("vault: lease renewal ended", "path", path, "lease_id", sec.LeaseID, "error", err.Error())
				}
				break renew
			}
		}
		// The lease is ending: new credentials, with backoff, until the
		// session closes.
		for {
			next, creds, err := s.read(s.ctx, path)
			if err == nil {
				s.v.log.Info("vault: credentials replaced", "path", path, "old_lease_id", sec.LeaseID, "lease_id", next.LeaseID)
				sec = next
				if onReplace != nil {
					onReplace(creds)
				}
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			s.v.log.Warn("vault: replacing credentials failed", "path", path, "error", err.Error())
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// Leases returns the IDs of the leases the session holds.
func (s *Session) Leases() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.leases))
	for id := range s.leases {
		out = append(out, id)
	}
	return out
}

// Close stops the renewals and revokes every lease the session took,
// synchronously (the database user is gone when it returns). It is
// idempotent.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, id := range s.Leases() {
		err := s.v.retry(ctx, "sys/leases/revoke", func() error {
			_, err := s.v.c.Logical().WriteWithContext(ctx, "sys/leases/revoke", map[string]any{"lease_id": id, "sync": true})
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.mu.Lock()
		delete(s.leases, id)
		s.mu.Unlock()
		s.v.log.Info("vault: lease revoked", "lease_id", id)
	}
	return errors.Join(errs...)
}

// AgentPolicy is the Vault policy an agent needs for a database role's
// dynamic credentials, and nothing more: read the role's credentials, renew
// and revoke the leases it holds (lease IDs are unguessable; a revoked
// user is gone for good).
func AgentPolicy(mount, role string) string {
	return fmt.Sprintf(`path "%s/creds/%s" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
`, mount, role)
}
