package store

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// appsSchema is migration 3: trusted publishers and their keys, app versions
// (manifest and signature exactly as uploaded), the artifacts each version
// references, and app assignments to device groups.
//
// Publishers and keys are never deleted, only marked removed (removed_at),
// so the audit trail and the key that verified an old push stay readable; a
// removed key no longer verifies anything and leaves the documents.
const appsSchema = `
CREATE TABLE publishers (
	name       TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL DEFAULT '',
	removed_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE publisher_keys (
	publisher  TEXT NOT NULL REFERENCES publishers (name),
	key_id     TEXT NOT NULL,
	pem        TEXT NOT NULL,
	added_at   INTEGER NOT NULL,
	added_by   TEXT NOT NULL DEFAULT '',
	removed_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (publisher, key_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE app_versions (
	name      TEXT NOT NULL,
	version   TEXT NOT NULL,
	publisher TEXT NOT NULL REFERENCES publishers (name),
	manifest  BLOB NOT NULL,
	signature BLOB NOT NULL,
	key_id    TEXT NOT NULL,
	pushed_by TEXT NOT NULL DEFAULT '',
	pushed_at INTEGER NOT NULL,
	PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE app_artifacts (
	name    TEXT NOT NULL,
	version TEXT NOT NULL,
	path    TEXT NOT NULL,
	digest  TEXT NOT NULL,
	size    INTEGER NOT NULL CHECK (size > 0),
	PRIMARY KEY (name, version, path),
	FOREIGN KEY (name, version) REFERENCES app_versions (name, version) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX app_artifacts_digest ON app_artifacts (digest);

-- One version of an app per group. Deleting a group removes its
-- assignments; a version cannot be deleted while assigned.
CREATE TABLE app_assignments (
	app         TEXT NOT NULL,
	version     TEXT NOT NULL,
	group_name  TEXT NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE,
	forced      INTEGER NOT NULL DEFAULT 0,
	assigned_by TEXT NOT NULL DEFAULT '',
	assigned_at INTEGER NOT NULL,
	PRIMARY KEY (app, group_name),
	FOREIGN KEY (app, version) REFERENCES app_versions (name, version)
) STRICT, WITHOUT ROWID;
CREATE INDEX app_assignments_group ON app_assignments (group_name);
`

// Publisher is a trusted app publisher and its keys. A removed publisher
// (RemovedAt set) trusts no key: its apps are no longer installable.
type Publisher struct {
	Name      string
	CreatedAt time.Time
	CreatedBy string
	RemovedAt time.Time // zero: trusted
	// Keys are every key ever added, oldest first; removed ones have
	// RemovedAt set.
	Keys []PublisherKey
}

// PublisherKey is one public key of a publisher.
type PublisherKey struct {
	ID        string // KeyID of the key
	PEM       string // PKIX public key, PEM ("PUBLIC KEY"), as cosign.pub holds it
	AddedAt   time.Time
	AddedBy   string
	RemovedAt time.Time // zero: trusted
}

// TrustedKeys returns the PEM of the keys of p that verify signatures: none
// when p is removed.
func (p *Publisher) TrustedKeys() []string {
	if !p.RemovedAt.IsZero() {
		return nil
	}
	var out []string
	for _, k := range p.Keys {
		if k.RemovedAt.IsZero() {
			out = append(out, k.PEM)
		}
	}
	return out
}

// AppVersion is a pushed app version: the manifest and signature exactly as
// uploaded, and the key (KeyID) that verified the signature at push time.
type AppVersion struct {
	Name      string
	Version   string
	Publisher string
	Manifest  []byte // exact signed bytes
	Signature []byte // as uploaded (base64 text or bundle)
	KeyID     string
	PushedBy  string
	PushedAt  time.Time
	Artifacts []AppArtifact // in manifest order
}

// AppArtifact is one artifact a version references.
type AppArtifact struct {
	Path   string
	SHA256 string
	Size   int64
}

// Assignment assigns one version of an app to a device group.
type Assignment struct {
	App        string
	Version    string
	Group      string
	Forced     bool // assigned with --force over a Warn verdict
	AssignedBy string
	AssignedAt time.Time
}

