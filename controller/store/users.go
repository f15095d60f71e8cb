package store

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
)

// User states.
const (
	UserActive   = "active"
	UserInvited  = "invited"
	UserDisabled = "disabled"
)

var userNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,63}$`)

// ValidateUserName reports whether name can name a user: 1-64 characters
// letters, digits, '.', '_', '@' or '-', starting with a letter or digit.
func ValidateUserName(name string) error {
	if !userNamePattern.MatchString(name) {
		return fmt.Errorf("%w: user name %q: use 1-64 characters a-z, A-Z, 0-9, '.', '_', '@' or '-', starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

func validUserState(state string) error {
	switch state {
	case UserActive, UserInvited, UserDisabled:
		return nil
	}
	return fmt.Errorf("%w: user state %q: want active, invited or disabled", ErrInvalid, state)
}

// CreateUser stores a new user. u.CreatedAt zero means now. The first user
// of a controller, when created active, is its admin: it gets a global grant
// of the built-in admin role (grant id "g-admin"). Other users get nothing.
func (db *DB) CreateUser(ctx context.Context, u User) (User, error) {
	if err := ValidateUserName(u.Name); err != nil {
		return User{}, err
	}
	if err := validUserState(u.State); err != nil {
		return User{}, err
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = db.now()
	}
	u.CreatedAt = fromUnixNano(unixNano(u.CreatedAt))
	err := db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (name, password_hash, state, created_at) VALUES (?, ?, ?, ?)`,
			u.Name, u.PasswordHash, u.State, unixNano(u.CreatedAt))
		if isConstraint(err) {
			return fmt.Errorf("%w: user %s already exists; choose another name", ErrConflict, u.Name)
		}
		if err != nil {
			return fmt.Errorf("create user %s: %w", u.Name, err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE name = ?`, u.Name).Scan(&u.ID); err != nil {
			return fmt.Errorf("create user %s: read its id: %w", u.Name, err)
		}
		return grantFirstAdmin(ctx, tx, u)
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var (
		u       User
		created int64
	)
	if err := row.Scan(&u.Name, &u.PasswordHash, &u.State, &created, &u.ID, &u.SessionGen); err != nil {
		return User{}, err
	}
	u.CreatedAt = fromUnixNano(created)
	return u, nil
}

// GetUser returns one user.
func (db *DB) GetUser(ctx context.Context, name string) (User, error) {
	u, err := scanUser(db.reader(ctx).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if isNoRows(err) {
		return User{}, fmt.Errorf("%w: user %s does not exist; list users with `edgewarden users ls`", ErrNotFound, name)
	}
	if err != nil {
		return User{}, fmt.Errorf("read user %s: %w", name, err)
	}
	return u, nil
}

// ListUsers returns every user, sorted by name.
func (db *DB) ListUsers(ctx context.Context) ([]User, error) {
	out, err := queryAll(ctx, db.reader(ctx), scanUser, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// CountUsers returns the number of users in any state.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.reader(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

func (db *DB) updateUser(ctx context.Context, name, what, query string, args ...any) (User, error) {
	var u User
	err := db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("%s of user %s: %w", what, name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: user %s does not exist; list users with `edgewarden users ls`", ErrNotFound, name)
		}
		u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
		return err
	})
	return u, err
}

// SetUserState changes a user's state (active, invited, disabled). Any
// state but active ends the user's sessions: enabling it again does not
// bring them back.
func (db *DB) SetUserState(ctx context.Context, name, state string) (User, error) {
	if err := validUserState(state); err != nil {
		return User{}, err
	}
	gen := 1
	if state == UserActive {
		gen = 0
	}
	return db.updateUser(ctx, name, "set state", `UPDATE users SET state = ?, session_gen = session_gen + ? WHERE name = ?`, state, gen, name)
}

// SetUserPassword replaces a user's password hash (a PHC string) and ends
// the user's sessions.
func (db *DB) SetUserPassword(ctx context.Context, name, passwordHash string) (User, error) {
	if passwordHash == "" {
		return User{}, fmt.Errorf("%w: set password of user %s: empty password hash", ErrInvalid, name)
	}
	return db.updateUser(ctx, name, "set password", `UPDATE users SET password_hash = ?, session_gen = session_gen + 1 WHERE name = ?`, passwordHash, name)
}

// DeleteUser removes a user, its grants and team memberships, and revokes
// its unexpired operator tokens (so they stay refused on devices until
// they expire). Its id is never used again: its sessions die with it.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: user %s does not exist; list users with `edgewarden users ls`", ErrNotFound, name)
		}
		return revokeTokensOf(ctx, tx, name, "user deleted", unixNano(db.now()))
	})
}

// GetSetting returns a controller setting, or "" when it is not set.
func (db *DB) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := db.reader(ctx).QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if isNoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting sets a controller setting (e.g. "banner"); the empty value
// removes it.
func (db *DB) SetSetting(ctx context.Context, key, value string) error {
	if key == "" {
		return fmt.Errorf("%w: setting with an empty key", ErrInvalid)
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		var err error
		if value == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, key)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		}
		if err != nil {
			return fmt.Errorf("set setting %s: %w", key, err)
		}
		return nil
	})
}

// ListSettings returns every setting that is set.
func (db *DB) ListSettings(ctx context.Context) (map[string]string, error) {
	return listSettings(ctx, db.reader(ctx))
}

func listSettings(ctx context.Context, q queryer) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, value FROM settings`)
	if err != nil {
		return nil, fmt.Errorf("list settings: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("list settings: %w", err)
		}
		out[k] = v
	}
	return out, rows.Err()
}
