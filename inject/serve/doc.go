// Package serve holds the pieces that let a rotation replace a server
// without dropping a connection: a TCP proxy that sends new connections to
// the newest child while old ones stay on the old child, readiness checks
// that tell when a new child is up (HTTP, TCP, sd_notify, a delay), and
// systemd-style socket handoff (LISTEN_FDS), with the small re-exec shim
// that sets LISTEN_PID to the child's own PID.
//
// The package knows nothing of secrets or rollouts: the supervisor decides
// when to start a child, which backend is current and when an old child
// has drained.
package serve