// KeyID returns the id of a PEM public key: "sha256:" and the hex SHA-256
// of its PKIX DER encoding. It fails for anything that is not a single
// public key that manifest.ParseKey accepts.
func KeyID(pemKey string) (string, error) {
	if _, err := manifest.ParseKey(pemKey); err != nil {
		return "", err
	}
	block, _ := pem.Decode([]byte(pemKey))
	if block == nil {
		return "", fmt.Errorf("not PEM")
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return "", fmt.Errorf("not a PKIX public key: %w", err)
	}
	sum := sha256.Sum256(block.Bytes)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// AddPublisherKey trusts a public key (PEM, as in cosign.pub) for publisher
// name, creating the publisher if needed. A removed publisher is trusted
// again; a removed key added again is trusted again. Adding a key the
// publisher already trusts is ErrConflict.
func (db *DB) AddPublisherKey(ctx context.Context, name, pemKey, by string, at time.Time) (Publisher, error) {
	if !manifest.NamePattern.MatchString(name) {
		return Publisher{}, fmt.Errorf("%w: publisher name %q must match %s", ErrInvalid, name, manifest.NamePattern)
	}
	pemKey = strings.TrimSpace(pemKey) + "\n"
	id, err := KeyID(pemKey)
	if err != nil {
		return Publisher{}, fmt.Errorf("%w: key for publisher %s: %v; give the PEM public key (cosign.pub) that `cosign generate-key-pair` wrote", ErrInvalid, name, err)
	}
	at = fromUnixNano(unixNano(at))
	var p Publisher
	err = db.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO publishers (name, created_at, created_by) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET removed_at = 0`, name, unixNano(at), by); err != nil {
			return fmt.Errorf("add publisher %s: %w", name, err)
		}
		var removed int64
		err := tx.QueryRowContext(ctx, `SELECT removed_at FROM publisher_keys WHERE publisher = ? AND key_id = ?`, name, id).Scan(&removed)
		switch {
		case err == nil && removed == 0:
			return fmt.Errorf("%w: publisher %s already trusts key %s", ErrConflict, name, id)
		case err == nil:
			_, err = tx.ExecContext(ctx, `UPDATE publisher_keys SET removed_at = 0, added_at = ?, added_by = ? WHERE publisher = ? AND key_id = ?`,
				unixNano(at), by, name, id)
		case isNoRows(err):
			_, err = tx.ExecContext(ctx, `INSERT INTO publisher_keys (publisher, key_id, pem, added_at, added_by) VALUES (?, ?, ?, ?, ?)`,
				name, id, pemKey, unixNano(at), by)
		}
		if err != nil {
			return fmt.Errorf("add key of publisher %s: %w", name, err)
		}
		p, err = getPublisher(ctx, tx, name)
		return err
	})
	return p, err
}

// RemovePublisher stops trusting a publisher and all its keys. Its app
// versions stay, but no device installs them any more.
func (db *DB) RemovePublisher(ctx context.Context, name string, at time.Time) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE publishers SET removed_at = ? WHERE name = ? AND removed_at = 0`, unixNano(at), name)
		if err != nil {
			return fmt.Errorf("remove publisher %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: publisher %s is not trusted; list publishers with `edgewarden publishers ls`", ErrNotFound, name)
		}
		_, err = tx.ExecContext(ctx, `UPDATE publisher_keys SET removed_at = ? WHERE publisher = ? AND removed_at = 0`, unixNano(at), name)
		return err
	})
}

