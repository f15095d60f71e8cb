package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/protocol/access"
)

// accessMigration is migration 2 (see migrations).
const accessMigration = `
CREATE TABLE teams (
	name       TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE team_members (
	team      TEXT NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
	user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	PRIMARY KEY (team, user_name)
) STRICT, WITHOUT ROWID;
CREATE INDEX team_members_user ON team_members (user_name);

-- Custom roles only: the built-in roles are code (protocol/access).
CREATE TABLE roles (
	name        TEXT PRIMARY KEY,
	description TEXT NOT NULL DEFAULT '',
	actions     TEXT NOT NULL,
	shareable   INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE grants (
	id           TEXT PRIMARY KEY,
	subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'team')),
	subject_name TEXT NOT NULL,
	role         TEXT NOT NULL,
	scope_kind   TEXT NOT NULL CHECK (scope_kind IN ('global', 'device-group', 'device', 'app')),
	scope_name   TEXT NOT NULL DEFAULT '',
	created_by   TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	UNIQUE (subject_kind, subject_name, role, scope_kind, scope_name)
) STRICT;
CREATE INDEX grants_scope ON grants (scope_kind, scope_name);
CREATE INDEX grants_role ON grants (role);

CREATE TRIGGER users_delete_grants AFTER DELETE ON users BEGIN
	DELETE FROM grants WHERE subject_kind = 'user' AND subject_name = OLD.name;
END;
CREATE TRIGGER teams_delete_grants AFTER DELETE ON teams BEGIN
	DELETE FROM grants WHERE subject_kind = 'team' AND subject_name = OLD.name;
END;
CREATE TRIGGER device_groups_delete_grants AFTER DELETE ON device_groups BEGIN
	DELETE FROM grants WHERE scope_kind = 'device-group' AND scope_name = OLD.name;
END;
CREATE TRIGGER devices_delete_grants AFTER DELETE ON devices BEGIN
	DELETE FROM grants WHERE scope_kind = 'device' AND scope_name = OLD.id;
END;

-- Operator tokens issued (the token itself is never stored). Rows outlive
-- their user: a revoked token stays listed until it expires.
CREATE TABLE operator_tokens (
	id         TEXT PRIMARY KEY,
	user_name  TEXT NOT NULL,
	issued_at  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL DEFAULT 0,
	revoked_by TEXT NOT NULL DEFAULT '',
	CHECK (expires_at > issued_at)
) STRICT;
CREATE INDEX operator_tokens_user ON operator_tokens (user_name);

-- Pending invitations: only the SHA-256 of the activation token is kept.
CREATE TABLE invitations (
	user_name  TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
	token_hash TEXT NOT NULL UNIQUE,
	expires_at INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

-- The first user (made by init) is the controller's admin.
INSERT INTO grants (id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at)
	SELECT 'g-admin', 'user', name, 'admin', 'global', '', 'system', created_at
	FROM users WHERE state = 'active' ORDER BY created_at, name LIMIT 1;
`

// Team is a named set of users; grants to a team reach its active members.
type Team struct {
	Name      string
	Members   []string // user names, sorted
	CreatedAt time.Time
}

// Role is a role as the store lists it: a built-in one (Builtin set, zero
// times) or a custom one.
type Role struct {
	access.Role
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Grant is a grant as stored.
type Grant struct {
	access.Grant
	// SubjectID is the immutable id of the user a user grant was given to
	// (set by the store at insert; empty for team grants). The grant
	// applies only while the user named Subject.Name has this id.
	SubjectID string
	CreatedBy string
	CreatedAt time.Time
}

// OperatorToken is the record of an operator token the controller issued
// (its id and lifetime, never the token).
type OperatorToken struct {
	ID        string // the token's jti
	User      string
	UserID    string // the user's immutable id (set by the store at insert)
	IssuedAt  time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero: not revoked
	RevokedBy string
}

// Revoked reports whether the token was revoked.
func (t OperatorToken) Revoked() bool { return !t.RevokedAt.IsZero() }

// Invitation invites a new user: the user is created "invited" and becomes
// active with the activation token whose SHA-256 is TokenHash.
type Invitation struct {
	User      string
	TokenHash string // hex SHA-256 of the activation token
	ExpiresAt time.Time
	CreatedBy string
	CreatedAt time.Time // zero: now
}

// ValidateAccessName checks a user or team name as the access model wants
// it (protocol/access): 1-63 lower-case letters, digits, '.', '_' or '-'.
func ValidateAccessName(kind, name string) error {
	if err := (access.Subject{Kind: access.SubjectKind(kind), Name: name}).Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// NewGrantID returns a fresh grant id, "g-" and 10 hex digits.
func NewGrantID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b) // never fails
	return "g-" + hex.EncodeToString(b)
}

