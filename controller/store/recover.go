package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// settingAdminRecovered holds, between `edgewarden-controller
// recover-admin` and the next start of the controller, what the recovery
// did (JSON AdminRecovery); the controller audits it as security when it
// starts and clears it.
const settingAdminRecovered = "admin-recovered"

// AdminRecovery is what a break-glass recovery did.
type AdminRecovery struct {
	User    string `json:"user"`
	Created bool   `json:"created"` // the user did not exist
	Was     string `json:"was"`     // its state before ("" when created)
	By      string `json:"by"`      // the local account that ran it
	At      int64  `json:"at"`      // unix nanoseconds
}

// RecoverAdmin is the break-glass recovery (`edgewarden-controller
// recover-admin`, run as local root with the controller stopped): name
// becomes an active user with passwordHash, holding the built-in admin
// role globally; a missing user is created, a disabled or invited one is
// re-activated (its pending invitation dropped). The recovery is recorded
// for the controller to audit when it next starts (TakeAdminRecovery).
// Call it inside a change, whose audit entry should be of kind security.
func (db *DB) RecoverAdmin(ctx context.Context, name, passwordHash, by string) (AdminRecovery, error) {
	if err := ValidateAccessName("user", name); err != nil {
		return AdminRecovery{}, err
	}
	if passwordHash == "" {
		return AdminRecovery{}, fmt.Errorf("%w: recover admin %s: empty password hash", ErrInvalid, name)
	}
	rec := AdminRecovery{User: name, By: by, At: unixNano(db.now())}
	err := db.update(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT state FROM users WHERE name = ?`, name).Scan(&rec.Was)
		switch {
		case isNoRows(err):
			rec.Created = true
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, password_hash, state, created_at) VALUES (?, ?, ?, ?)`, name, passwordHash, UserActive, rec.At); err != nil {
				return fmt.Errorf("recover admin: create user %s: %w", name, err)
			}
		case err != nil:
			return fmt.Errorf("recover admin: read user %s: %w", name, err)
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE users SET state = ?, password_hash = ? WHERE name = ?`, UserActive, passwordHash, name); err != nil {
				return fmt.Errorf("recover admin: re-activate user %s: %w", name, err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE user_name = ?`, name); err != nil {
				return fmt.Errorf("recover admin: drop the invitation of %s: %w", name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO grants (id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at)
			VALUES (?, 'user', ?, 'admin', 'global', '', 'recover-admin', ?) ON CONFLICT DO NOTHING`, NewGrantID(), name, rec.At); err != nil {
			return fmt.Errorf("recover admin: grant %s the admin role: %w", name, err)
		}
		b, _ := json.Marshal(rec)
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, settingAdminRecovered, string(b)); err != nil {
			return fmt.Errorf("recover admin: record the recovery: %w", err)
		}
		return nil
	})
	return rec, err
}

// TakeAdminRecovery returns the recovery made while the controller was
// stopped, if any, and clears it; call it inside the change that audits it.
func (db *DB) TakeAdminRecovery(ctx context.Context) (AdminRecovery, bool, error) {
	v, err := db.GetSetting(ctx, settingAdminRecovered)
	if err != nil || v == "" {
		return AdminRecovery{}, false, err
	}
	var rec AdminRecovery
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return AdminRecovery{}, false, fmt.Errorf("read the recorded admin recovery: %w", err)
	}
	if err := db.SetSetting(ctx, settingAdminRecovered, ""); err != nil {
		return AdminRecovery{}, false, err
	}
	return rec, true, nil
}
