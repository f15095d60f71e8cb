package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/edgewarden/edgewarden/controller/fleet"
	"github.com/edgewarden/edgewarden/protocol/access"
)

func groupExists(ctx context.Context, q queryer, name string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM device_groups WHERE name = ?`, name).Scan(&one)
	if isNoRows(err) {
		return fmt.Errorf("%w: device group %s does not exist; list groups with `edgewarden groups ls`", ErrNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("read device group %s: %w", name, err)
	}
	return nil
}

// CreateGroup creates a device group with an optional label selector (see
// fleet.ParseSelector); the selector is stored in canonical form.
func (db *DB) CreateGroup(ctx context.Context, name, selector string) (Group, error) {
	if err := fleet.ValidateGroupName(name); err != nil {
		return Group{}, fmt.Errorf("%w: create group: %w", ErrInvalid, err)
	}
	sel, err := fleet.ParseSelector(selector)
	if err != nil {
		return Group{}, fmt.Errorf("%w: create group %s: %w", ErrInvalid, name, err)
	}
	var g Group
	err = db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO device_groups (name, selector, created_at) VALUES (?, ?, ?)`,
			name, sel.String(), unixNano(db.now()))
		if isConstraint(err) {
			return fmt.Errorf("%w: device group %s already exists; choose another name or delete it first", ErrConflict, name)
		}
		if err != nil {
			return fmt.Errorf("create group %s: %w", name, err)
		}
		g, err = getGroup(ctx, tx, name)
		return err
	})
	return g, err
}

// SetGroupSelector replaces a group's label selector ("" removes it).
func (db *DB) SetGroupSelector(ctx context.Context, name, selector string) (Group, error) {
	sel, err := fleet.ParseSelector(selector)
	if err != nil {
		return Group{}, fmt.Errorf("%w: set selector of group %s: %w", ErrInvalid, name, err)
	}
	var g Group
	err = db.update(ctx, func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, name); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE device_groups SET selector = ? WHERE name = ?`, sel.String(), name); err != nil {
			return fmt.Errorf("set selector of group %s: %w", name, err)
		}
		g, err = getGroup(ctx, tx, name)
		return err
	})
	return g, err
}

func getGroup(ctx context.Context, q queryer, name string) (Group, error) {
	var (
		g       Group
		created int64
	)
	err := q.QueryRowContext(ctx, `SELECT name, selector, created_at FROM device_groups WHERE name = ?`, name).Scan(&g.Name, &g.Selector, &created)
	if isNoRows(err) {
		return Group{}, fmt.Errorf("%w: device group %s does not exist; list groups with `edgewarden groups ls`", ErrNotFound, name)
	}
	if err != nil {
		return Group{}, fmt.Errorf("read device group %s: %w", name, err)
	}
	g.CreatedAt = fromUnixNano(created)
	if g.Devices, err = strings1(ctx, q, `SELECT device_id FROM group_devices WHERE group_name = ? ORDER BY device_id`, name); err != nil {
		return Group{}, fmt.Errorf("read members of device group %s: %w", name, err)
	}
	if g.Includes, err = strings1(ctx, q, `SELECT child FROM group_includes WHERE parent = ? ORDER BY child`, name); err != nil {
		return Group{}, fmt.Errorf("read includes of device group %s: %w", name, err)
	}
	return g, nil
}

// strings1 returns the single string column of a query's rows, never nil.
func strings1(ctx context.Context, q queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// GetGroup returns one device group with its direct members and includes.
func (db *DB) GetGroup(ctx context.Context, name string) (Group, error) {
	var g Group
	err := db.view(ctx, func(tx *sql.Tx) error {
		var err error
		g, err = getGroup(ctx, tx, name)
		return err
	})
	return g, err
}

// ListGroups returns every device group, sorted by name.
func (db *DB) ListGroups(ctx context.Context) ([]Group, error) {
	var out []Group
	err := db.view(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = listGroups(ctx, tx)
		return err
	})
	return out, err
}

// listGroups reads all groups with three queries, whatever their number.
func listGroups(ctx context.Context, q queryer) ([]Group, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, selector, created_at FROM device_groups ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list device groups: %w", err)
	}
	var out []Group
	idx := map[string]int{}
	for rows.Next() {
		var (
			g       Group
			created int64
		)
		if err := rows.Scan(&g.Name, &g.Selector, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list device groups: %w", err)
		}
		g.CreatedAt = fromUnixNano(created)
		g.Devices, g.Includes = []string{}, []string{}
		idx[g.Name] = len(out)
		out = append(out, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list device groups: %w", err)
	}
	pairs := func(query string, add func(g *Group, v string)) error {
		rows, err := q.QueryContext(ctx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			if i, ok := idx[k]; ok {
				add(&out[i], v)
			}
		}
		return rows.Err()
	}
	if err := pairs(`SELECT group_name, device_id FROM group_devices ORDER BY group_name, device_id`,
		func(g *Group, v string) { g.Devices = append(g.Devices, v) }); err != nil {
		return nil, fmt.Errorf("list device group members: %w", err)
	}
	if err := pairs(`SELECT parent, child FROM group_includes ORDER BY parent, child`,
		func(g *Group, v string) { g.Includes = append(g.Includes, v) }); err != nil {
		return nil, fmt.Errorf("list device group includes: %w", err)
	}
	return out, nil
}

// DeleteGroup deletes a device group. Its direct memberships go with it, and
// so do the include edges on both sides: a group that included it stops
// receiving its members (the change reaches devices with the next document).
// Enrollment tokens that assign the group keep naming it and fail clearly
// when used (see Enroll).
func (db *DB) DeleteGroup(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM device_groups WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete device group %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: device group %s does not exist; list groups with `edgewarden groups ls`", ErrNotFound, name)
		}
		return nil
	})
}

// AddGroupDevices makes devices direct members of a group, all or nothing:
// an unknown device changes nothing and is named in the ErrNotFound error.
// Devices that are already direct members are left as they are.
func (db *DB) AddGroupDevices(ctx context.Context, group string, ids []string) (Group, error) {
	var g Group
	err := db.update(ctx, func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, group); err != nil {
			return err
		}
		for _, id := range ids {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, id).Scan(&one)
			if isNoRows(err) {
				return fmt.Errorf("%w: device %s does not exist, so nothing was added to group %s; check the id with `edgewarden devices ls`", ErrNotFound, id, group)
			}
			if err != nil {
				return fmt.Errorf("add devices to group %s: %w", group, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_devices (group_name, device_id) VALUES (?, ?)`, group, id); err != nil {
				return fmt.Errorf("add device %s to group %s: %w", id, group, err)
			}
		}
		var err error
		g, err = getGroup(ctx, tx, group)
		return err
	})
	return g, err
}