// ---- teams ----

func teamExists(ctx context.Context, q queryer, name string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM teams WHERE name = ?`, name).Scan(&one)
	if isNoRows(err) {
		return fmt.Errorf("%w: team %s does not exist; list teams with `edgewarden teams ls`", ErrNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("read team %s: %w", name, err)
	}
	return nil
}

func userExists(ctx context.Context, q queryer, name string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, name).Scan(&one)
	if isNoRows(err) {
		return fmt.Errorf("%w: user %s does not exist; list users with `edgewarden users ls`", ErrNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("read user %s: %w", name, err)
	}
	return nil
}

// CreateTeam creates an empty team.
func (db *DB) CreateTeam(ctx context.Context, name string) (Team, error) {
	if err := ValidateAccessName("team", name); err != nil {
		return Team{}, err
	}
	var t Team
	err := db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO teams (name, created_at) VALUES (?, ?)`, name, unixNano(db.now()))
		if isConstraint(err) {
			return fmt.Errorf("%w: team %s already exists; choose another name", ErrConflict, name)
		}
		if err != nil {
			return fmt.Errorf("create team %s: %w", name, err)
		}
		t, err = getTeam(ctx, tx, name)
		return err
	})
	return t, err
}

func getTeam(ctx context.Context, q queryer, name string) (Team, error) {
	var created int64
	err := q.QueryRowContext(ctx, `SELECT created_at FROM teams WHERE name = ?`, name).Scan(&created)
	if isNoRows(err) {
		return Team{}, fmt.Errorf("%w: team %s does not exist; list teams with `edgewarden teams ls`", ErrNotFound, name)
	}
	if err != nil {
		return Team{}, fmt.Errorf("read team %s: %w", name, err)
	}
	members, err := strings1(ctx, q, `SELECT user_name FROM team_members WHERE team = ? ORDER BY user_name`, name)
	if err != nil {
		return Team{}, fmt.Errorf("read members of team %s: %w", name, err)
	}
	return Team{Name: name, Members: nonNilList(members), CreatedAt: fromUnixNano(created)}, nil
}

// GetTeam returns one team with its members.
func (db *DB) GetTeam(ctx context.Context, name string) (Team, error) {
	return getTeam(ctx, db.reader(ctx), name)
}

// ListTeams returns every team with its members, sorted by name.
func (db *DB) ListTeams(ctx context.Context) ([]Team, error) {
	return listTeams(ctx, db.reader(ctx))
}

func listTeams(ctx context.Context, q queryer) ([]Team, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, created_at FROM teams ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	var out []Team
	idx := map[string]int{}
	for rows.Next() {
		var (
			t       Team
			created int64
		)
		if err := rows.Scan(&t.Name, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list teams: %w", err)
		}
		t.CreatedAt = fromUnixNano(created)
		t.Members = []string{}
		idx[t.Name] = len(out)
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list teams: %w", err)
	}
	mrows, err := q.QueryContext(ctx, `SELECT team, user_name FROM team_members ORDER BY team, user_name`)
	if err != nil {
		return nil, fmt.Errorf("list team members: %w", err)
	}
	defer mrows.Close()
	for mrows.Next() {
		var team, user string
		if err := mrows.Scan(&team, &user); err != nil {
			return nil, fmt.Errorf("list team members: %w", err)
		}
		if i, ok := idx[team]; ok {
			out[i].Members = append(out[i].Members, user)
		}
	}
	return out, mrows.Err()
}

// DeleteTeam deletes a team, its memberships and the grants given to it.
func (db *DB) DeleteTeam(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM teams WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete team %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: team %s does not exist; list teams with `edgewarden teams ls`", ErrNotFound, name)
		}
		return nil
	})
}

