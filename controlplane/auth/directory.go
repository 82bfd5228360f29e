package auth

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/metadb"
	"github.com/ferry-ai/ferry/controlplane/scim"
)

// Actions of the SCIM directory, reported in Event.Action besides
// ActionUserUpsert and ActionUserDeactivate.
const (
	ActionUserDelete   = "auth.user_delete"
	ActionGroupUpsert  = "auth.group_upsert"
	ActionGroupDelete  = "auth.group_delete"
	ActionRoleChange   = "auth.role_change"
	ActionTenantDelete = "auth.tenant_delete"
)

// scimActor is the actor of the directory's events when the context names
// no principal: the tenant's identity provider, provisioning.
const scimActor = "scim"

// Directory is the Service's users and groups as SCIM provisions them
// (scim.Handler serves it): users are the auth users, groups and
// memberships are kept in auth_groups and auth_group_members. A group's
// name or members changing recomputes its members' roles at once with the
// tenant identity provider's group → role mapping (IdPConfig.Roles, matched
// against a group's displayName and its externalId, highest wins, none
// mapped → no role). Deactivating or deleting a user ends their sessions
// and revokes their tokens in the same transaction. The break-glass admin
// is not part of the directory.
type Directory struct{ s *Service }

var _ scim.Directory = (*Directory)(nil)

// Directory returns the SCIM directory over the service's users and groups.
func (s *Service) Directory() *Directory { return &Directory{s: s} }

// querier is what reads need of a metadb.DB or a metadb.Tx.
type querier interface {
	Query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, q string, args ...any) *sql.Row
}

// foldName is the case-insensitive form of a userName: what
// auth_users.user_name_key holds and a userName filter compares.
func foldName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// isUnique reports a uniqueness violation from either database.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint failed") || strings.Contains(m, "23505") || strings.Contains(m, "duplicate key")
}

func notFound(what, id string) error { return fmt.Errorf("%s %q: %w", what, id, scim.ErrNotFound) }

// dirUserColumns are the columns scanDirUser reads (of auth_users).
const dirUserColumns = `id, external_id, user_name, email, display_name, given_name, family_name, active, created_unix_nanos, updated_unix_nanos`

// visibleUser keeps the break-glass admin out of the directory.
const visibleUser = ` AND id <> '` + BreakGlassUserID + `'`

func scanDirUser(r rowScanner) (scim.User, error) {
	var u scim.User
	var active int
	var created, updated int64
	if err := r.Scan(&u.ID, &u.ExternalID, &u.UserName, &u.Email, &u.DisplayName, &u.GivenName, &u.FamilyName, &active, &created, &updated); err != nil {
		return scim.User{}, err
	}
	// A user who signed in before SCIM knew them has no userName: their
	// email stands for it (and a userName filter finds them by it).
	if u.UserName == "" {
		u.UserName = u.Email
	}
	if u.UserName == "" {
		u.UserName = u.ID
	}
	u.Active = active == 1
	u.Created, u.Modified = fromNanos(created), fromNanos(updated)
	return u, nil
}