// RemoveGroupDevices removes direct members from a group, all or nothing: a
// device that is not a direct member changes nothing and is named in the
// ErrNotFound error. (Members by selector or through an included group are
// not direct members; change the device's labels or the includes instead.)
func (db *DB) RemoveGroupDevices(ctx context.Context, group string, ids []string) (Group, error) {
	var g Group
	err := db.update(ctx, func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, group); err != nil {
			return err
		}
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `DELETE FROM group_devices WHERE group_name = ? AND device_id = ?`, group, id)
			if err != nil {
				return fmt.Errorf("remove device %s from group %s: %w", id, group, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%w: device %s is not a direct member of group %s, so nothing was removed; members by selector or through an included group are changed with labels or `groups exclude`", ErrNotFound, id, group)
			}
		}
		var err error
		g, err = getGroup(ctx, tx, group)
		return err
	})
	return g, err
}

// IncludeGroup makes parent include child: every member of child becomes a
// member of parent. A group including itself, or an include that would
// close a cycle, is refused with ErrConflict naming the cycle. Including a
// group that is already included is not an error.
func (db *DB) IncludeGroup(ctx context.Context, parent, child string) (Group, error) {
	var g Group
	err := db.update(ctx, func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, parent); err != nil {
			return err
		}
		if err := groupExists(ctx, tx, child); err != nil {
			return err
		}
		edges, err := includeEdges(ctx, tx)
		if err != nil {
			return err
		}
		if err := fleet.CheckInclude(edges, parent, child); err != nil {
			return fmt.Errorf("%w: %w", ErrConflict, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_includes (parent, child) VALUES (?, ?)`, parent, child); err != nil {
			return fmt.Errorf("group %s include %s: %w", parent, child, err)
		}
		g, err = getGroup(ctx, tx, parent)
		return err
	})
	return g, err
}

func includeEdges(ctx context.Context, q queryer) ([]fleet.Group, error) {
	rows, err := q.QueryContext(ctx, `SELECT parent, child FROM group_includes ORDER BY parent, child`)
	if err != nil {
		return nil, fmt.Errorf("read group includes: %w", err)
	}
	defer rows.Close()
	var out []fleet.Group
	for rows.Next() {
		var p, c string
		if err := rows.Scan(&p, &c); err != nil {
			return nil, fmt.Errorf("read group includes: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].Name == p {
			out[n-1].Includes = append(out[n-1].Includes, c)
		} else {
			out = append(out, fleet.Group{Name: p, Includes: []string{c}})
		}
	}
	return out, rows.Err()
}

// ExcludeGroup removes the include of child from parent.
func (db *DB) ExcludeGroup(ctx context.Context, parent, child string) (Group, error) {
	var g Group
	err := db.update(ctx, func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, parent); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM group_includes WHERE parent = ? AND child = ?`, parent, child)
		if err != nil {
			return fmt.Errorf("group %s exclude %s: %w", parent, child, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: group %s does not include %s; nothing to exclude", ErrNotFound, parent, child)
		}
		g, err = getGroup(ctx, tx, parent)
		return err
	})
	return g, err
}