// AddTeamMembers adds users to a team, all or none; a user already in it
// is not an error.
func (db *DB) AddTeamMembers(ctx context.Context, team string, users []string) (Team, error) {
	return db.changeTeam(ctx, team, users, true)
}

// RemoveTeamMembers removes users from a team, all or none; each must be a
// member.
func (db *DB) RemoveTeamMembers(ctx context.Context, team string, users []string) (Team, error) {
	return db.changeTeam(ctx, team, users, false)
}

func (db *DB) changeTeam(ctx context.Context, team string, users []string, add bool) (Team, error) {
	if len(users) == 0 {
		return Team{}, fmt.Errorf("%w: name at least one user", ErrInvalid)
	}
	var t Team
	err := db.update(ctx, func(tx *sql.Tx) error {
		if err := teamExists(ctx, tx, team); err != nil {
			return err
		}
		for _, u := range users {
			if add {
				if err := userExists(ctx, tx, u); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO team_members (team, user_name) VALUES (?, ?) ON CONFLICT DO NOTHING`, team, u); err != nil {
					return fmt.Errorf("add %s to team %s: %w", u, team, err)
				}
				continue
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM team_members WHERE team = ? AND user_name = ?`, team, u)
			if err != nil {
				return fmt.Errorf("remove %s from team %s: %w", u, team, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%w: user %s is not a member of team %s", ErrNotFound, u, team)
			}
		}
		var err error
		t, err = getTeam(ctx, tx, team)
		return err
	})
	return t, err
}

// ---- roles ----

// normalizeRole validates a custom role and returns it with its actions
// deduplicated in catalogue order.
func normalizeRole(r access.Role) (access.Role, error) {
	if access.IsBuiltinRole(r.Name) {
		return access.Role{}, fmt.Errorf("%w: role %s is built in and cannot be created, changed or deleted; create a custom role with another name", ErrForbidden, r.Name)
	}
	if r.Builtin {
		return access.Role{}, fmt.Errorf("%w: role %s: custom roles cannot be marked built in", ErrInvalid, r.Name)
	}
	if len(r.Description) > 256 || strings.ContainsFunc(r.Description, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return access.Role{}, fmt.Errorf("%w: role %s: description must be at most 256 printable characters", ErrInvalid, r.Name)
	}
	if err := access.ValidateRole(r); err != nil {
		return access.Role{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var acts []access.Action
	for _, info := range access.Actions() {
		if slices.Contains(r.Actions, info.Name) {
			acts = append(acts, info.Name)
		}
	}
	r.Actions = acts
	return r, nil
}

// CreateRole stores a custom role. Built-in names, unknown actions and
// duplicates are refused.
func (db *DB) CreateRole(ctx context.Context, r access.Role) (Role, error) {
	r, err := normalizeRole(r)
	if err != nil {
		return Role{}, err
	}
	acts, _ := json.Marshal(r.Actions)
	now := unixNano(db.now())
	var out Role
	err = db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO roles (name, description, actions, shareable, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			r.Name, r.Description, string(acts), r.Shareable, now, now)
		if isConstraint(err) {
			return fmt.Errorf("%w: role %s already exists; change it with `edgewarden roles update`", ErrConflict, r.Name)
		}
		if err != nil {
			return fmt.Errorf("create role %s: %w", r.Name, err)
		}
		out, err = getRole(ctx, tx, r.Name)
		return err
	})
	return out, err
}

// UpdateRole replaces a custom role's actions, description and shareable
// flag.
func (db *DB) UpdateRole(ctx context.Context, r access.Role) (Role, error) {
	r, err := normalizeRole(r)
	if err != nil {
		return Role{}, err
	}
	acts, _ := json.Marshal(r.Actions)
	var out Role
	err = db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE roles SET description = ?, actions = ?, shareable = ?, updated_at = ? WHERE name = ?`,
			r.Description, string(acts), r.Shareable, unixNano(db.now()), r.Name)
		if err != nil {
			return fmt.Errorf("update role %s: %w", r.Name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: role %s does not exist; list roles with `edgewarden roles ls`", ErrNotFound, r.Name)
		}
		out, err = getRole(ctx, tx, r.Name)
		return err
	})
	return out, err
}

// DeleteRole deletes a custom role that no grant names.
func (db *DB) DeleteRole(ctx context.Context, name string) error {
	if access.IsBuiltinRole(name) {
		return fmt.Errorf("%w: role %s is built in and cannot be deleted", ErrForbidden, name)
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		ids, err := strings1(ctx, tx, `SELECT id FROM grants WHERE role = ? ORDER BY id`, name)
		if err != nil {
			return fmt.Errorf("delete role %s: %w", name, err)
		}
		if len(ids) > 0 {
			return fmt.Errorf("%w: role %s is used by grants %s; delete them first (`edgewarden grants delete ID`)", ErrConflict, name, strings.Join(ids, ", "))
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM roles WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete role %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: role %s does not exist; list roles with `edgewarden roles ls`", ErrNotFound, name)
		}
		return nil
	})
}

const roleColumns = `name, description, actions, shareable, created_at, updated_at`

func scanRole(row interface{ Scan(...any) error }) (Role, error) {
	var (
		r                Role
		acts             string
		created, updated int64
	)
	if err := row.Scan(&r.Name, &r.Description, &acts, &r.Shareable, &created, &updated); err != nil {
		return Role{}, err
	}
	if err := json.Unmarshal([]byte(acts), &r.Actions); err != nil {
		return Role{}, fmt.Errorf("role %s: stored actions: %w", r.Name, err)
	}
	r.CreatedAt, r.UpdatedAt = fromUnixNano(created), fromUnixNano(updated)
	return r, nil
}

func getRole(ctx context.Context, q queryer, name string) (Role, error) {
	for _, b := range access.BuiltinRoles() {
		if b.Name == name {
			return Role{Role: b}, nil
		}
	}
	r, err := scanRole(q.QueryRowContext(ctx, `SELECT `+roleColumns+` FROM roles WHERE name = ?`, name))
	if isNoRows(err) {
		return Role{}, fmt.Errorf("%w: role %s does not exist; list roles with `edgewarden roles ls`", ErrNotFound, name)
	}
	if err != nil {
		return Role{}, fmt.Errorf("read role %s: %w", name, err)
	}
	return r, nil
}

// GetRole returns a built-in or custom role.
func (db *DB) GetRole(ctx context.Context, name string) (Role, error) {
	return getRole(ctx, db.reader(ctx), name)
}

// ListRoles returns the built-in roles, then the custom ones by name.
func (db *DB) ListRoles(ctx context.Context) ([]Role, error) {
	custom, err := listCustomRoles(ctx, db.reader(ctx))
	if err != nil {
		return nil, err
	}
	var out []Role
	for _, b := range access.BuiltinRoles() {
		out = append(out, Role{Role: b})
	}
	return append(out, custom...), nil
}

func listCustomRoles(ctx context.Context, q queryer) ([]Role, error) {
	out, err := queryAll(ctx, q, scanRole, `SELECT `+roleColumns+` FROM roles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return out, nil
}

// ---- grants ----

// scopeExists checks that the object a scope names exists.
func scopeExists(ctx context.Context, q queryer, s access.Scope) error {
	switch s.Kind {
	case access.ScopeGlobal:
		return nil
	case access.ScopeDeviceGroup:
		return groupExists(ctx, q, s.Name)
	case access.ScopeDevice:
		_, err := getDevice(ctx, q, s.Name)
		return err
	case access.ScopeApp:
		return appExists(ctx, q, s.Name)
	}
	return fmt.Errorf("%w: scope kind %q", ErrInvalid, s.Kind)
}

// appExists checks that an app is known: it has at least one stored version
// (app_versions, issue 4). Before that table exists no app scope can be
// granted.
func appExists(ctx context.Context, q queryer, name string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'app_versions'`).Scan(&n); err != nil {
		return fmt.Errorf("read app %s: %w", name, err)
	}
	if n > 0 {
		err := q.QueryRowContext(ctx, `SELECT 1 FROM app_versions WHERE name = ? LIMIT 1`, name).Scan(&n)
		if err == nil {
			return nil
		}
		if !isNoRows(err) {
			return fmt.Errorf("read app %s: %w", name, err)
		}
	}
	return fmt.Errorf("%w: app %s does not exist; list apps with `edgewarden apps ls`", ErrNotFound, name)
}

// CreateGrant stores a grant. An empty ID gets a fresh one (NewGrantID);
// zero CreatedAt means now. The role, the subject (user or team) and the
// scope's object must exist; the same subject, role and scope twice is a
// conflict. Whether the creator may hand it out is the caller's check
// (access.CheckNoEscalation, access.CanShare).
func (db *DB) CreateGrant(ctx context.Context, g Grant) (Grant, error) {
	if g.ID == "" {
		g.ID = NewGrantID()
	}
	if g.CreatedBy == "" {
		return Grant{}, fmt.Errorf("%w: grant needs its creator", ErrInvalid)
	}
	if err := g.Grant.Validate(); err != nil {
		return Grant{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = db.now()
	}
	g.CreatedAt = fromUnixNano(unixNano(g.CreatedAt))
	err := db.update(ctx, func(tx *sql.Tx) error {
		if _, err := getRole(ctx, tx, g.Role); err != nil {
			return err
		}
		switch g.Subject.Kind {
		case access.SubjectUser:
			if err := userExists(ctx, tx, g.Subject.Name); err != nil {
				return err
			}
		case access.SubjectTeam:
			if err := teamExists(ctx, tx, g.Subject.Name); err != nil {
				return err
			}
		}
		if err := scopeExists(ctx, tx, g.Scope); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO grants (id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.Subject.Kind, g.Subject.Name, g.Role, g.Scope.Kind, g.Scope.Name, g.CreatedBy, unixNano(g.CreatedAt))
		if isConstraint(err) {
			return fmt.Errorf("%w: %s already holds role %s on %s (or grant id %s is taken); see `edgewarden grants ls`", ErrConflict, g.Subject, g.Role, g.Scope, g.ID)
		}
		if err != nil {
			return fmt.Errorf("create grant: %w", err)
		}
		// The subject id the insert trigger gave it.
		if err := tx.QueryRowContext(ctx, `SELECT subject_id FROM grants WHERE id = ?`, g.ID).Scan(&g.SubjectID); err != nil {
			return fmt.Errorf("create grant: read its subject id: %w", err)
		}
		return nil
	})
	if err != nil {
		return Grant{}, err
	}
	return g, nil
}

const grantColumns = `id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at, subject_id`

func scanGrant(row interface{ Scan(...any) error }) (Grant, error) {
	var (
		g       Grant
		created int64
	)
	if err := row.Scan(&g.ID, &g.Subject.Kind, &g.Subject.Name, &g.Role, &g.Scope.Kind, &g.Scope.Name, &g.CreatedBy, &created, &g.SubjectID); err != nil {
		return Grant{}, err
	}
	g.CreatedAt = fromUnixNano(created)
	return g, nil
}

// GetGrant returns one grant.
func (db *DB) GetGrant(ctx context.Context, id string) (Grant, error) {
	g, err := scanGrant(db.reader(ctx).QueryRowContext(ctx, `SELECT `+grantColumns+` FROM grants WHERE id = ?`, id))
	if isNoRows(err) {
		return Grant{}, fmt.Errorf("%w: grant %s does not exist; list grants with `edgewarden grants ls`", ErrNotFound, id)
	}
	if err != nil {
		return Grant{}, fmt.Errorf("read grant %s: %w", id, err)
	}
	return g, nil
}

// ListGrants returns every grant, sorted by id.
func (db *DB) ListGrants(ctx context.Context) ([]Grant, error) {
	return listGrants(ctx, db.reader(ctx))
}

func listGrants(ctx context.Context, q queryer) ([]Grant, error) {
	out, err := queryAll(ctx, q, scanGrant, `SELECT `+grantColumns+` FROM grants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	return out, nil
}

// DeleteGrant deletes a grant.
func (db *DB) DeleteGrant(ctx context.Context, id string) error {
	return db.deleteOne(ctx, "grant "+id, "list grants with `edgewarden grants ls`", `DELETE FROM grants WHERE id = ?`, id)
}

// ---- invitations ----

// InviteUser creates user inv.User in state "invited" together with its
// invitation, in one transaction.
func (db *DB) InviteUser(ctx context.Context, inv Invitation) (User, error) {
	if err := ValidateAccessName("user", inv.User); err != nil {
		return User{}, err
	}
	if len(inv.TokenHash) != 64 || inv.CreatedBy == "" {
		return User{}, fmt.Errorf("%w: invitation of %s needs a SHA-256 token hash and its creator", ErrInvalid, inv.User)
	}
	if inv.CreatedAt.IsZero() {
		inv.CreatedAt = db.now()
	}
	if !inv.ExpiresAt.After(inv.CreatedAt) {
		return User{}, fmt.Errorf("%w: invitation of %s expires before it is made", ErrInvalid, inv.User)
	}
	u := User{Name: inv.User, State: UserInvited, CreatedAt: fromUnixNano(unixNano(inv.CreatedAt))}
	err := db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (name, password_hash, state, created_at) VALUES (?, '', ?, ?)`, u.Name, u.State, unixNano(u.CreatedAt))
		if isConstraint(err) {
			return fmt.Errorf("%w: user %s already exists; choose another name", ErrConflict, u.Name)
		}
		if err != nil {
			return fmt.Errorf("invite user %s: %w", u.Name, err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE name = ?`, u.Name).Scan(&u.ID); err != nil {
			return fmt.Errorf("invite user %s: read its id: %w", u.Name, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO invitations (user_name, token_hash, expires_at, created_by, created_at) VALUES (?, ?, ?, ?, ?)`,
			u.Name, inv.TokenHash, unixNano(inv.ExpiresAt), inv.CreatedBy, unixNano(inv.CreatedAt))
		if err != nil {
			return fmt.Errorf("invite user %s: %w", u.Name, err)
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// ActivateUser redeems the activation token whose SHA-256 is tokenHash: the
// invited user gets passwordHash and becomes active, and the invitation is
// consumed. An unknown or expired token, or a user no longer invited (e.g.
// disabled meanwhile), is ErrForbidden and changes nothing.
func (db *DB) ActivateUser(ctx context.Context, tokenHash, passwordHash string) (User, error) {
	if passwordHash == "" {
		return User{}, fmt.Errorf("%w: activate user: empty password hash", ErrInvalid)
	}
	var u User
	err := db.update(ctx, func(tx *sql.Tx) error {
		var (
			name    string
			expires int64
		)
		err := tx.QueryRowContext(ctx, `SELECT user_name, expires_at FROM invitations WHERE token_hash = ?`, tokenHash).Scan(&name, &expires)
		if isNoRows(err) {
			return fmt.Errorf("%w: activation token is not valid (mistyped, already used, or the user was deleted); ask an admin to invite you again", ErrForbidden)
		}
		if err != nil {
			return fmt.Errorf("activate user: %w", err)
		}
		if !db.now().Before(fromUnixNano(expires)) {
			return fmt.Errorf("%w: the activation token of %s expired at %s; ask an admin to delete and invite you again", ErrForbidden, name, fromUnixNano(expires).Format(time.RFC3339))
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET state = ?, password_hash = ? WHERE name = ? AND state = ?`, UserActive, passwordHash, name, UserInvited)
		if err != nil {
			return fmt.Errorf("activate user %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: user %s is no longer waiting for activation; ask an admin", ErrForbidden, name)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE user_name = ?`, name); err != nil {
			return fmt.Errorf("activate user %s: %w", name, err)
		}
		u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
		return err
	})
	return u, err
}

// ---- operator tokens ----

// RecordToken records an issued operator token. Its user must exist and be
// active (a disabled or invited user gets no token), and have id t.UserID
// when that is set.
func (db *DB) RecordToken(ctx context.Context, t OperatorToken) error {
	if t.ID == "" || len(t.ID) > 128 || !t.ExpiresAt.After(t.IssuedAt) || t.IssuedAt.IsZero() {
		return fmt.Errorf("%w: operator token record needs an id and an expiry after its issue time", ErrInvalid)
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		var state, id string
		err := tx.QueryRowContext(ctx, `SELECT state, id FROM users WHERE name = ?`, t.User).Scan(&state, &id)
		if isNoRows(err) || (err == nil && t.UserID != "" && t.UserID != id) {
			return fmt.Errorf("%w: user %s does not exist (any more)", ErrNotFound, t.User)
		}
		if err != nil {
			return fmt.Errorf("record operator token: %w", err)
		}
		if state != UserActive {
			return fmt.Errorf("%w: user %s is %s: no operator token can be issued to it", ErrForbidden, t.User, state)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO operator_tokens (id, user_name, issued_at, expires_at, user_id) VALUES (?, ?, ?, ?, ?)`,
			t.ID, t.User, unixNano(t.IssuedAt), unixNano(t.ExpiresAt), id)
		if isConstraint(err) {
			return fmt.Errorf("%w: operator token id %s is taken", ErrConflict, t.ID)
		}
		if err != nil {
			return fmt.Errorf("record operator token: %w", err)
		}
		return nil
	})
}