// getDirUser reads a user of the directory with their groups.
func getDirUser(ctx context.Context, q querier, tenant, id string) (scim.User, error) {
	u, err := scanDirUser(q.QueryRow(ctx, `SELECT `+dirUserColumns+` FROM auth_users WHERE tenant = ? AND id = ?`+visibleUser, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return scim.User{}, notFound("user", id)
	}
	if err != nil {
		return scim.User{}, err
	}
	u.Groups, err = userGroups(ctx, q, tenant, id)
	return u, err
}

// userGroups returns the groups a user is in, by name.
func userGroups(ctx context.Context, q querier, tenant, id string) ([]scim.Member, error) {
	rows, err := q.Query(ctx, `SELECT g.id, g.display_name FROM auth_group_members m JOIN auth_groups g ON g.tenant = m.tenant AND g.id = m.group_id
		WHERE m.tenant = ? AND m.user_id = ? ORDER BY g.display_name, g.id`, tenant, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []scim.Member
	for rows.Next() {
		var m scim.Member
		if err := rows.Scan(&m.Value, &m.Display); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// checkUser refuses a userName (case-insensitively) or externalId another
// user of the tenant has. An externalId equal to another user's subject is
// refused too: sign-in would match that user, not this one.
func checkUser(ctx context.Context, tx *metadb.Tx, tenant, self string, u scim.User) error {
	var n int
	err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM auth_users WHERE tenant = ? AND id <> ?
		AND (user_name_key = ? OR (user_name_key = '' AND lower(email) = lower(?)))`, tenant, self, foldName(u.UserName), u.UserName).Scan(&n)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("userName %q: another user has it: %w", u.UserName, scim.ErrConflict)
	}
	if u.ExternalID == "" {
		return nil
	}
	err = tx.QueryRow(ctx, `SELECT COUNT(*) FROM auth_users WHERE tenant = ? AND id <> ? AND (external_id = ? OR subject = ?)`,
		tenant, self, u.ExternalID, u.ExternalID).Scan(&n)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("externalId %q: another user has it (as external ID or sign-in subject): %w", u.ExternalID, scim.ErrConflict)
	}
	return nil
}

// dirResult wraps a directory failure: sentinel errors pass as they are
// (the protocol answers them), others are marked as the store's.
func dirResult(op, tenant string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, scim.ErrNotFound), errors.Is(err, scim.ErrConflict), errors.Is(err, ErrInvalid):
		return fmt.Errorf("auth: %s: %w", op, err)
	case isUnique(err):
		return fmt.Errorf("auth: %s: %w", op, scim.ErrConflict)
	}
	return fmt.Errorf("auth: %s of tenant %s: %w", op, tenant, err)
}

func checkTenant(tenant string) error {
	if tenant == "" {
		return fmt.Errorf("%w: tenant is required", ErrInvalid)
	}
	return nil
}

// CreateUser provisions a user. A new user is in no group, so has no role
// until a group gives one (or the group claim does, at sign-in).
func (d *Directory) CreateUser(ctx context.Context, tenant string, u scim.User) (scim.User, error) {
	if err := checkTenant(tenant); err != nil {
		return scim.User{}, err
	}
	if strings.TrimSpace(u.UserName) == "" {
		return scim.User{}, fmt.Errorf("auth: create user: %w: userName is required", ErrInvalid)
	}
	now := d.s.now()
	id := newID("u_")
	var out scim.User
	err := d.s.db.InTx(ctx, func(tx *metadb.Tx) error {
		if err := checkUser(ctx, tx, tenant, "", u); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO auth_users (tenant, id, external_id, user_name, user_name_key, email, display_name, given_name, family_name,
			active, role, created_unix_nanos, updated_unix_nanos) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)`,
			tenant, id, u.ExternalID, strings.TrimSpace(u.UserName), foldName(u.UserName), u.Email, u.DisplayName, u.GivenName, u.FamilyName,
			boolInt(u.Active), nanos(now), nanos(now))
		if err != nil {
			return err
		}
		out, err = getDirUser(ctx, tx, tenant, id)
		return err
	})
	if err = dirResult("create user", tenant, err); err != nil {
		return scim.User{}, err
	}
	actor, remote := actorOf(ctx, scimActor)
	d.s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionUserUpsert, Outcome: OutcomeSuccess, Remote: remote, Target: id, Reason: "provisioned by SCIM"})
	return out, nil
}

// GetUser returns a user with their groups.
func (d *Directory) GetUser(ctx context.Context, tenant, id string) (scim.User, error) {
	u, err := getDirUser(ctx, d.s.db, tenant, id)
	return u, dirResult("get user", tenant, err)
}