// RemovePublisherKey stops trusting one key of a publisher (keyID as
// KeyID returns it, or a unique prefix of its hex part of at least 8 digits).
func (db *DB) RemovePublisherKey(ctx context.Context, name, keyID string, at time.Time) (Publisher, error) {
	var p Publisher
	err := db.update(ctx, func(tx *sql.Tx) error {
		var err error
		if p, err = getPublisher(ctx, tx, name); err != nil {
			return err
		}
		id, err := matchKey(p, keyID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE publisher_keys SET removed_at = ? WHERE publisher = ? AND key_id = ?`, unixNano(at), name, id); err != nil {
			return fmt.Errorf("remove key %s of publisher %s: %w", id, name, err)
		}
		p, err = getPublisher(ctx, tx, name)
		return err
	})
	return p, err
}

func matchKey(p Publisher, keyID string) (string, error) {
	want := strings.TrimPrefix(keyID, "sha256:")
	var found []string
	for _, k := range p.Keys {
		if !k.RemovedAt.IsZero() {
			continue
		}
		hexID := strings.TrimPrefix(k.ID, "sha256:")
		if hexID == want || (len(want) >= 8 && strings.HasPrefix(hexID, want)) {
			found = append(found, k.ID)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("%w: publisher %s has no trusted key %s; list keys with `edgewarden publishers ls`", ErrNotFound, p.Name, keyID)
	}
	return "", fmt.Errorf("%w: key id %s matches %d keys of publisher %s; give more digits", ErrInvalid, keyID, len(found), p.Name)
}

func getPublisher(ctx context.Context, q queryer, name string) (Publisher, error) {
	ps, err := listPublishers(ctx, q, name)
	if err != nil {
		return Publisher{}, err
	}
	if len(ps) == 0 {
		return Publisher{}, fmt.Errorf("%w: publisher %s does not exist; add it with `edgewarden publishers add %s --key cosign.pub`", ErrNotFound, name, name)
	}
	return ps[0], nil
}

// GetPublisher returns one publisher (removed or not) with all its keys.
func (db *DB) GetPublisher(ctx context.Context, name string) (Publisher, error) {
	return getPublisher(ctx, db.reader(ctx), name)
}

// ListPublishers returns every publisher, removed ones included, by name.
func (db *DB) ListPublishers(ctx context.Context) ([]Publisher, error) {
	return listPublishers(ctx, db.reader(ctx), "")
}

// listPublishers lists every publisher, or only the one named only.
func listPublishers(ctx context.Context, q queryer, only string) ([]Publisher, error) {
	where, args := "", []any{}
	if only != "" {
		where, args = " WHERE name = ?", append(args, only)
	}
	rows, err := q.QueryContext(ctx, `SELECT name, created_at, created_by, removed_at FROM publishers`+where+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list publishers: %w", err)
	}
	var out []Publisher
	idx := map[string]int{}
	for rows.Next() {
		var (
			p                Publisher
			created, removed int64
		)
		if err := rows.Scan(&p.Name, &created, &p.CreatedBy, &removed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list publishers: %w", err)
		}
		p.CreatedAt, p.RemovedAt = fromUnixNano(created), fromUnixNano(removed)
		idx[p.Name] = len(out)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list publishers: %w", err)
	}
	krows, err := q.QueryContext(ctx, `SELECT publisher, key_id, pem, added_at, added_by, removed_at FROM publisher_keys`+
		strings.Replace(where, "name", "publisher", 1)+` ORDER BY publisher, added_at, key_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list publisher keys: %w", err)
	}
	defer krows.Close()
	for krows.Next() {
		var (
			pub            string
			k              PublisherKey
			added, removed int64
		)
		if err := krows.Scan(&pub, &k.ID, &k.PEM, &added, &k.AddedBy, &removed); err != nil {
			return nil, fmt.Errorf("list publisher keys: %w", err)
		}
		k.AddedAt, k.RemovedAt = fromUnixNano(added), fromUnixNano(removed)
		if i, ok := idx[pub]; ok {
			out[i].Keys = append(out[i].Keys, k)
		}
	}
	return out, krows.Err()
}

// PutAppVersion stores an app version that passed checkpoint 1, with its
// artifacts. The publisher must exist; a version already stored is
// ErrConflict (versions are immutable: push a new version number).
func (db *DB) PutAppVersion(ctx context.Context, v AppVersion) error {
	if !manifest.NamePattern.MatchString(v.Name) || v.Version == "" || v.Publisher == "" || len(v.Manifest) == 0 || len(v.Signature) == 0 || len(v.Artifacts) == 0 {
		return fmt.Errorf("%w: app version needs a name, version, publisher, manifest, signature and artifacts", ErrInvalid)
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		if _, err := getPublisher(ctx, tx, v.Publisher); err != nil {
			return err
		}
		same, err := samePrecedence(ctx, tx, v.Name, v.Version)
		if err != nil {
			return err
		}
		if same != "" && same != v.Version {
			return fmt.Errorf("%w: %s %s has the same precedence as %s, which is already pushed (build metadata after '+' does not make a new version); push it under a new version number", ErrConflict, v.Name, v.Version, same)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO app_versions (name, version, publisher, manifest, signature, key_id, pushed_by, pushed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, v.Name, v.Version, v.Publisher, v.Manifest, v.Signature, v.KeyID, v.PushedBy, unixNano(v.PushedAt))
		if isConstraint(err) {
			return fmt.Errorf("%w: %s %s is already pushed; versions are immutable, push it under a new version number", ErrConflict, v.Name, v.Version)
		}
		if err != nil {
			return fmt.Errorf("store %s %s: %w", v.Name, v.Version, err)
		}
		for _, a := range v.Artifacts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO app_artifacts (name, version, path, digest, size) VALUES (?, ?, ?, ?, ?)`,
				v.Name, v.Version, a.Path, a.SHA256, a.Size); err != nil {
				return fmt.Errorf("store %s %s: artifact %s: %w", v.Name, v.Version, a.Path, err)
			}
		}
		return nil
	})
}

// HasAppVersion reports whether a version equal to version by semver
// precedence is stored: 1.0.0+build.2 is the same version as 1.0.0, since
// build metadata does not order versions and devices could not tell them
// apart when choosing which to run.
func (db *DB) HasAppVersion(ctx context.Context, name, version string) (bool, error) {
	same, err := samePrecedence(ctx, db.reader(ctx), name, version)
	return same != "", err
}

// samePrecedence returns the stored version of app name that equals version
// by semver precedence, or "" when there is none. A version that does not
// parse matches only itself.
func samePrecedence(ctx context.Context, q queryer, name, version string) (string, error) {
	want, werr := manifest.ParseVersion(version)
	stored, err := queryAll(ctx, q, func(row interface{ Scan(...any) error }) (string, error) {
		var v string
		return v, row.Scan(&v)
	}, `SELECT version FROM app_versions WHERE name = ?`, name)
	if err != nil {
		return "", fmt.Errorf("read versions of %s: %w", name, err)
	}
	for _, s := range stored {
		if s == version {
			return s, nil
		}
		if werr != nil {
			continue
		}
		if got, err := manifest.ParseVersion(s); err == nil && got.Compare(want) == 0 {
			return s, nil
		}
	}
	return "", nil
}

// GetAppVersion returns one app version with its artifacts.
func (db *DB) GetAppVersion(ctx context.Context, name, version string) (AppVersion, error) {
	vs, err := listAppVersions(ctx, db.reader(ctx), `WHERE v.name = ? AND v.version = ?`, name, version)
	if err != nil {
		return AppVersion{}, err
	}
	if len(vs) == 0 {
		return AppVersion{}, fmt.Errorf("%w: app %s has no version %s; list versions with `edgewarden apps show %s`", ErrNotFound, name, version, name)
	}
	return vs[0], nil
}

// ListAppVersions returns every stored app version, by name then push time.
func (db *DB) ListAppVersions(ctx context.Context) ([]AppVersion, error) {
	return listAppVersions(ctx, db.reader(ctx), "")
}

func listAppVersions(ctx context.Context, q queryer, where string, args ...any) ([]AppVersion, error) {
	rows, err := q.QueryContext(ctx, `SELECT v.name, v.version, v.publisher, v.manifest, v.signature, v.key_id, v.pushed_by, v.pushed_at
		FROM app_versions v `+where+` ORDER BY v.name, v.pushed_at, v.version`, args...)
	if err != nil {
		return nil, fmt.Errorf("list app versions: %w", err)
	}
	var out []AppVersion
	idx := map[[2]string]int{}
	for rows.Next() {
		var (
			v      AppVersion
			pushed int64
		)
		if err := rows.Scan(&v.Name, &v.Version, &v.Publisher, &v.Manifest, &v.Signature, &v.KeyID, &v.PushedBy, &pushed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list app versions: %w", err)
		}
		v.PushedAt = fromUnixNano(pushed)
		idx[[2]string{v.Name, v.Version}] = len(out)
		out = append(out, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list app versions: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	arows, err := q.QueryContext(ctx, `SELECT v.name, v.version, a.path, a.digest, a.size
		FROM app_artifacts a JOIN app_versions v ON v.name = a.name AND v.version = a.version `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list app artifacts: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var (
			name, version string
			a             AppArtifact
		)
		if err := arows.Scan(&name, &version, &a.Path, &a.SHA256, &a.Size); err != nil {
			return nil, fmt.Errorf("list app artifacts: %w", err)
		}
		if i, ok := idx[[2]string{name, version}]; ok {
			out[i].Artifacts = append(out[i].Artifacts, a)
		}
	}
	if err := arows.Err(); err != nil {
		return nil, fmt.Errorf("list app artifacts: %w", err)
	}
	// app_artifacts is WITHOUT ROWID and keyed by path: put artifacts back
	// in manifest order.
	for i := range out {
		m, err := manifest.Parse(out[i].Manifest)
		if err != nil {
			continue
		}
		order := map[string]int{}
		for j, a := range m.Artifacts {
			order[a.Path] = j
		}
		slices.SortFunc(out[i].Artifacts, func(a, b AppArtifact) int { return order[a.Path] - order[b.Path] })
	}
	return out, nil
}

// DeleteAppVersion deletes a version that is assigned nowhere (ErrConflict
// otherwise, naming the groups). Its artifact files are left to the
// catalogue's garbage collection (ReferencedArtifacts).
func (db *DB) DeleteAppVersion(ctx context.Context, name, version string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		groups, err := queryStrings(ctx, tx, `SELECT group_name FROM app_assignments WHERE app = ? AND version = ? ORDER BY group_name`, name, version)
		if err != nil {
			return fmt.Errorf("delete %s %s: %w", name, version, err)
		}
		if len(groups) > 0 {
			return fmt.Errorf("%w: %s %s is assigned to group %s; unassign it first (`edgewarden apps unassign %s --group %s`)",
				ErrConflict, name, version, strings.Join(groups, ", "), name, groups[0])
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM app_versions WHERE name = ? AND version = ?`, name, version)
		if err != nil {
			return fmt.Errorf("delete %s %s: %w", name, version, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: app %s has no version %s; list versions with `edgewarden apps show %s`", ErrNotFound, name, version, name)
		}
		return nil
	})
}

// ReferencedArtifacts returns the digest of every artifact a stored version
// references: everything else in the artifact store may be collected.
func (db *DB) ReferencedArtifacts(ctx context.Context) (map[string]bool, error) {
	ds, err := queryStrings(ctx, db.reader(ctx), `SELECT DISTINCT digest FROM app_artifacts`)
	if err != nil {
		return nil, fmt.Errorf("list referenced artifacts: %w", err)
	}
	out := make(map[string]bool, len(ds))
	for _, d := range ds {
		out[d] = true
	}
	return out, nil
}

// AssignApp assigns a version to a group, replacing the version of that app
// assigned to the group before, if any. The version and the group must
// exist. Checking installation guidance is the caller's job.
func (db *DB) AssignApp(ctx context.Context, a Assignment) (Assignment, error) {
	a.AssignedAt = fromUnixNano(unixNano(a.AssignedAt))
	err := db.update(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM app_versions WHERE name = ? AND version = ?`, a.App, a.Version).Scan(&one)
		if isNoRows(err) {
			return fmt.Errorf("%w: app %s has no version %s; push it first (`edgewarden apps push`)", ErrNotFound, a.App, a.Version)
		}
		if err != nil {
			return fmt.Errorf("assign %s %s: %w", a.App, a.Version, err)
		}
		if err := groupExists(ctx, tx, a.Group); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO app_assignments (app, version, group_name, forced, assigned_by, assigned_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (app, group_name) DO UPDATE SET version = excluded.version, forced = excluded.forced,
				assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at`,
			a.App, a.Version, a.Group, a.Forced, a.AssignedBy, unixNano(a.AssignedAt))
		if err != nil {
			return fmt.Errorf("assign %s %s to group %s: %w", a.App, a.Version, a.Group, err)
		}
		return nil
	})
	return a, err
}