const opTokenColumns = `id, user_name, issued_at, expires_at, revoked_at, revoked_by, user_id`

func scanOpToken(row interface{ Scan(...any) error }) (OperatorToken, error) {
	var (
		t                        OperatorToken
		issued, expires, revoked int64
	)
	if err := row.Scan(&t.ID, &t.User, &issued, &expires, &revoked, &t.RevokedBy, &t.UserID); err != nil {
		return OperatorToken{}, err
	}
	t.IssuedAt, t.ExpiresAt, t.RevokedAt = fromUnixNano(issued), fromUnixNano(expires), fromUnixNano(revoked)
	return t, nil
}

// GetToken returns the record of one operator token.
func (db *DB) GetToken(ctx context.Context, id string) (OperatorToken, error) {
	t, err := scanOpToken(db.reader(ctx).QueryRowContext(ctx, `SELECT `+opTokenColumns+` FROM operator_tokens WHERE id = ?`, id))
	if isNoRows(err) {
		return OperatorToken{}, fmt.Errorf("%w: operator token %s does not exist; list tokens with `edgewarden tokens ls`", ErrNotFound, id)
	}
	if err != nil {
		return OperatorToken{}, fmt.Errorf("read operator token %s: %w", id, err)
	}
	return t, nil
}

// ListTokens returns the operator tokens of user ("" for everyone's),
// newest first.
func (db *DB) ListTokens(ctx context.Context, user string) ([]OperatorToken, error) {
	q := `SELECT ` + opTokenColumns + ` FROM operator_tokens`
	var args []any
	if user != "" {
		q += ` WHERE user_name = ?`
		args = append(args, user)
	}
	q += ` ORDER BY issued_at DESC, id`
	return queryTokens(ctx, db.reader(ctx), q, args...)
}