// userWhere is the SQL condition of a user filter (userName and
// emails.value case-insensitive), with its arguments.
func userWhere(f scim.Filter) (string, []any, error) {
	switch f.Attr {
	case "":
		return "", nil, nil
	case "userName":
		return ` AND (user_name_key = ? OR (user_name_key = '' AND lower(email) = lower(?)))`, []any{foldName(f.Value), f.Value}, nil
	case "externalId":
		return ` AND external_id = ?`, []any{f.Value}, nil
	case "emails.value":
		return ` AND lower(email) = lower(?)`, []any{f.Value}, nil
	case "displayName":
		return ` AND display_name = ?`, []any{f.Value}, nil
	}
	return "", nil, fmt.Errorf("%w: users cannot be filtered on %q", ErrInvalid, f.Attr)
}

// ListUsers returns the users matching f, oldest first, and how many match.
// An empty value matches nobody (an attribute left empty is absent).
func (d *Directory) ListUsers(ctx context.Context, tenant string, f scim.Filter, offset, count int) ([]scim.User, int, error) {
	where, args, err := userWhere(f)
	if err != nil {
		return nil, 0, dirResult("list users", tenant, err)
	}
	if f.Attr != "" && f.Value == "" {
		return nil, 0, nil
	}
	args = append([]any{tenant}, args...)
	from := ` FROM auth_users WHERE tenant = ?` + visibleUser + where
	var total int
	if err := d.s.db.QueryRow(ctx, `SELECT COUNT(*)`+from, args...).Scan(&total); err != nil {
		return nil, 0, dirResult("list users", tenant, err)
	}
	if count <= 0 || offset >= total {
		return nil, total, nil
	}
	rows, err := d.s.db.Query(ctx, `SELECT `+dirUserColumns+from+` ORDER BY created_unix_nanos, id LIMIT ? OFFSET ?`, append(args, count, max(offset, 0))...)
	if err != nil {
		return nil, 0, dirResult("list users", tenant, err)
	}
	var out []scim.User
	for rows.Next() {
		u, err := scanDirUser(rows)
		if err != nil {
			rows.Close()
			return nil, 0, dirResult("list users", tenant, err)
		}
		out = append(out, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, dirResult("list users", tenant, err)
	}
	// Their groups: one query per user of the page.
	for i := range out {
		if out[i].Groups, err = userGroups(ctx, d.s.db, tenant, out[i].ID); err != nil {
			return nil, 0, dirResult("list users", tenant, err)
		}
	}
	return out, total, nil
}

// ReplaceUser stores u in place of the user. An empty externalId keeps the
// one stored (identity providers leave it out of PUT, and sign-in matches
// it). Deactivating ends the user's sessions and revokes their tokens in
// the same transaction; reactivating recomputes their role from their
// groups.
func (d *Directory) ReplaceUser(ctx context.Context, tenant string, u scim.User) (scim.User, error) {
	if strings.TrimSpace(u.UserName) == "" {
		return scim.User{}, fmt.Errorf("auth: replace user: %w: userName is required", ErrInvalid)
	}
	now := d.s.now()
	var out scim.User
	var wasActive bool
	var sessions, tokens int64
	var changes []roleChange
	err := d.s.db.InTx(ctx, func(tx *metadb.Tx) error {
		var oldExt string
		var active int
		err := tx.QueryRow(ctx, `SELECT external_id, active FROM auth_users WHERE tenant = ? AND id = ?`+visibleUser, tenant, u.ID).Scan(&oldExt, &active)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("user", u.ID)
		}
		if err != nil {
			return err
		}
		wasActive = active == 1
		if u.ExternalID == "" {
			u.ExternalID = oldExt
		}
		if err := checkUser(ctx, tx, tenant, u.ID, u); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE auth_users SET external_id = ?, user_name = ?, user_name_key = ?, email = ?, display_name = ?, given_name = ?,
			family_name = ?, active = ?, updated_unix_nanos = ? WHERE tenant = ? AND id = ?`,
			u.ExternalID, strings.TrimSpace(u.UserName), foldName(u.UserName), u.Email, u.DisplayName, u.GivenName, u.FamilyName,
			boolInt(u.Active), nanos(now), tenant, u.ID)
		if err != nil {
			return err
		}
		switch {
		case wasActive && !u.Active:
			sessions, tokens, err = cutOff(ctx, tx, tenant, u.ID, now)
		case !wasActive && u.Active:
			changes, err = d.s.recomputeRoles(ctx, tx, tenant, []string{u.ID}, now)
		}
		if err != nil {
			return err
		}
		out, err = getDirUser(ctx, tx, tenant, u.ID)
		return err
	})
	if err = dirResult("replace user", tenant, err); err != nil {
		return scim.User{}, err
	}
	actor, remote := actorOf(ctx, scimActor)
	if wasActive && !u.Active {
		d.s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionUserDeactivate, Outcome: OutcomeSuccess, Remote: remote, Target: u.ID,
			Reason: fmt.Sprintf("deactivated by SCIM: %d sessions ended, %d tokens revoked", sessions, tokens)})
	} else {
		reason := "updated by SCIM"
		if !wasActive && u.Active {
			reason = "reactivated by SCIM"
		}
		d.s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionUserUpsert, Outcome: OutcomeSuccess, Remote: remote, Target: u.ID, Reason: reason})
	}
	d.s.emitRoleChanges(ctx, tenant, changes)
	return out, nil
}

// DeleteUser deletes a user: their sessions end, their tokens are revoked
// and deleted, they leave their groups, in one transaction. A later
// sign-in of theirs finds no user: it is refused when the tenant's
// provider has no_jit, else a new user is made just in time.
func (d *Directory) DeleteUser(ctx context.Context, tenant, id string) error {
	now := d.s.now()
	var sessions, tokens, groups int64
	err := d.s.db.InTx(ctx, func(tx *metadb.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM auth_users WHERE tenant = ? AND id = ?`+visibleUser, tenant, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return notFound("user", id)
		}
		var err error
		if sessions, tokens, err = cutOff(ctx, tx, tenant, id, now); err != nil {
			return err
		}
		// The groups the user leaves change.
		if _, err := tx.Exec(ctx, `UPDATE auth_groups SET updated_unix_nanos = ? WHERE tenant = ?
			AND id IN (SELECT group_id FROM auth_group_members WHERE tenant = ? AND user_id = ?)`, nanos(now), tenant, tenant, id); err != nil {
			return err
		}
		r, err := tx.Exec(ctx, `DELETE FROM auth_group_members WHERE tenant = ? AND user_id = ?`, tenant, id)
		if err != nil {
			return err
		}
		groups, _ = r.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM auth_tokens WHERE tenant = ? AND user_id = ?`, tenant, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM auth_users WHERE tenant = ? AND id = ?`, tenant, id)
		return err
	})
	if err = dirResult("delete user", tenant, err); err != nil {
		return err
	}
	actor, remote := actorOf(ctx, scimActor)
	d.s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionUserDelete, Outcome: OutcomeSuccess, Remote: remote, Target: id,
		Reason: fmt.Sprintf("deleted by SCIM: %d sessions ended, %d tokens revoked, left %d groups", sessions, tokens, groups)})
	return nil
}