// FleetGroups converts stored groups to the form fleet.Resolve takes.
func FleetGroups(groups []Group) []fleet.Group {
	out := make([]fleet.Group, len(groups))
	for i, g := range groups {
		out[i] = fleet.Group{Name: g.Name, Selector: g.Selector, Devices: g.Devices, Includes: g.Includes}
	}
	return out
}

// FleetDevices converts stored devices to the form fleet.Resolve takes.
func FleetDevices(devices []Device) []fleet.Device {
	out := make([]fleet.Device, len(devices))
	for i, d := range devices {
		out[i] = fleet.Device{ID: d.ID, Labels: d.Labels}
	}
	return out
}

// Membership resolves the current membership of every group and device (see
// fleet.Resolve) from one consistent read.
func (db *DB) Membership(ctx context.Context) (*fleet.Membership, error) {
	devices, groups, err := db.devicesAndGroups(ctx)
	if err != nil {
		return nil, err
	}
	return (&Snapshot{Devices: devices, Groups: groups}).Membership()
}

// Membership resolves the snapshot's group membership (see fleet.Resolve).
func (s *Snapshot) Membership() (*fleet.Membership, error) {
	m, err := fleet.Resolve(FleetDevices(s.Devices), FleetGroups(s.Groups))
	if err != nil {
		return nil, fmt.Errorf("resolve group membership: %w", err)
	}
	return m, nil
}

// GroupDependents is what deleting a device group takes with it besides its
// direct memberships: what other people rely on, listed so that a deletion
// can name it (and the API can ask for --force before it goes).
type GroupDependents struct {
	Group string
	// Sideload is the group's sideload override, nil for none. Deleting a
	// deny override can lift the ban on the group's devices.
	Sideload *SideloadOverride
	// Grants are the grants on the group; they go with it.
	Grants []Grant
	// Assignments are the app versions assigned to the group; its devices
	// stop receiving them.
	Assignments []Assignment
	// IncludedBy are the groups that include this one: they lose its
	// members (and whatever their grants and overrides gave them).
	IncludedBy []string
	// Includes are the groups this one includes; they stay, only the edge
	// goes.
	Includes []string
}

// Protected lists, one line each, what deleting the group would take from
// others: its sideload override, its grants except those to the user named
// self (a creator's own owner grant is theirs to drop), its app
// assignments and the groups that include it. Empty: nothing but the group
// itself and its memberships goes.
func (d GroupDependents) Protected(self string) []string {
	var out []string
	if d.Sideload != nil {
		out = append(out, fmt.Sprintf("sideload override %s (set by %s)", d.Sideload.Policy, d.Sideload.SetBy))
	}
	for _, g := range d.Grants {
		if g.Subject.Kind == access.SubjectUser && g.Subject.Name == self {
			continue
		}
		out = append(out, fmt.Sprintf("grant %s (role %s to %s)", g.ID, g.Role, g.Subject))
	}
	for _, a := range d.Assignments {
		out = append(out, fmt.Sprintf("app assignment %s %s", a.App, a.Version))
	}
	for _, p := range d.IncludedBy {
		out = append(out, fmt.Sprintf("inclusion in group %s (its members leave %s)", p, p))
	}
	return out
}

