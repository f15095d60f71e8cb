#!/usr/bin/env bash
# test-deb-install.sh [DEB...] — install the .deb packages into a clean
# Debian root and check files, user, permissions, conffiles and units; then
# upgrade, remove and purge. Slow the first time (debootstrap downloads a
# minimal Debian); later runs reuse a cached root.
#
#   DEB...   packages to test; default dist/packages/edgewarden-*_0*_amd64.deb
#            (build them first: packaging/build-packages.sh VERSION amd64)
#
# Environment:
#   SUITE    Debian release (default bookworm)
#   MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   CACHE    where the pristine root is kept (default ~/.cache/edgewarden)
#
# Needs root (chroot) and debootstrap (apt-get install -y debootstrap). systemd
# is not running inside the chroot, so this also checks that the maintainer
# scripts behave without it. Exit status 0 only if every check passed; 77 when
# the clean root cannot be made here (no debootstrap, mirror unreachable), so
# CI can tell "could not run" from "failed".
set -euo pipefail

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
CACHE=${CACHE:-$HOME/.cache/edgewarden}
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
	echo "test-deb-install: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root (it uses chroot)"
command -v debootstrap >/dev/null || {
	echo "test-deb-install: debootstrap is not installed: apt-get install -y debootstrap" >&2
	exit 77
}

