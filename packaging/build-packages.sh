#!/usr/bin/env bash
# build-packages.sh VERSION [ARCHES] — cross-compile the three binaries and
# build .deb and .rpm packages for each architecture into dist/.
#
#   VERSION  package version, e.g. 0.3.0 or 0.3.0-rc.1 (a leading "v" is dropped)
#   ARCHES   space- or comma-separated list of amd64, arm64, arm7
#            (arm7 = GOARCH=arm GOARM=7: deb armhf, rpm armv7hl);
#            default "amd64 arm64 arm7"
#
# Output: dist/linux_ARCH/{edgewarden-controller,edgewarden-agent,edgewarden}
# and dist/packages/*.deb, *.rpm, plus dist/packages/SIZES (binary sizes).
# Run from anywhere; works on the repository root. Needs Go; installs nfpm
# v2.45.2 with `go install` when it is missing (DESIGN.md: the only nfpm
# version that installs here). Without nfpm, falls back to dpkg-deb for the
# .deb packages only (no .rpm).
#
# Environment: GO (default go); NFPM, the nfpm binary to use, or "none" to
# force the dpkg-deb fallback.
set -euo pipefail

NFPM_VERSION=v2.45.2

usage() {
	echo "usage: $0 VERSION [ARCHES]   (ARCHES: amd64 arm64 arm7, default all three)" >&2
	exit 2
}
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	usage
fi
VERSION=${1#v}
ARCHES=${2:-amd64 arm64 arm7}
ARCHES=${ARCHES//,/ }
if ! [[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]]; then
	echo "$0: version \"$1\" is not semantic (want e.g. 1.2.3 or 1.2.3-rc.1)" >&2
	exit 2
fi

for arch in $ARCHES; do
	case $arch in
	amd64 | arm64 | arm7) ;;
	*)
		echo "$0: unknown architecture \"$arch\" (want amd64, arm64 or arm7)" >&2
		exit 2
		;;
	esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-go}
OUT=dist/packages
mkdir -p "$OUT"

# --- nfpm: installed, or installed now, or absent (dpkg-deb fallback).
find_nfpm() {
	if command -v nfpm >/dev/null 2>&1; then
		command -v nfpm
		return
	fi
	local gobin
	gobin=$("$GO" env GOBIN)
	[ -n "$gobin" ] || gobin="$("$GO" env GOPATH | cut -d: -f1)/bin"
	if [ -x "$gobin/nfpm" ]; then
		echo "$gobin/nfpm"
		return
	fi
	echo "nfpm not found; installing github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" >&2
	if "$GO" install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" >&2 && [ -x "$gobin/nfpm" ]; then
		echo "$gobin/nfpm"
	fi
}
if [ "${NFPM:-}" = none ]; then
	NFPM= # forced fallback, to test it
elif [ -z "${NFPM:-}" ]; then
	NFPM=$(find_nfpm || true)
fi
if [ -z "$NFPM" ]; then
	if ! command -v dpkg-deb >/dev/null 2>&1; then
		echo "$0: neither nfpm (go install failed) nor dpkg-deb is available; install one of them" >&2
		exit 1
	fi
	echo "nfpm unavailable: building .deb packages with dpkg-deb, no .rpm" >&2
fi

# --- per-package install scripts (nfpm does not expand variables in script paths).
for pkg in agent controller; do
	d=dist/scripts/edgewarden-$pkg
	mkdir -p "$d"
	for s in postinstall preremove; do
		sed -e "s|@SERVICE@|edgewarden-$pkg|g" -e "s|@STATE@|/var/lib/edgewarden-$pkg|g" \
			"packaging/scripts/$s.sh" >"$d/$s.sh"
		chmod 0755 "$d/$s.sh"
	done
done

# deb_arch maps our architecture names to Debian's.
deb_arch() {
	case $1 in
	amd64) echo amd64 ;; arm64) echo arm64 ;; arm7) echo armhf ;;
	esac
}