// --- groups ---------------------------------------------------------------

const groupColumns = `id, external_id, display_name, created_unix_nanos, updated_unix_nanos`

func scanGroup(r rowScanner) (scim.Group, error) {
	var g scim.Group
	var created, updated int64
	if err := r.Scan(&g.ID, &g.ExternalID, &g.DisplayName, &created, &updated); err != nil {
		return scim.Group{}, err
	}
	g.Created, g.Modified = fromNanos(created), fromNanos(updated)
	return g, nil
}

// groupMembers returns the members of the tenant's groups ids, by group,
// each named by their userName.
func groupMembers(ctx context.Context, q querier, tenant string, ids []string) (map[string][]scim.Member, error) {
	out := map[string][]scim.Member{}
	if len(ids) == 0 {
		return out, nil
	}
	args := []any{tenant}
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := q.Query(ctx, `SELECT m.group_id, u.id, u.user_name, u.email FROM auth_group_members m
		JOIN auth_users u ON u.tenant = m.tenant AND u.id = m.user_id
		WHERE m.tenant = ? AND m.group_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`) ORDER BY m.group_id, u.created_unix_nanos, u.id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var gid, userName, email string
		var m scim.Member
		if err := rows.Scan(&gid, &m.Value, &userName, &email); err != nil {
			return nil, err
		}
		m.Display = cmp.Or(userName, email, m.Value)
		out[gid] = append(out[gid], m)
	}
	return out, rows.Err()
}

