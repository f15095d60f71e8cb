#!/bin/sh
# Runs before the files are removed (deb prerm, rpm %preun). SERVICE is
# substituted per package by packaging/build-packages.sh.
#   deb: $1 = remove | upgrade | deconfigure | failed-upgrade
#   rpm: $1 = 0 on erase, 1 on upgrade
# Stop and disable the service on removal only; an upgrade restarts it in
# postinstall instead.
set -e
SERVICE=@SERVICE@

case "$1" in
remove | deconfigure | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl stop "$SERVICE.service" || true
fi
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable "$SERVICE.service" >/dev/null 2>&1 || true
fi
exit 0
