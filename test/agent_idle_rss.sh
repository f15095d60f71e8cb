#!/bin/bash
# Idle RSS of an enrolled, connected agent with one applied document.
# Usage: test/agent_idle_rss.sh BINDIR [AGENTBIN]   (IDLE=seconds to wait, default 60;
# uses 127.0.0.1:18443 and :18883). BINDIR holds edgewarden, edgewarden-controller
# and edgewarden-agent; AGENTBIN (default BINDIR/edgewarden-agent) is the agent measured.
set -e
B=$1; AG=${2:-$B/edgewarden-agent}
D=$(mktemp -d); trap 'kill $CP $AP 2>/dev/null; rm -rf $D' EXIT
echo 'correct horse battery staple' > $D/pw
$B/edgewarden-controller init --data $D/ctl --admin-password-file $D/pw >/dev/null
FP=$($B/edgewarden-controller ca-fingerprint --data $D/ctl)
$B/edgewarden-controller serve --data $D/ctl --http 127.0.0.1:18443 --mqtt 127.0.0.1:18883 > $D/ctl.log 2>&1 & CP=$!
for i in $(seq 100); do grep -q msg=ready $D/ctl.log && break; sleep 0.2; done
export EDGEWARDEN_CONFIG=$D/cli.json
echo 'correct horse battery staple' | $B/edgewarden login --controller https://127.0.0.1:18443 --ca $D/ctl/ca.pem --user admin --password-stdin >/dev/null
$B/edgewarden groups create line-1 >/dev/null
TOK=$($B/edgewarden enroll-tokens create --groups line-1 -o json | jq -r .token)
$AG enroll --controller https://127.0.0.1:18443 --token $TOK --ca-fingerprint $FP --state $D/agent --device-id press-01 >/dev/null
echo "socket: $D/agent.sock" > $D/agent.yaml
$AG run --state $D/agent --config $D/agent.yaml > $D/agent.log 2>&1 & AP=$!
for i in $(seq 150); do [ "$($B/edgewarden devices show press-01 -o json | jq .applied_revision)" -gt 0 ] 2>/dev/null && break; sleep 0.2; done
echo "applied_revision: $($B/edgewarden devices show press-01 -o json | jq .applied_revision)"
sleep ${IDLE:-60}
grep VmRSS /proc/$AP/status