func getGroup(ctx context.Context, q querier, tenant, id string) (scim.Group, error) {
	g, err := scanGroup(q.QueryRow(ctx, `SELECT `+groupColumns+` FROM auth_groups WHERE tenant = ? AND id = ?`, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return scim.Group{}, notFound("group", id)
	}
	if err != nil {
		return scim.Group{}, err
	}
	ms, err := groupMembers(ctx, q, tenant, []string{id})
	g.Members = ms[id]
	return g, err
}

// setMembers makes the group's members exactly members (users of the
// tenant) and returns the users who were or are members.
func setMembers(ctx context.Context, tx *metadb.Tx, tenant, groupID string, members []scim.Member) ([]string, error) {
	var old []string
	rows, err := tx.Query(ctx, `SELECT user_id FROM auth_group_members WHERE tenant = ? AND group_id = ?`, tenant, groupID)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		old = append(old, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var want []string
	for _, m := range members {
		if !slices.Contains(want, m.Value) {
			want = append(want, m.Value)
		}
	}
	for _, id := range old {
		if !slices.Contains(want, id) {
			if _, err := tx.Exec(ctx, `DELETE FROM auth_group_members WHERE tenant = ? AND group_id = ? AND user_id = ?`, tenant, groupID, id); err != nil {
				return nil, err
			}
		}
	}
	for _, id := range want {
		if slices.Contains(old, id) {
			continue
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM auth_users WHERE tenant = ? AND id = ?`+visibleUser, tenant, id).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("member: %w", notFound("user", id))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO auth_group_members (tenant, group_id, user_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			tenant, groupID, id); err != nil {
			return nil, err
		}
	}
	affected := old
	for _, id := range want {
		if !slices.Contains(affected, id) {
			affected = append(affected, id)
		}
	}
	return affected, nil
}

// CreateGroup provisions a group with its members (users of the tenant:
// an unknown one is ErrNotFound) and gives them the roles it maps to.
func (d *Directory) CreateGroup(ctx context.Context, tenant string, g scim.Group) (scim.Group, error) {
	if err := checkTenant(tenant); err != nil {
		return scim.Group{}, err
	}
	if strings.TrimSpace(g.DisplayName) == "" {
		return scim.Group{}, fmt.Errorf("auth: create group: %w: displayName is required", ErrInvalid)
	}
	now := d.s.now()
	id := newID("g_")
	var out scim.Group
	var changes []roleChange
	err := d.s.db.InTx(ctx, func(tx *metadb.Tx) error {
		if err := checkGroup(ctx, tx, tenant, "", g.ExternalID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO auth_groups (tenant, id, external_id, display_name, created_unix_nanos, updated_unix_nanos)
			VALUES (?, ?, ?, ?, ?, ?)`, tenant, id, g.ExternalID, g.DisplayName, nanos(now), nanos(now)); err != nil {
			return err
		}
		affected, err := setMembers(ctx, tx, tenant, id, g.Members)
		if err != nil {
			return err
		}
		if changes, err = d.s.recomputeRoles(ctx, tx, tenant, affected, now); err != nil {
			return err
		}
		out, err = getGroup(ctx, tx, tenant, id)
		return err
	})
	if err = dirResult("create group", tenant, err); err != nil {
		return scim.Group{}, err
	}
	actor, remote := actorOf(ctx, scimActor)
	d.s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionGroupUpsert, Outcome: OutcomeSuccess, Remote: remote, Target: id,
		Reason: fmt.Sprintf("group %q created by SCIM with %d members", g.DisplayName, len(out.Members))})
	d.s.emitRoleChanges(ctx, tenant, changes)
	return out, nil
}