func queryTokens(ctx context.Context, q queryer, query string, args ...any) ([]OperatorToken, error) {
	out, err := queryAll(ctx, q, scanOpToken, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list operator tokens: %w", err)
	}
	return out, nil
}

// RevokeToken marks an operator token revoked by user by. Revoking it again
// is a conflict.
func (db *DB) RevokeToken(ctx context.Context, id, by string) (OperatorToken, error) {
	var t OperatorToken
	err := db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE operator_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at = 0`, unixNano(db.now()), by, id)
		if err != nil {
			return fmt.Errorf("revoke operator token %s: %w", id, err)
		}
		t, err = scanOpToken(tx.QueryRowContext(ctx, `SELECT `+opTokenColumns+` FROM operator_tokens WHERE id = ?`, id))
		if isNoRows(err) {
			return fmt.Errorf("%w: operator token %s does not exist; list tokens with `edgewarden tokens ls`", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: operator token %s was already revoked at %s", ErrConflict, id, t.RevokedAt.Format(time.RFC3339))
		}
		return nil
	})
	return t, err
}

// ---- snapshot ----

// readAccess fills the access part of a snapshot: users, teams, custom
// roles, grants, and the revoked operator tokens that have not expired.
func readAccess(ctx context.Context, q queryer, s *Snapshot, now time.Time) error {
	var err error
	if s.Users, err = listUsers(ctx, q); err != nil {
		return err
	}
	if s.Teams, err = listTeams(ctx, q); err != nil {
		return err
	}
	if s.Roles, err = listCustomRoles(ctx, q); err != nil {
		return err
	}
	if s.Grants, err = listGrants(ctx, q); err != nil {
		return err
	}
	// Refused on devices: revoked tokens, and those whose user is gone
	// (deleted, whoever has the name now) or never had an id.
	s.RevokedTokens, err = queryTokens(ctx, q, `SELECT `+opTokenColumns+` FROM operator_tokens
		WHERE expires_at > ? AND (revoked_at <> 0 OR user_id = '' OR user_id NOT IN (SELECT id FROM users))
		ORDER BY id`, unixNano(now))
	return err
}

// AccessSnapshot reads, in one transaction, what deciding access needs:
// devices, groups, settings, users, teams, roles, grants and revoked tokens
// (everything in a Snapshot but the desired-state records), with the change
// sequence they reflect (Snapshot.Seq). It reads committed state only, also
// when called from inside a change, so a view built from it can be cached
// under its sequence.
func (db *DB) AccessSnapshot(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{}
	ctx = committed(ctx)
	err := db.view(ctx, func(tx *sql.Tx) error {
		var err error
		if err := tx.QueryRowContext(ctx, `SELECT seq FROM change_seq WHERE id = 1`).Scan(&s.Seq); err != nil {
			return fmt.Errorf("read change sequence: %w", err)
		}
		if s.Devices, err = listDevices(ctx, tx); err != nil {
			return err
		}
		if s.Groups, err = listGroups(ctx, tx); err != nil {
			return err
		}
		if s.Settings, err = listSettings(ctx, tx); err != nil {
			return err
		}
		return readAccess(ctx, tx, s, db.now())
	})
	if err != nil {
		return nil, fmt.Errorf("access snapshot: %w", err)
	}
	return s, nil
}

func listUsers(ctx context.Context, q queryer) ([]User, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.PasswordHash = "" // a snapshot never carries secrets
		out = append(out, u)
	}
	return out, rows.Err()
}

// AccessInput returns what access.Compile needs from the snapshot: the
// built-in and custom roles, every grant, and every user with its teams;
// invited and disabled users are Disabled. A user whose name the access
// model does not accept (upper-case letters or '@', allowed before access
// control existed) is left out, so it is allowed nothing; so are grants
// naming it or a role that is gone, and user grants whose subject id is
// not the id of the user now holding the name (Grant.SubjectID).
func (s *Snapshot) AccessInput() access.Input {
	in := access.Input{Roles: access.BuiltinRoles()}
	for _, r := range s.Roles {
		in.Roles = append(in.Roles, r.Role)
	}
	teams := map[string][]string{}
	for _, t := range s.Teams {
		for _, m := range t.Members {
			teams[m] = append(teams[m], t.Name)
		}
	}
	ids := make(map[string]string, len(s.Users))
	for _, u := range s.Users {
		ids[u.Name] = u.ID
		au := access.User{Name: u.Name, Teams: teams[u.Name], Disabled: u.State != UserActive}
		if err := au.Validate(); err != nil {
			slog.Warn("user left out of access decisions", "user", u.Name, "err", err)
			continue
		}
		in.Users = append(in.Users, au)
	}
	roles := map[string]bool{}
	for _, r := range in.Roles {
		roles[r.Name] = true
	}
	for _, g := range s.Grants {
		if !roles[g.Role] || g.Validate() != nil {
			continue
		}
		// A user grant counts only for the user it was given to, by id: a
		// name given again carries none of its old grants. (Every stored
		// user has an id; a grant left without one matches no one.)
		if g.Subject.Kind == access.SubjectUser && g.SubjectID != ids[g.Subject.Name] {
			continue
		}
		in.Grants = append(in.Grants, g.Grant)
	}
	return in
}

// grantFirstAdmin gives u the global admin grant "g-admin" when u is the
// only user and active: the first user of a controller is its admin.
func grantFirstAdmin(ctx context.Context, tx *sql.Tx, u User) error {
	if u.State != UserActive || access.UserSubject(u.Name).Validate() != nil {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return fmt.Errorf("create user %s: %w", u.Name, err)
	}
	if n != 1 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO grants (id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at)
		VALUES ('g-admin', 'user', ?, 'admin', 'global', '', 'system', ?) ON CONFLICT DO NOTHING`, u.Name, unixNano(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("create user %s: grant the admin role: %w", u.Name, err)
	}
	return nil
}
