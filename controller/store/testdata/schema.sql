CREATE TRIGGER device_groups_delete_grants AFTER DELETE ON device_groups BEGIN
	DELETE FROM grants WHERE scope_kind = 'device-group' AND scope_name = OLD.name;
END;

CREATE TRIGGER devices_delete_grants AFTER DELETE ON devices BEGIN
	DELETE FROM grants WHERE scope_kind = 'device' AND scope_name = OLD.id;
END;

CREATE TRIGGER grants_assign_subject_id AFTER INSERT ON grants
	WHEN NEW.subject_kind = 'user' AND NEW.subject_id = '' BEGIN
	UPDATE grants SET subject_id = COALESCE((SELECT id FROM users WHERE name = NEW.subject_name), '') WHERE id = NEW.id;
END;

CREATE TRIGGER operator_tokens_assign_user_id AFTER INSERT ON operator_tokens WHEN NEW.user_id = '' BEGIN
	UPDATE operator_tokens SET user_id = COALESCE((SELECT id FROM users WHERE name = NEW.user_name), '') WHERE id = NEW.id;
END;

CREATE TRIGGER teams_delete_grants AFTER DELETE ON teams BEGIN
	DELETE FROM grants WHERE subject_kind = 'team' AND subject_name = OLD.name;
END;

CREATE TRIGGER users_assign_id AFTER INSERT ON users WHEN NEW.id = '' BEGIN
	UPDATE users SET id = 'u-' || lower(hex(randomblob(12))) WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER users_delete_grants AFTER DELETE ON users BEGIN
	DELETE FROM grants WHERE subject_kind = 'user' AND (subject_id = OLD.id OR subject_name = OLD.name);
END;

CREATE TRIGGER users_id_immutable BEFORE UPDATE OF id ON users WHEN OLD.id <> '' BEGIN
	SELECT RAISE(ABORT, 'a user id never changes');
END;

CREATE TABLE app_artifacts (
	name    TEXT NOT NULL,
	version TEXT NOT NULL,
	path    TEXT NOT NULL,
	digest  TEXT NOT NULL,
	size    INTEGER NOT NULL CHECK (size > 0),
	PRIMARY KEY (name, version, path),
	FOREIGN KEY (name, version) REFERENCES app_versions (name, version) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

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

CREATE TABLE audit (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	at     INTEGER NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT '',
	source TEXT NOT NULL DEFAULT '',
	kind   TEXT NOT NULL
, change_seq INTEGER NOT NULL DEFAULT 0, state_before TEXT NOT NULL DEFAULT '', state_after TEXT NOT NULL DEFAULT '', actor_id TEXT NOT NULL DEFAULT '') STRICT;

CREATE TABLE change_seq (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
) STRICT;

CREATE TABLE desired (
	device_id  TEXT PRIMARY KEY,
	revision   INTEGER NOT NULL CHECK (revision > 0),
	digest     TEXT NOT NULL,
	issued_at  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	envelope   BLOB NOT NULL
, signers TEXT NOT NULL DEFAULT '') STRICT;

CREATE TABLE device_groups (
	name       TEXT PRIMARY KEY,
	selector   TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
	id                TEXT PRIMARY KEY,
	state             TEXT NOT NULL CHECK (state IN ('pending', 'active')),
	labels            TEXT NOT NULL DEFAULT '{}',
	enrolled_at       INTEGER NOT NULL,
	cert_serial       TEXT NOT NULL DEFAULT '',
	-- Reported by the device.
	online            INTEGER NOT NULL DEFAULT 0,
	presence_at       INTEGER NOT NULL DEFAULT 0,
	last_seen         INTEGER NOT NULL DEFAULT 0,
	status_seq        INTEGER NOT NULL DEFAULT 0,
	applied_revision  INTEGER NOT NULL DEFAULT 0,
	policy_expires_at INTEGER NOT NULL DEFAULT 0,
	last_rejected     TEXT NOT NULL DEFAULT '',
	apps              TEXT NOT NULL DEFAULT '',
	agent_version     TEXT NOT NULL DEFAULT ''
, offline_at INTEGER NOT NULL DEFAULT 0, requested_labels TEXT NOT NULL DEFAULT '{}', status_epoch INTEGER NOT NULL DEFAULT 0) STRICT;

CREATE TABLE dirty_devices (
	device_id TEXT PRIMARY KEY,
	seq       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE ended_sessions (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE enroll_tokens (
	id         TEXT PRIMARY KEY,
	hash       TEXT NOT NULL UNIQUE,
	groups     TEXT NOT NULL DEFAULT '[]',
	labels     TEXT NOT NULL DEFAULT '{}',
	max_uses   INTEGER NOT NULL CHECK (max_uses > 0),
	used       INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= max_uses),
	expires_at INTEGER NOT NULL,
	approval   INTEGER NOT NULL DEFAULT 0,
	revoked    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL DEFAULT ''
, label_keys TEXT NOT NULL DEFAULT '[]') STRICT;

CREATE TABLE events (
	seq         INTEGER PRIMARY KEY,
	device_id   TEXT NOT NULL,
	event_id    TEXT NOT NULL,
	at          INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	severity    TEXT NOT NULL,
	message     TEXT NOT NULL,
	details     TEXT NOT NULL DEFAULT '',
	UNIQUE (device_id, event_id)
) STRICT;

CREATE TABLE grants (
	id           TEXT PRIMARY KEY,
	subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'team')),
	subject_name TEXT NOT NULL,
	role         TEXT NOT NULL,
	scope_kind   TEXT NOT NULL CHECK (scope_kind IN ('global', 'device-group', 'device', 'app')),
	scope_name   TEXT NOT NULL DEFAULT '',
	created_by   TEXT NOT NULL,
	created_at   INTEGER NOT NULL, subject_id TEXT NOT NULL DEFAULT '',
	UNIQUE (subject_kind, subject_name, role, scope_kind, scope_name)
) STRICT;

