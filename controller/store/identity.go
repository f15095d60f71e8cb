package store

import (
	"context"
	"database/sql"
	"fmt"
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

// revokeTokensOf revokes the unexpired operator tokens of a user that is
// being deleted: their ids travel in every document's revoked list until
// they expire, so a token of the deleted user never works on a device,
// whoever is given the name later.
func revokeTokensOf(ctx context.Context, tx *sql.Tx, name string, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE operator_tokens SET revoked_at = ?, revoked_by = 'user deleted'
		WHERE user_name = ? AND revoked_at = 0 AND expires_at > ?`, now, name, now)
	if err != nil {
		return fmt.Errorf("revoke the operator tokens of %s: %w", name, err)
	}
	return nil
}
