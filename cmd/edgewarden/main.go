// Command edgewarden is the admin and operator CLI of Edgewarden. It talks
// to the controller's REST API (controller/client); `login` keeps a session
// in $EDGEWARDEN_CONFIG (default ~/.config/edgewarden/config.json).
//
// Exit status: 0 success, 1 failure (one line on stderr saying what failed,
// why and what to do), 2 bad usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time (-X main.version=...; see the Makefile).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}
