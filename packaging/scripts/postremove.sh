#!/bin/sh
# Runs after the files are removed (deb postrm, rpm %postun). The state
# directory (database, keys, enrolled identity) and the edgewarden user are
# kept, even on purge: losing the controller's CA and signing key orphans
# every enrolled device. Remove them by hand if that is really intended.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
