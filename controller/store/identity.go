package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// identitySchema is migration 8: users are ids, not names. Every user has
// an immutable random id (given by a trigger at insert, so no insert can
// forget it) that sessions carry as their subject, and a session
// generation that disabling, a password change and deletion end (sessions
// of an older generation are refused). Audit entries name the acting
// user's id beside its name, so a reused name is never confused with the
// user who held it before.
const identitySchema = `
ALTER TABLE users ADD COLUMN id TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN session_gen INTEGER NOT NULL DEFAULT 0;
UPDATE users SET id = 'u-' || lower(hex(randomblob(12))) WHERE id = '';
CREATE UNIQUE INDEX users_id ON users (id) WHERE id <> '';
CREATE TRIGGER users_assign_id AFTER INSERT ON users WHEN NEW.id = '' BEGIN
	UPDATE users SET id = 'u-' || lower(hex(randomblob(12))) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER users_id_immutable BEFORE UPDATE OF id ON users WHEN OLD.id <> '' BEGIN
	SELECT RAISE(ABORT, 'a user id never changes');
END;

ALTER TABLE audit ADD COLUMN actor_id TEXT NOT NULL DEFAULT '';
`

// userColumns are the columns scanUser reads, in its order.
const userColumns = `name, password_hash, state, created_at, id, session_gen`

// GetUserByID returns the user with an immutable id (a session's subject).
// A deleted user's id is never found again, whoever has the name now.
func (db *DB) GetUserByID(ctx context.Context, id string) (User, error) {
	u, err := scanUser(db.reader(ctx).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ? AND id <> ''`, id))
	if isNoRows(err) {
		return User{}, fmt.Errorf("%w: no user has id %s (deleted?)", ErrNotFound, id)
	}
	if err != nil {
		return User{}, fmt.Errorf("read user %s: %w", id, err)
	}
	return u, nil
}

// endSessions ends every session of user name (a new session generation).
func endSessions(ctx context.Context, tx *sql.Tx, name string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE users SET session_gen = session_gen + 1 WHERE name = ?`, name); err != nil {
		return fmt.Errorf("end the sessions of %s: %w", name, err)
	}
	return nil
}

// EndSessions ends every session of a user: sessions issued before are
// refused from now on (`edgewarden logout --all`, password resets).
func (db *DB) EndSessions(ctx context.Context, name string) (User, error) {
	return db.updateUser(ctx, name, "end sessions", `UPDATE users SET session_gen = session_gen + 1 WHERE name = ?`, name)
}

// revokeTokensOf revokes the unexpired operator tokens of user name, for
// why (recorded as who revoked them): a user being deleted, or whose
// password is reset. Their ids travel in every document's revoked list
// until they expire, so such a token never works on a device again,
// whoever is given the name later.
func revokeTokensOf(ctx context.Context, tx *sql.Tx, name, why string, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE operator_tokens SET revoked_at = ?, revoked_by = ?
		WHERE user_name = ? AND revoked_at = 0 AND expires_at > ?`, now, why, name, now)
	if err != nil {
		return fmt.Errorf("revoke the operator tokens of %s: %w", name, err)
	}
	return nil
}

// endedSessionsSchema is migration 9: sessions ended one by one. A logout
// ends one session (its token id, until the token would have expired), not
// every session of its user as a new generation does: a copy of the token
// is refused from then on, the user's other sessions go on.
const endedSessionsSchema = `
CREATE TABLE ended_sessions (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX ended_sessions_expiry ON ended_sessions (expires_at);
`

// EndSession ends the session with token id id (its jti) of the user with
// immutable id userID: SessionEnded reports it until expiresAt, when the
// token is refused anyway. Ending it again changes nothing. Entries of
// tokens that have expired are dropped meanwhile.
func (db *DB) EndSession(ctx context.Context, id, userID string, expiresAt time.Time) error {
	if id == "" || len(id) > 128 || userID == "" {
		return fmt.Errorf("%w: end session: a session id (at most 128 bytes) and a user id are required", ErrInvalid)
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ended_sessions WHERE expires_at <= ?`, unixNano(db.now())); err != nil {
			return fmt.Errorf("end session: drop expired entries: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO ended_sessions (id, user_id, expires_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			id, userID, unixNano(expiresAt))
		if err != nil {
			return fmt.Errorf("end session: %w", err)
		}
		return nil
	})
}

// SessionEnded reports whether the session with token id id was ended by
// EndSession.
func (db *DB) SessionEnded(ctx context.Context, id string) (bool, error) {
	var one int
	err := db.reader(ctx).QueryRowContext(ctx, `SELECT 1 FROM ended_sessions WHERE id = ?`, id).Scan(&one)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read ended sessions: %w", err)
	}
	return true, nil
}

