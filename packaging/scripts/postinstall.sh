#!/bin/sh
# Runs after the files are unpacked (deb postinst, rpm %post). SERVICE and
# STATE are substituted per package by packaging/build-packages.sh.
#   deb: $1 = configure, $2 = previously configured version (empty on install)
#   rpm: $1 = 1 on install, 2 on upgrade
set -e
SERVICE=@SERVICE@
STATE=@STATE@

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

# The state directory is shipped empty; make sure it belongs to the service
# user even if it existed before the package (StateDirectory= would fix the
# owner on start too, but the first-time command is run as this user).
chown edgewarden:edgewarden "$STATE"
chmod 0700 "$STATE"

upgrade=
if [ "$1" = 2 ] || { [ "$1" = configure ] && [ -n "$2" ]; }; then
	upgrade=1
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ -n "$upgrade" ]; then
		# Restart only if it was running: an upgrade never starts a service
		# the operator stopped.
		systemctl try-restart "$SERVICE.service" || true
	fi
fi

if [ -z "$upgrade" ]; then
	case "$SERVICE" in
	edgewarden-agent)
		cat <<MSG
edgewarden-agent installed. Enrol this device, then start the service:
  sudo -u edgewarden edgewarden-agent enroll --state $STATE \\
      --controller https://CONTROLLER:8443 --token TOKEN --ca-fingerprint sha256:HEX
  sudo systemctl enable --now $SERVICE
Configuration: /etc/edgewarden/agent.yaml
MSG
		;;
	edgewarden-controller)
		cat <<MSG
edgewarden-controller installed. Initialise it once (prints the admin password
once), then start the service:
  sudo -u edgewarden edgewarden-controller init --data $STATE --host \$(hostname -f)
  sudo systemctl enable --now $SERVICE
Configuration: /etc/edgewarden/controller.yaml
MSG
		;;
	esac
fi
exit 0
