// Command loadgen measures a real Edgewarden controller against the
// fleet-level performance targets of DESIGN.md ("Performance targets"): MQTT
// fan-out of a change to every device, controller memory with one TLS
// connection per device, and a reconnect storm. It is a tool, not a test: it
// asserts nothing and prints figures.
//
// Usage, from the module root:
//
//	go run ./test/loadgen -devices 10000
//	go run ./test/loadgen -devices 10000 -broker mosquitto -o json
//	go run ./test/loadgen -devices 1000 -bin /tmp/ewbin   # reuse a built edgewarden-controller
//
// What it does, all on 127.0.0.1, in a temporary directory it removes at the
// end (also on Ctrl-C):
//
//  1. Builds cmd/edgewarden-controller (unless -bin names a directory that
//     holds it) and runs `edgewarden-controller init`. Before the
//     controller serves, it enrolls the devices load-00000, load-00001, ...
//     directly in the store (one enrollment token with MaxUses = N, then
//     store.Enroll per device) and issues each device a client certificate
//     with the controller's own CA through pki.Authority.SignDeviceCSR, from
//     an ECDSA P-256 key and CSR made here, as the agent does.
//  2. Starts `edgewarden-controller serve` as a child process (a separate
//     process: the broker and 10k clients do not fit one process's file
//     limit). With -broker mosquitto it first starts Debian's mosquitto with
//     packaging/mosquitto/mosquitto.conf (port, paths and user rewritten as
//     test/external_broker_test.go does) and runs the controller with
//     --broker-url.
//  3. Connects N paho.mqtt.golang clients over mutual TLS the way the agent's
//     link does: client id = device id, clean session off (-clean-session
//     turns it on), QoS 1, last will = offline presence, then SUBSCRIBE to
//     its own desired topic and an online presence. At most -concurrency
//     handshakes run at once. Each client verifies every document it
//     receives with protocol.CheckDesired against the controller's signing
//     key (-verify=false only reads the revision), and after every new
//     revision publishes a retained QoS 1 protocol.StatusReport with
//     AppliedRevision = that revision and a growing Seq, as the agent does.
//     Measured: time until all are connected, until every client holds its
//     document, until the controller's GET /api/v1/status counts all N
//     in sync; then the controller's VmRSS and VmHWM after -settle.
//  4. Logs in as the admin through controller/client and sets the banner,
//     which changes every device's document. Measured from the API call's
//     return: until every client holds the new revision, until every
//     client's status report was acknowledged (PUBACK; with the embedded
//     broker that means stored in SQLite), and until GET /api/v1/status
//     reports all N in sync (polled every -poll, so up to that much late).
//  5. Reconnect storm: closes every client's TCP connection at once (RST, no
//     MQTT DISCONNECT: the broker fires the last wills) and reconnects them
//     all together (-storm-concurrency bounds it; 0 means all at once). A
//     failed attempt is retried after 1-2 s of jitter, as agents back off.
//     Measured: time until all are reconnected and until every client has
//     its document again, failed attempts, whether the controller still
//     answers, and its memory.
//  6. Prints a table (or -o json) with every figure, the load average
//     before and after, and the controller's CPU time per phase.
//
// Finding out why: the controller runs with GODEBUG=gctrace=1 and the table
// shows its live Go heap next to VmRSS (-gctrace=false turns it off);
// -controller-env KEY=VALUE adds to its environment (e.g. GOMEMLIMIT);
// -profile DIR runs test/loadgen/profserve instead, the same server.Run
// with pprof on a loopback port, and writes DIR/cpu-PHASE.pprof and
// DIR/heap-PHASE.pprof for each phase (go tool pprof -top DIR/cpu-change.pprof).
//
// Clients pin the server certificate by its exact bytes instead of
// verifying its chain on every handshake (-pin=false verifies the chain):
// the load generator shares the machine's cores with the controller, and
// this keeps its own handshake cost down without trusting anything else.
//
// Everything is bounded: each phase by -phase-timeout, the whole run by
// -timeout. Each client is a paho client with its own goroutines; 10k
// clients use about 1-2 GB in this process.
package main