if [ $# -eq 0 ]; then
	shopt -s nullglob
	set -- "$ROOT_DIR"/dist/packages/edgewarden-*_amd64.deb
	shopt -u nullglob
	[ $# -gt 0 ] || die "no packages in dist/packages; run packaging/build-packages.sh VERSION amd64 first"
fi
for deb in "$@"; do
	[ -f "$deb" ] || die "$deb: no such file"
done

t0=$(date +%s.%N)
phase() { awk -v a="$t0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN { printf "[%6.1fs] %s\n", b - a, m }'; }

# --- a clean root: debootstrap once into the cache, copy it for each run.
pristine=$CACHE/$SUITE-minbase
if [ ! -x "$pristine/usr/bin/dpkg" ]; then
	phase "debootstrap $SUITE (minbase) from $MIRROR into $pristine"
	rm -rf "$pristine.tmp"
	mkdir -p "$CACHE"
	if ! debootstrap --variant=minbase "$SUITE" "$pristine.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
		tail -n 20 "$CACHE/debootstrap.log" >&2
		echo "test-deb-install: debootstrap of $SUITE from $MIRROR failed (see above); cannot make a clean root here" >&2
		exit 77
	fi
	mv "$pristine.tmp" "$pristine"
fi
root=$(mktemp -d /tmp/edgewarden-debroot.XXXXXX)
cleanup() { rm -rf "$root"; }
trap cleanup EXIT
phase "copy the clean root to $root"
cp -a "$pristine/." "$root/"

fail=0
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then
		echo "  ok   $what"
	else
		echo "  FAIL $what"
		fail=1
	fi
}
in_root() { chroot "$root" "$@"; }

# --- install
mkdir -p "$root/tmp/debs"
cp "$@" "$root/tmp/debs/"
phase "dpkg -i $(cd "$root/tmp/debs" && echo *)"
in_root sh -c 'dpkg -i /tmp/debs/*.deb' >"$root/tmp/install.log" 2>&1 || {
	cat "$root/tmp/install.log"
	die "dpkg -i failed"
}
sed 's/^/    | /' "$root/tmp/install.log"

phase "check the installed system"
# shellcheck disable=SC2016 # dpkg-query formats, not shell expansions
installed() { in_root dpkg-query -W -f='${Status}' "$1" | grep -q 'install ok installed'; }
user_ok() { # system user, own group, no login shell, no home
	local line uid shell
	line=$(in_root getent passwd edgewarden) || return 1
	uid=$(echo "$line" | cut -d: -f3)
	shell=$(echo "$line" | cut -d: -f7)
	[ "$uid" -lt 1000 ] && [ "${shell##*/}" = nologin ] && in_root getent group edgewarden >/dev/null
}
stat_is() { [ "$(in_root stat -c "$2" "$1")" = "$3" ]; }
# shellcheck disable=SC2016
conffile() { in_root dpkg-query -W -f='${Conffiles}\n' "$1" | grep -q " $2 "; }
for pkg in edgewarden-agent edgewarden-controller edgewarden-cli; do
	ls "$root/tmp/debs/${pkg}_"*.deb >/dev/null 2>&1 || continue
	check "$pkg installed" installed "$pkg"
done
check "user edgewarden: system user, nologin, own group" user_ok
if installed edgewarden-agent; then
	check "/usr/bin/edgewarden-agent runs in the root" in_root /usr/bin/edgewarden-agent --help
	check "agent unit in /usr/lib/systemd/system" test -f "$root/usr/lib/systemd/system/edgewarden-agent.service"
	check "/etc/edgewarden/agent.yaml is a conffile" conffile edgewarden-agent /etc/edgewarden/agent.yaml
	check "/var/lib/edgewarden-agent is edgewarden:edgewarden 700" stat_is /var/lib/edgewarden-agent %U:%G:%a edgewarden:edgewarden:700
	check "agent.yaml accepted by the agent" sh -c "chroot '$root' /usr/bin/edgewarden-agent status --state /tmp --config /etc/edgewarden/agent.yaml 2>&1 | grep -q 'not enrolled'"
fi
if installed edgewarden-controller; then
	check "/usr/bin/edgewarden-controller runs in the root" in_root /usr/bin/edgewarden-controller --help
	check "controller unit in /usr/lib/systemd/system" test -f "$root/usr/lib/systemd/system/edgewarden-controller.service"
	check "/etc/edgewarden/controller.yaml is a conffile" conffile edgewarden-controller /etc/edgewarden/controller.yaml
	check "/var/lib/edgewarden-controller is edgewarden:edgewarden 700" stat_is /var/lib/edgewarden-controller %U:%G:%a edgewarden:edgewarden:700
	check "mosquitto example shipped" test -f "$root/usr/share/doc/edgewarden-controller/mosquitto/mosquitto.conf"
	check "controller init as the service user" in_root setpriv --reuid=edgewarden --regid=edgewarden --clear-groups \
		/usr/bin/edgewarden-controller init --data /var/lib/edgewarden-controller
	check "init wrote controller.db (the unit's start condition)" test -f "$root/var/lib/edgewarden-controller/controller.db"
fi
if installed edgewarden-cli; then
	check "/usr/bin/edgewarden runs in the root" in_root /usr/bin/edgewarden --help
fi
if command -v systemd-analyze >/dev/null; then
	for unit in edgewarden-agent edgewarden-controller; do
		[ -f "$root/usr/lib/systemd/system/$unit.service" ] || continue
		score=$(systemd-analyze security --offline=true --root="$root" --no-pager "$unit.service" 2>&1 |
			sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
		check "$unit.service exposure ${score:-?} <= 2.5" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.5) }'
	done
fi

# --- upgrade (same version again): the edited config is kept.
if installed edgewarden-agent; then
	phase "reinstall over an edited /etc/edgewarden/agent.yaml"
	sed -i 's/^log_level: info/log_level: debug/' "$root/etc/edgewarden/agent.yaml"
	in_root sh -c 'dpkg -i --force-confold /tmp/debs/*.deb' >"$root/tmp/upgrade.log" 2>&1 || {
		cat "$root/tmp/upgrade.log"
		die "reinstall failed"
	}
	check "edited agent.yaml kept on upgrade" grep -q '^log_level: debug' "$root/etc/edgewarden/agent.yaml"

	phase "remove and purge edgewarden-agent"
	touch "$root/var/lib/edgewarden-agent/identity.json"
	in_root dpkg -r edgewarden-agent >/dev/null 2>&1 || die "dpkg -r edgewarden-agent failed"
	check "binary removed" test ! -e "$root/usr/bin/edgewarden-agent"
	check "config kept after remove" test -f "$root/etc/edgewarden/agent.yaml"
	check "enrolled state kept after remove" test -f "$root/var/lib/edgewarden-agent/identity.json"
	in_root dpkg -P edgewarden-agent >/dev/null 2>&1 || die "dpkg -P edgewarden-agent failed"
	check "config removed on purge" test ! -e "$root/etc/edgewarden/agent.yaml"
	check "user kept (other packages and files still use it)" in_root getent passwd edgewarden
fi

phase "done"
[ "$fail" = 0 ] || die "some checks failed"
echo "all checks passed"
