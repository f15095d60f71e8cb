#!/bin/sh
# Runs before the files are unpacked (deb preinst, rpm %pre), in both the
# agent and the controller package: create the static system user and group
# "edgewarden" that the services run as. Idempotent.
set -e

if ! getent group edgewarden >/dev/null 2>&1; then
	if command -v groupadd >/dev/null 2>&1; then
		groupadd --system edgewarden
	else
		addgroup --system edgewarden
	fi
fi

if ! getent passwd edgewarden >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	if command -v useradd >/dev/null 2>&1; then
		useradd --system --gid edgewarden --home-dir /nonexistent --no-create-home \
			--shell "$nologin" --comment "Edgewarden services" edgewarden
	else
		adduser --system --ingroup edgewarden --home /nonexistent --no-create-home \
			--shell "$nologin" --gecos "Edgewarden services" edgewarden
	fi
fi
exit 0
