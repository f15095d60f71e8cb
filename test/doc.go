// Package test holds Edgewarden's end-to-end tests: they build the real
// binaries (edgewarden-controller, edgewarden-agent, edgewarden) and run a
// controller and several agents as processes on this machine, talking real
// HTTPS and MQTT over mutual TLS, with real SQLite files.
package test