// UnassignApp removes the assignment of app to group.
func (db *DB) UnassignApp(ctx context.Context, app, group string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM app_assignments WHERE app = ? AND group_name = ?`, app, group)
		if err != nil {
			return fmt.Errorf("unassign %s from group %s: %w", app, group, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: app %s is not assigned to group %s; see `edgewarden apps show %s`", ErrNotFound, app, group, app)
		}
		return nil
	})
}

// ListAssignments returns every assignment, by app then group.
func (db *DB) ListAssignments(ctx context.Context) ([]Assignment, error) {
	return listAssignments(ctx, db.reader(ctx))
}

func listAssignments(ctx context.Context, q queryer) ([]Assignment, error) {
	rows, err := q.QueryContext(ctx, `SELECT app, version, group_name, forced, assigned_by, assigned_at FROM app_assignments ORDER BY app, group_name`)
	if err != nil {
		return nil, fmt.Errorf("list app assignments: %w", err)
	}
	defer rows.Close()
	var out []Assignment
	for rows.Next() {
		var (
			a  Assignment
			at int64
		)
		if err := rows.Scan(&a.App, &a.Version, &a.Group, &a.Forced, &a.AssignedBy, &at); err != nil {
			return nil, fmt.Errorf("list app assignments: %w", err)
		}
		a.AssignedAt = fromUnixNano(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// AssignmentsWithArtifact returns the assignments of every version that
// references the artifact digest.
func (db *DB) AssignmentsWithArtifact(ctx context.Context, digest string) ([]Assignment, error) {
	rows, err := db.reader(ctx).QueryContext(ctx, `SELECT DISTINCT s.app, s.version, s.group_name, s.forced, s.assigned_by, s.assigned_at
		FROM app_assignments s JOIN app_artifacts a ON a.name = s.app AND a.version = s.version
		WHERE a.digest = ? ORDER BY s.app, s.group_name`, digest)
	if err != nil {
		return nil, fmt.Errorf("find assignments of artifact %s: %w", digest, err)
	}
	defer rows.Close()
	var out []Assignment
	for rows.Next() {
		var (
			a  Assignment
			at int64
		)
		if err := rows.Scan(&a.App, &a.Version, &a.Group, &a.Forced, &a.AssignedBy, &at); err != nil {
			return nil, fmt.Errorf("find assignments of artifact %s: %w", digest, err)
		}
		a.AssignedAt = fromUnixNano(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// snapshotApps fills the app part of a Snapshot: trusted publishers (with
// trusted keys only), every assignment, and the versions assigned anywhere.
func snapshotApps(ctx context.Context, tx *sql.Tx, s *Snapshot) error {
	ps, err := listPublishers(ctx, tx, "")
	if err != nil {
		return err
	}
	s.Publishers = nil
	for _, p := range ps {
		if !p.RemovedAt.IsZero() {
			continue
		}
		keys := p.Keys[:0:0]
		for _, k := range p.Keys {
			if k.RemovedAt.IsZero() {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			continue
		}
		p.Keys = keys
		s.Publishers = append(s.Publishers, p)
	}
	if s.Assignments, err = listAssignments(ctx, tx); err != nil {
		return err
	}
	s.AppVersions, err = listAppVersions(ctx, tx, `WHERE EXISTS (SELECT 1 FROM app_assignments s WHERE s.app = v.name AND s.version = v.version)`)
	return err
}

func queryStrings(ctx context.Context, q queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