# build_deb_fallback PKG ARCH DIST: a .deb without nfpm, same layout and scripts.
build_deb_fallback() {
	local pkg=$1 arch=$2 dist=$3 root
	root=$(mktemp -d)
	chmod 0755 "$root" # mktemp makes it 0700; it becomes the package's "./"
	trap 'rm -rf "$root"' RETURN
	mkdir -p "$root/DEBIAN" "$root/usr/bin"
	local desc="Edgewarden command-line client"
	case $pkg in
	edgewarden-cli)
		install -m 0755 "$dist/edgewarden" "$root/usr/bin/edgewarden"
		;;
	edgewarden-agent | edgewarden-controller)
		local short=${pkg#edgewarden-}
		desc="Edgewarden $short"
		install -m 0755 "$dist/$pkg" "$root/usr/bin/$pkg"
		install -D -m 0644 "packaging/systemd/$pkg.service" "$root/usr/lib/systemd/system/$pkg.service"
		install -D -m 0644 "packaging/config/$short.yaml" "$root/etc/edgewarden/$short.yaml"
		install -d -m 0700 "$root/var/lib/$pkg"
		echo "/etc/edgewarden/$short.yaml" >"$root/DEBIAN/conffiles"
		install -m 0755 packaging/scripts/preinstall.sh "$root/DEBIAN/preinst"
		install -m 0755 "dist/scripts/$pkg/postinstall.sh" "$root/DEBIAN/postinst"
		install -m 0755 "dist/scripts/$pkg/preremove.sh" "$root/DEBIAN/prerm"
		install -m 0755 packaging/scripts/postremove.sh "$root/DEBIAN/postrm"
		if [ "$pkg" = edgewarden-controller ]; then
			install -d "$root/usr/share/doc/$pkg/mosquitto"
			install -m 0644 packaging/mosquitto/* "$root/usr/share/doc/$pkg/mosquitto/"
		fi
		;;
	esac
	cat >"$root/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $VERSION
Architecture: $(deb_arch "$arch")
Maintainer: Edgewarden maintainers <edgewarden@example.com>
Section: admin
Priority: optional
Installed-Size: $(du -ks "$root" | cut -f1)
Description: $desc
CONTROL
	fakeroot dpkg-deb --root-owner-group -Zxz --build "$root" "$OUT/${pkg}_${VERSION}_$(deb_arch "$arch").deb" >/dev/null
}

: >"$OUT/SIZES"
for arch in $ARCHES; do
	case $arch in
	amd64 | arm64) goarch=$arch goarm= ;;
	arm7) goarch=arm goarm=7 ;;
	esac
	dist=dist/linux_$arch
	echo "build $dist (GOARCH=$goarch${goarm:+ GOARM=$goarm})"
	ldflags="-s -w -X main.version=$VERSION -X github.com/edgewarden/edgewarden/agent.Version=$VERSION"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
		"$GO" build -trimpath -ldflags "$ldflags" -o "$dist/" ./cmd/edgewarden ./cmd/edgewarden-controller
	# The agent without net/http's HTTP/2 (Makefile, AGENT_TAGS).
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
		"$GO" build -trimpath -tags nethttpomithttp2 -ldflags "$ldflags" -o "$dist/" ./cmd/edgewarden-agent
	for b in edgewarden-agent edgewarden-controller edgewarden; do
		printf '%s\t%s\t%s\n' "$arch" "$b" "$(stat -c %s "$dist/$b")" >>"$OUT/SIZES"
	done

	for pkg in edgewarden-agent edgewarden-controller edgewarden-cli; do
		if [ -n "$NFPM" ]; then
			for fmt in deb rpm; do
				VERSION=$VERSION ARCH=$arch DIST=$dist \
					"$NFPM" package --config "packaging/nfpm/$pkg.yaml" --packager "$fmt" --target "$OUT/" >/dev/null
			done
		else
			build_deb_fallback "$pkg" "$arch" "$dist"
		fi
	done
done

echo "packages in $OUT:"
ls -l "$OUT"
echo "binary sizes (bytes):"
column -t "$OUT/SIZES" 2>/dev/null || cat "$OUT/SIZES"