// checkGroup refuses an externalId another group of the tenant has.
func checkGroup(ctx context.Context, tx *metadb.Tx, tenant, self, externalID string) error {
	if externalID == "" {
		return nil
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM auth_groups WHERE tenant = ? AND id <> ? AND external_id = ?`, tenant, self, externalID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("group externalId %q: another group has it: %w", externalID, scim.ErrConflict)
	}
	return nil
}

// GetGroup returns a group with its members.
func (d *Directory) GetGroup(ctx context.Context, tenant, id string) (scim.Group, error) {
	g, err := getGroup(ctx, d.s.db, tenant, id)
	return g, dirResult("get group", tenant, err)
}

// ListGroups returns the groups matching f (displayName or externalId,
// exactly), oldest first, with their members, and how many match.
func (d *Directory) ListGroups(ctx context.Context, tenant string, f scim.Filter, offset, count int) ([]scim.Group, int, error) {
	from := ` FROM auth_groups WHERE tenant = ?`
	args := []any{tenant}
	switch f.Attr {
	case "":
	case "displayName":
		from += ` AND display_name = ?`
		args = append(args, f.Value)
	case "externalId":
		from += ` AND external_id = ?`
		args = append(args, f.Value)
	default:
		return nil, 0, dirResult("list groups", tenant, fmt.Errorf("%w: groups cannot be filtered on %q", ErrInvalid, f.Attr))
	}
	if f.Attr != "" && f.Value == "" {
		return nil, 0, nil
	}
	var total int
	if err := d.s.db.QueryRow(ctx, `SELECT COUNT(*)`+from, args...).Scan(&total); err != nil {
		return nil, 0, dirResult("list groups", tenant, err)
	}
	if count <= 0 || offset >= total {
		return nil, total, nil
	}
	rows, err := d.s.db.Query(ctx, `SELECT `+groupColumns+from+` ORDER BY created_unix_nanos, id LIMIT ? OFFSET ?`, append(args, count, max(offset, 0))...)
	if err != nil {
		return nil, 0, dirResult("list groups", tenant, err)
	}
	var out []scim.Group
	var ids []string
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			rows.Close()
			return nil, 0, dirResult("list groups", tenant, err)
		}
		out = append(out, g)
		ids = append(ids, g.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, dirResult("list groups", tenant, err)
	}
	ms, err := groupMembers(ctx, d.s.db, tenant, ids)
	if err != nil {
		return nil, 0, dirResult("list groups", tenant, err)
	}
	for i := range out {
		out[i].Members = ms[out[i].ID]
	}
	return out, total, nil
}

// ReplaceGroup stores g, members included, in place of the group (an empty
// externalId keeps the one stored), and recomputes the roles of those who
// were or are its members.
func (d *Directory) ReplaceGroup(ctx context.Context, tenant string, g scim.Group) (scim.Group, error) {
	if strings.TrimSpace(g.DisplayName) == "" {
		return scim.Group{}, fmt.Errorf("auth: replace group: %w: displayName is required", ErrInvalid)
	}
	now := d.s.now()
	var out scim.Group
	var changes []roleChange
	err := d.s.db.InTx(ctx, func(tx *metadb.Tx) error {
		var oldExt string
		err := tx.QueryRow(ctx, `SELECT external_id FROM auth_groups WHERE tenant = ? AND id = ?`, tenant, g.ID).Scan(&oldExt)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("group", g.ID)
		}
		if err != nil {
			return err
		}
		if g.ExternalID == "" {
			g.ExternalID = oldExt
		}
		if err := checkGroup(ctx, tx, tenant, g.ID, g.ExternalID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE auth_groups SET external_id = ?, display_name = ?, updated_unix_nanos = ? WHERE tenant = ? AND id = ?`,
			g.ExternalID, g.DisplayName, nanos(now), tenant, g.ID); err != nil {
			return err
		}
		affected, err := setMembers(ctx, tx, tenant, g.ID, g.Members)
		if err != nil {
			return err
		}
		if changes, err = d.s.recomputeRoles(ctx, tx, tenant, affected, now); err != nil {
			return err
		}
		out, err = getGroup(ctx, tx, tenant, g.ID)
		return err
	})
	if err = dirResult("replace group", tenant, err); err != nil {
		return scim.Group{}, err
	}
	actor, remote := actorOf(ctx, scimActor)
	d.s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionGroupUpsert, Outcome: OutcomeSuccess, Remote: remote, Target: g.ID,
		Reason: fmt.Sprintf("group %q replaced by SCIM: %d members", g.DisplayName, len(out.Members))})
	d.s.emitRoleChanges(ctx, tenant, changes)
	return out, nil
}