// Removed lists, one line each, everything the deletion removes: what
// Protected lists, the grants to anyone, and the includes of other groups.
func (d GroupDependents) Removed() []string {
	out := d.Protected("")
	for _, c := range d.Includes {
		out = append(out, fmt.Sprintf("include of group %s", c))
	}
	return out
}

// GroupDependents returns what deleting group would remove with it. An
// unknown group is ErrNotFound.
func (db *DB) GroupDependents(ctx context.Context, group string) (GroupDependents, error) {
	d := GroupDependents{Group: group}
	err := db.view(ctx, func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, group); err != nil {
			return err
		}
		os, err := listSideloadOverrides(ctx, tx)
		if err != nil {
			return err
		}
		for _, o := range os {
			if o.Group == group {
				d.Sideload = &o
			}
		}
		if d.Grants, err = queryAll(ctx, tx, scanGrant, `SELECT `+grantColumns+` FROM grants
			WHERE scope_kind = 'device-group' AND scope_name = ? ORDER BY id`, group); err != nil {
			return fmt.Errorf("read grants on device group %s: %w", group, err)
		}
		as, err := listAssignments(ctx, tx)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.Group == group {
				d.Assignments = append(d.Assignments, a)
			}
		}
		if d.IncludedBy, err = strings1(ctx, tx, `SELECT parent FROM group_includes WHERE child = ? ORDER BY parent`, group); err != nil {
			return fmt.Errorf("read the groups that include %s: %w", group, err)
		}
		if d.Includes, err = strings1(ctx, tx, `SELECT child FROM group_includes WHERE parent = ? ORDER BY child`, group); err != nil {
			return fmt.Errorf("read the groups %s includes: %w", group, err)
		}
		return nil
	})
	return d, err
}