// ResetPassword puts an active (or still invited) user back to "invited"
// with a new invitation, as InviteUser does for a new one: its password is
// cleared, so the old one stops working, and its sessions end, in one
// transaction. The user chooses a new password by redeeming the activation
// token (ActivateUser); meanwhile its grants give nothing. A disabled user
// is refused: enable it first, so that a reset never re-activates anyone.
// The user's unexpired operator tokens are revoked.
func (db *DB) ResetPassword(ctx context.Context, inv Invitation) (User, error) {
	if len(inv.TokenHash) != 64 || inv.CreatedBy == "" {
		return User{}, fmt.Errorf("%w: password reset of %s needs a SHA-256 token hash and its creator", ErrInvalid, inv.User)
	}
	if inv.CreatedAt.IsZero() {
		inv.CreatedAt = db.now()
	}
	if !inv.ExpiresAt.After(inv.CreatedAt) {
		return User{}, fmt.Errorf("%w: password reset of %s expires before it is made", ErrInvalid, inv.User)
	}
	var u User
	err := db.update(ctx, func(tx *sql.Tx) error {
		before, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, inv.User))
		if isNoRows(err) {
			return fmt.Errorf("%w: user %s does not exist; list users with `edgewarden users ls`", ErrNotFound, inv.User)
		}
		if err != nil {
			return fmt.Errorf("reset password of %s: %w", inv.User, err)
		}
		if before.State == UserDisabled {
			return fmt.Errorf("%w: user %s is disabled: enable it first (`edgewarden users enable %s`), then reset its password", ErrConflict, inv.User, inv.User)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET state = ?, password_hash = '', session_gen = session_gen + 1 WHERE name = ?`, UserInvited, inv.User); err != nil {
			return fmt.Errorf("reset password of %s: %w", inv.User, err)
		}
		// Tokens taken with the old password must not come back to life
		// once the user chooses a new one.
		if err := revokeTokensOf(ctx, tx, inv.User, "password reset", unixNano(db.now())); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO invitations (user_name, token_hash, expires_at, created_by, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (user_name) DO UPDATE SET token_hash = excluded.token_hash, expires_at = excluded.expires_at,
				created_by = excluded.created_by, created_at = excluded.created_at`,
			inv.User, inv.TokenHash, unixNano(inv.ExpiresAt), inv.CreatedBy, unixNano(inv.CreatedAt))
		if err != nil {
			return fmt.Errorf("reset password of %s: %w", inv.User, err)
		}
		u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, inv.User))
		return err
	})
	return u, err
}

// subjectIDsSchema is migration 11: grants and operator tokens name their
// user by immutable id as well as by name. The name is what people read;
// the id is what counts: a user grant applies, and an operator token
// belongs, only to the user whose id it names, so a name given to a new
// user inherits no grant or token of the user who held it before, even
// one left behind by a path that forgot to clean up. Triggers fill the id
// at insert from the user of that name, so no insert can forget it; rows
// whose user did not exist get no id and never apply.
const subjectIDsSchema = `
ALTER TABLE grants ADD COLUMN subject_id TEXT NOT NULL DEFAULT '';
UPDATE grants SET subject_id = COALESCE((SELECT id FROM users WHERE users.name = grants.subject_name), '')
	WHERE subject_kind = 'user';
CREATE INDEX grants_subject_id ON grants (subject_id) WHERE subject_id <> '';
CREATE TRIGGER grants_assign_subject_id AFTER INSERT ON grants
	WHEN NEW.subject_kind = 'user' AND NEW.subject_id = '' BEGIN
	UPDATE grants SET subject_id = COALESCE((SELECT id FROM users WHERE name = NEW.subject_name), '') WHERE id = NEW.id;
END;
DROP TRIGGER users_delete_grants;
CREATE TRIGGER users_delete_grants AFTER DELETE ON users BEGIN
	DELETE FROM grants WHERE subject_kind = 'user' AND (subject_id = OLD.id OR subject_name = OLD.name);
END;

ALTER TABLE operator_tokens ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
UPDATE operator_tokens SET user_id = COALESCE((SELECT id FROM users WHERE users.name = operator_tokens.user_name), '');
CREATE INDEX operator_tokens_user_id ON operator_tokens (user_id);
CREATE TRIGGER operator_tokens_assign_user_id AFTER INSERT ON operator_tokens WHEN NEW.user_id = '' BEGIN
	UPDATE operator_tokens SET user_id = COALESCE((SELECT id FROM users WHERE name = NEW.user_name), '') WHERE id = NEW.id;
END;
`
