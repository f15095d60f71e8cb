package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// sideloadSchema is migration 4: per-group overrides of the global sideload
// policy (the global one is the "sideload" setting). An override goes with
// its group: deleting the group deletes it, so a group created later under
// the same name does not inherit a forgotten override.
const sideloadSchema = `
CREATE TABLE sideload_overrides (
	group_name TEXT PRIMARY KEY REFERENCES device_groups (name) ON DELETE CASCADE,
	policy     TEXT NOT NULL CHECK (policy IN ('allow', 'deny')),
	set_by     TEXT NOT NULL DEFAULT '',
	set_at     INTEGER NOT NULL
) STRICT;
`

// Sideload policies of an override (and of the global setting).
const (
	SideloadAllow = "allow"
	SideloadDeny  = "deny"
)

// SideloadOverride is a device group's override of the global sideload
// policy.
type SideloadOverride struct {
	Group  string
	Policy string // SideloadAllow or SideloadDeny
	SetBy  string
	SetAt  time.Time
}

// SetSideloadOverride sets group's override (replacing one it has). An
// unknown group is ErrNotFound, a policy other than allow or deny
// ErrInvalid; either way nothing changes.
func (db *DB) SetSideloadOverride(ctx context.Context, o SideloadOverride) (SideloadOverride, error) {
	if o.Policy != SideloadAllow && o.Policy != SideloadDeny {
		return SideloadOverride{}, fmt.Errorf("%w: sideload policy %q: want allow or deny", ErrInvalid, o.Policy)
	}
	if o.SetAt.IsZero() {
		o.SetAt = db.now()
	}
	o.SetAt = fromUnixNano(unixNano(o.SetAt))
	err := db.update(ctx, func(tx *sql.Tx) error {
		if _, err := getGroup(ctx, tx, o.Group); err != nil {
			return fmt.Errorf("set sideload override: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sideload_overrides (group_name, policy, set_by, set_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (group_name) DO UPDATE SET policy = excluded.policy, set_by = excluded.set_by, set_at = excluded.set_at`,
			o.Group, o.Policy, o.SetBy, unixNano(o.SetAt))
		if err != nil {
			return fmt.Errorf("set sideload override of %s: %w", o.Group, err)
		}
		return nil
	})
	if err != nil {
		return SideloadOverride{}, err
	}
	return o, nil
}

// DeleteSideloadOverride removes group's override, so its devices follow
// the global policy again. It reports whether there was one; an unknown
// group is ErrNotFound.
func (db *DB) DeleteSideloadOverride(ctx context.Context, group string) (bool, error) {
	var had bool
	err := db.update(ctx, func(tx *sql.Tx) error {
		if _, err := getGroup(ctx, tx, group); err != nil {
			return fmt.Errorf("remove sideload override: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sideload_overrides WHERE group_name = ?`, group)
		if err != nil {
			return fmt.Errorf("remove sideload override of %s: %w", group, err)
		}
		n, _ := res.RowsAffected()
		had = n > 0
		return nil
	})
	return had, err
}

// ListSideloadOverrides returns every override, by group name.
func (db *DB) ListSideloadOverrides(ctx context.Context) ([]SideloadOverride, error) {
	return listSideloadOverrides(ctx, db.reader(ctx))
}

func listSideloadOverrides(ctx context.Context, q queryer) ([]SideloadOverride, error) {
	rows, err := q.QueryContext(ctx, `SELECT group_name, policy, set_by, set_at FROM sideload_overrides ORDER BY group_name`)
	if err != nil {
		return nil, fmt.Errorf("list sideload overrides: %w", err)
	}
	defer rows.Close()
	var out []SideloadOverride
	for rows.Next() {
		var (
			o  SideloadOverride
			at int64
		)
		if err := rows.Scan(&o.Group, &o.Policy, &o.SetBy, &at); err != nil {
			return nil, fmt.Errorf("list sideload overrides: %w", err)
		}
		o.SetAt = fromUnixNano(at)
		out = append(out, o)
	}
	return out, rows.Err()
}

// SettingSideload is the key of the global sideload policy: "allow" lifts
// the ban; anything else (unset included) keeps it.
const SettingSideload = "sideload"

// SideloadFor is the sideload policy in force on a device in groups (all of
// them: direct, by selector, through included groups): the global policy
// (the SettingSideload value), unless a group of the device has an
// override; when its groups' overrides disagree, deny wins. by names the
// overriding groups whose policy decided, nil when the global one did. The
// desired-state compiler and the executor's no-silent-weakening check both
// decide with it.
func SideloadFor(global string, overrides []SideloadOverride, groups []string) (allowed bool, by []string) {
	if len(overrides) > 0 {
		in := make(map[string]bool, len(groups))
		for _, g := range groups {
			in[g] = true
		}
		var allow, deny []string
		for _, o := range overrides {
			if !in[o.Group] {
				continue
			}
			if o.Policy == SideloadAllow {
				allow = append(allow, o.Group)
			} else {
				deny = append(deny, o.Group)
			}
		}
		switch {
		case len(deny) > 0:
			return false, deny
		case len(allow) > 0:
			return true, allow
		}
	}
	return global == SideloadAllow, nil
}

// sideloadState is what decides every device's sideload policy at one
// point: the global policy, the overrides, and (when there are overrides)
// each device's groups.
type sideloadState struct {
	global    string
	overrides []SideloadOverride
	devices   map[string][]string // device id -> its groups; nil without overrides
}

// readSideloadState reads the sideload state of the devices in only (nil:
// every device).
func readSideloadState(ctx context.Context, q queryer, only []string) (sideloadState, error) {
	var s sideloadState
	settings, err := listSettings(ctx, q)
	if err != nil {
		return s, err
	}
	s.global = settings[SettingSideload]
	if s.overrides, err = listSideloadOverrides(ctx, q); err != nil || len(s.overrides) == 0 {
		return s, err
	}
	var devices []Device
	if only == nil {
		devices, err = listDevices(ctx, q)
	} else {
		ids, _ := json.Marshal(only)
		devices, err = queryAll(ctx, q, scanDevice, `SELECT `+deviceColumns+deviceFrom+` WHERE d.id IN (SELECT value FROM json_each(?))`, string(ids))
	}
	if err != nil {
		return s, fmt.Errorf("read devices for the sideload check: %w", err)
	}
	groups, err := listGroups(ctx, q)
	if err != nil {
		return s, err
	}
	// A device's groups depend on its own labels and memberships only, so
	// resolving the devices asked about alone gives their groups.
	m, err := (&Snapshot{Devices: devices, Groups: groups}).Membership()
	if err != nil {
		return s, err
	}
	s.devices = make(map[string][]string, len(devices))
	for _, d := range devices {
		s.devices[d.ID] = m.GroupsOf(d.ID)
	}
	return s, nil
}

// sideloadLifted returns the devices on which the change lifts the sideload
// ban (denied before, allowed after), sorted; every is true when the change
// lifts it on every device through the global policy and no override
// exists on either side. It is how the executor keeps a weakening from
// being silent, whatever path made it: an override or group deleted, a
// device removed from a denying group or added to an allowing one, a
// selector or a label changed.
//
// The devices compared are those the change marked dirty (every device
// with DirtyAll): a device whose policy changes has a new document, so a
// change must mark it anyway, and a change of one device on a large fleet
// stays cheap.
func (c *Change) sideloadLifted(ctx context.Context) (lifted []string, every bool, err error) {
	var only []string
	if !c.all {
		only = slices.Collect(mapKeys(c.devices))
		if only == nil {
			only = []string{}
		}
	}
	before, err := readSideloadState(ctx, c.db.read, only)
	if err != nil {
		return nil, false, fmt.Errorf("check sideload before the change: %w", err)
	}
	after, err := readSideloadState(ctx, c.tx, only)
	if err != nil {
		return nil, false, fmt.Errorf("check sideload after the change: %w", err)
	}
	if before.devices == nil && after.devices == nil {
		return nil, before.global != SideloadAllow && after.global == SideloadAllow, nil
	}
	ids := before.devices
	if ids == nil {
		ids = after.devices
	}
	for id := range ids {
		groupsBefore, okBefore := before.devices[id]
		groupsAfter, okAfter := after.devices[id]
		if (before.devices != nil && !okBefore) || (after.devices != nil && !okAfter) {
			continue // enrolled or deleted by the change
		}
		was, _ := SideloadFor(before.global, before.overrides, groupsBefore)
		is, _ := SideloadFor(after.global, after.overrides, groupsAfter)
		if !was && is {
			lifted = append(lifted, id)
		}
	}
	slices.Sort(lifted)
	return lifted, false, nil
}