CREATE TABLE group_devices (
	group_name TEXT NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE,
	device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	PRIMARY KEY (group_name, device_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE group_includes (
	parent TEXT NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE,
	child  TEXT NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE,
	PRIMARY KEY (parent, child),
	CHECK (parent <> child)
) STRICT, WITHOUT ROWID;

CREATE TABLE invitations (
	user_name  TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
	token_hash TEXT NOT NULL UNIQUE,
	expires_at INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE operator_tokens (
	id         TEXT PRIMARY KEY,
	user_name  TEXT NOT NULL,
	issued_at  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL DEFAULT 0,
	revoked_by TEXT NOT NULL DEFAULT '', user_id TEXT NOT NULL DEFAULT '',
	CHECK (expires_at > issued_at)
) STRICT;

CREATE TABLE published (
	device_id TEXT PRIMARY KEY,
	revision  INTEGER NOT NULL,
	issued_at INTEGER NOT NULL,
	at        INTEGER NOT NULL
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

CREATE TABLE publishers (
	name       TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL DEFAULT '',
	removed_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE roles (
	name        TEXT PRIMARY KEY,
	description TEXT NOT NULL DEFAULT '',
	actions     TEXT NOT NULL,
	shareable   INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
) STRICT;

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

CREATE TABLE sideload_overrides (
	group_name TEXT PRIMARY KEY REFERENCES device_groups (name) ON DELETE CASCADE,
	policy     TEXT NOT NULL CHECK (policy IN ('allow', 'deny')),
	set_by     TEXT NOT NULL DEFAULT '',
	set_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE team_members (
	team      TEXT NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
	user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	PRIMARY KEY (team, user_name)
) STRICT, WITHOUT ROWID;

CREATE TABLE teams (
	name       TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE unpublished (
	device_id TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;

CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL DEFAULT '',
	state         TEXT NOT NULL CHECK (state IN ('active', 'invited', 'disabled')),
	created_at    INTEGER NOT NULL
, id TEXT NOT NULL DEFAULT '', session_gen INTEGER NOT NULL DEFAULT 0) STRICT;

CREATE INDEX app_artifacts_digest ON app_artifacts (digest);

CREATE INDEX app_assignments_group ON app_assignments (group_name);

CREATE INDEX audit_at ON audit (at);

CREATE INDEX desired_head ON desired (device_id, revision, digest, issued_at, expires_at, signers);

CREATE INDEX devices_state ON devices (id, state);

CREATE INDEX ended_sessions_expiry ON ended_sessions (expires_at);

CREATE INDEX events_at ON events (at);

CREATE INDEX grants_role ON grants (role);

CREATE INDEX grants_scope ON grants (scope_kind, scope_name);

CREATE INDEX grants_subject_id ON grants (subject_id) WHERE subject_id <> '';

CREATE INDEX group_devices_device ON group_devices (device_id);

CREATE INDEX group_includes_child ON group_includes (child);

CREATE INDEX operator_tokens_user ON operator_tokens (user_name);

CREATE INDEX operator_tokens_user_id ON operator_tokens (user_id);

CREATE INDEX team_members_user ON team_members (user_name);

CREATE UNIQUE INDEX users_id ON users (id) WHERE id <> '';