// RenameGroup renames a device group. Everything that names it follows:
// direct members, includes on both sides, its sideload override, app
// assignments, grants on it and the enrollment tokens that assign it, so a
// rename changes no one's rights and no device's policy. A taken or invalid
// new name is refused and changes nothing.
func (db *DB) RenameGroup(ctx context.Context, old, name string) (Group, error) {
	if err := fleet.ValidateGroupName(name); err != nil {
		return Group{}, fmt.Errorf("%w: rename group %s: %w", ErrInvalid, old, err)
	}
	if old == name {
		return Group{}, fmt.Errorf("%w: group %s is already called %s; give a different new name", ErrInvalid, old, name)
	}
	var g Group
	err := db.update(ctx, func(tx *sql.Tx) error {
		var (
			sel     string
			created int64
		)
		err := tx.QueryRowContext(ctx, `SELECT selector, created_at FROM device_groups WHERE name = ?`, old).Scan(&sel, &created)
		if isNoRows(err) {
			return fmt.Errorf("%w: device group %s does not exist; list groups with `edgewarden groups ls`", ErrNotFound, old)
		}
		if err != nil {
			return fmt.Errorf("rename group %s: %w", old, err)
		}
		// The new row first, the references moved to it, the old row last:
		// its delete triggers and cascades then find nothing left to take.
		_, err = tx.ExecContext(ctx, `INSERT INTO device_groups (name, selector, created_at) VALUES (?, ?, ?)`, name, sel, created)
		if isConstraint(err) {
			return fmt.Errorf("%w: cannot rename group %s to %s: a group called %s already exists; choose another name", ErrConflict, old, name, name)
		}
		if err != nil {
			return fmt.Errorf("rename group %s: %w", old, err)
		}
		for _, q := range groupReferences {
			if _, err := tx.ExecContext(ctx, q, name, old); err != nil {
				return fmt.Errorf("rename group %s to %s: %w", old, name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM device_groups WHERE name = ?`, old); err != nil {
			return fmt.Errorf("rename group %s to %s: %w", old, name, err)
		}
		g, err = getGroup(ctx, tx, name)
		return err
	})
	return g, err
}

// groupReferences are the statements that move every reference to a group
// from its old name (the second argument) to its new one (the first).
// TestRenameGroupMovesEveryReference fails when a table gains a foreign key
// to device_groups that is not moved here.
var groupReferences = []string{
	`UPDATE group_devices SET group_name = ?1 WHERE group_name = ?2`,
	`UPDATE group_includes SET parent = ?1 WHERE parent = ?2`,
	`UPDATE group_includes SET child = ?1 WHERE child = ?2`,
	`UPDATE sideload_overrides SET group_name = ?1 WHERE group_name = ?2`,
	`UPDATE app_assignments SET group_name = ?1 WHERE group_name = ?2`,
	`UPDATE grants SET scope_name = ?1 WHERE scope_kind = 'device-group' AND scope_name = ?2`,
	`UPDATE enroll_tokens SET groups = (SELECT json_group_array(CASE WHEN value = ?2 THEN ?1 ELSE value END) FROM json_each(enroll_tokens.groups))
		WHERE EXISTS (SELECT 1 FROM json_each(enroll_tokens.groups) WHERE value = ?2)`,
}

// SelectorChange is what setting a group's selector would do: its members
// as they would be, and the devices that would join and leave it.
type SelectorChange struct {
	Selector string   // canonical form
	Members  []string // every member after the change, sorted
	Added    []string // members after that are not members now
	Removed  []string // members now that are not members after
}

// PreviewSelector resolves the fleet as it would be with group's selector
// set to selector, changing nothing. A group that does not exist yet is
// taken as a new, empty group (for a creation). An invalid selector is
// ErrInvalid.
func (db *DB) PreviewSelector(ctx context.Context, group, selector string) (SelectorChange, error) {
	sel, err := fleet.ParseSelector(selector)
	if err != nil {
		return SelectorChange{}, fmt.Errorf("%w: selector of group %s: %w", ErrInvalid, group, err)
	}
	devices, groups, err := db.devicesAndGroups(ctx)
	if err != nil {
		return SelectorChange{}, err
	}
	now, err := (&Snapshot{Devices: devices, Groups: groups}).Membership()
	if err != nil {
		return SelectorChange{}, err
	}
	i := slices.IndexFunc(groups, func(g Group) bool { return g.Name == group })
	if i < 0 {
		groups = append(groups, Group{Name: group, Devices: []string{}, Includes: []string{}})
		i = len(groups) - 1
	}
	groups[i].Selector = sel.String()
	after, err := (&Snapshot{Devices: devices, Groups: groups}).Membership()
	if err != nil {
		return SelectorChange{}, err
	}
	out := SelectorChange{Selector: sel.String(), Members: nonNilStrings(after.Members(group))}
	before := now.Members(group)
	out.Added = nonNilStrings(minus(out.Members, before))
	out.Removed = nonNilStrings(minus(before, out.Members))
	return out, nil
}

// minus returns the elements of a not in b, in a's order.
func minus(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// LiveTokensNaming returns the ids of the enrollment tokens that would still
// put devices into a group called group: not revoked, not expired, not used
// up. A group deleted while such a token lives leaves its name to be taken;
// whoever creates a group by that name receives the devices the token
// enrolls (see the API's create and rename).
func (db *DB) LiveTokensNaming(ctx context.Context, group string) ([]string, error) {
	ids, err := strings1(ctx, db.reader(ctx), `SELECT id FROM enroll_tokens
		WHERE revoked = 0 AND expires_at > ? AND used < max_uses
		AND EXISTS (SELECT 1 FROM json_each(enroll_tokens.groups) WHERE value = ?) ORDER BY id`, unixNano(db.now()), group)
	if err != nil {
		return nil, fmt.Errorf("read the enrollment tokens that assign group %s: %w", group, err)
	}
	return ids, nil
}

// devicesAndGroups reads every device and group in one consistent read,
// what resolving membership takes.
func (db *DB) devicesAndGroups(ctx context.Context) (devices []Device, groups []Group, err error) {
	err = db.view(ctx, func(tx *sql.Tx) error {
		var err error
		if devices, err = listDevices(ctx, tx); err != nil {
			return err
		}
		groups, err = listGroups(ctx, tx)
		return err
	})
	return devices, groups, err
}