// DeleteGroup deletes a group and recomputes its members' roles.
func (d *Directory) DeleteGroup(ctx context.Context, tenant, id string) error {
	now := d.s.now()
	var changes []roleChange
	err := d.s.db.InTx(ctx, func(tx *metadb.Tx) error {
		affected, err := setMembers(ctx, tx, tenant, id, nil)
		if err != nil {
			return err
		}
		r, err := tx.Exec(ctx, `DELETE FROM auth_groups WHERE tenant = ? AND id = ?`, tenant, id)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return notFound("group", id)
		}
		changes, err = d.s.recomputeRoles(ctx, tx, tenant, affected, now)
		return err
	})
	if err = dirResult("delete group", tenant, err); err != nil {
		return err
	}
	actor, remote := actorOf(ctx, scimActor)
	d.s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionGroupDelete, Outcome: OutcomeSuccess, Remote: remote, Target: id, Reason: "deleted by SCIM"})
	d.s.emitRoleChanges(ctx, tenant, changes)
	return nil
}

// --- roles ------------------------------------------------------------------

// roleChange is a user's role changed by their groups.
type roleChange struct {
	user     string
	from, to Role
}

// groupRole is the role the tenant's identity provider maps a user's
// groups to (their displayNames and externalIds): the highest, or none.
// A tenant without a provider maps nothing.
func (s *Service) groupRole(tenant string, names []string) Role {
	p := s.idps[tenant]
	if p == nil {
		return ""
	}
	return p.roleOf(names)
}

// recomputeRoles sets the role of each user from their groups, in tx, and
// returns the changes.
func (s *Service) recomputeRoles(ctx context.Context, tx *metadb.Tx, tenant string, users []string, now time.Time) ([]roleChange, error) {
	var out []roleChange
	for _, id := range users {
		rows, err := tx.Query(ctx, `SELECT g.display_name, g.external_id FROM auth_group_members m
			JOIN auth_groups g ON g.tenant = m.tenant AND g.id = m.group_id WHERE m.tenant = ? AND m.user_id = ?`, tenant, id)
		if err != nil {
			return nil, err
		}
		var names []string
		for rows.Next() {
			var name, ext string
			if err := rows.Scan(&name, &ext); err != nil {
				rows.Close()
				return nil, err
			}
			names = append(names, name)
			if ext != "" {
				names = append(names, ext)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		var cur string
		err = tx.QueryRow(ctx, `SELECT role FROM auth_users WHERE tenant = ? AND id = ?`, tenant, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		role := s.groupRole(tenant, names)
		if Role(cur) == role {
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE auth_users SET role = ?, updated_unix_nanos = ? WHERE tenant = ? AND id = ?`,
			string(role), nanos(now), tenant, id); err != nil {
			return nil, err
		}
		out = append(out, roleChange{user: id, from: Role(cur), to: role})
	}
	return out, nil
}

func (s *Service) emitRoleChanges(ctx context.Context, tenant string, changes []roleChange) {
	actor, remote := actorOf(ctx, scimActor)
	for _, c := range changes {
		s.emit(Event{Tenant: tenant, Actor: actor, Action: ActionRoleChange, Outcome: OutcomeSuccess, Remote: remote, Target: c.user,
			Reason: fmt.Sprintf("role %s → %s from the user's SCIM groups", roleName(c.from), roleName(c.to))})
	}
}
