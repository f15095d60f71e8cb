// Command profserve is `edgewarden-controller serve` with Go's profiler
// attached, for loadgen -profile: it runs the same server.Run with the same
// options and also serves, on a separate loopback address (-pprof), the
// standard net/http/pprof handlers plus
//
//	POST /loadgen/cpu/start?file=PATH   start a CPU profile into PATH
//	POST /loadgen/cpu/stop              stop it
//
// so that loadgen can profile exactly one phase. It is a measuring aid and
// is never shipped; the production binary has no profiler endpoint.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/edgewarden/edgewarden/controller/server"
)

func main() {
	var (
		opts      server.Options
		pprofAddr string
	)
	flag.StringVar(&opts.DataDir, "data", "", "data directory made by init")
	flag.StringVar(&opts.HTTPAddr, "http", server.DefaultHTTPAddr, "REST API address")
	flag.StringVar(&opts.MQTTAddr, "mqtt", server.DefaultMQTTAddr, "embedded broker address")
	flag.StringVar(&opts.BrokerURL, "broker-url", "", "external broker URL")
	flag.StringVar(&pprofAddr, "pprof", "127.0.0.1:0", "profiler address (loopback only)")
	flag.Parse()
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(opts, pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "profserve:", err)
		os.Exit(1)
	}
}

func run(opts server.Options, pprofAddr string) error {
	host, _, err := net.SplitHostPort(pprofAddr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-pprof %q: give a loopback host:port", pprofAddr)
	}
	ln, err := net.Listen("tcp", pprofAddr)
	if err != nil {
		return err
	}
	var (
		mu  sync.Mutex
		out *os.File
	)
	http.HandleFunc("POST /loadgen/cpu/start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if out != nil {
			http.Error(w, "a CPU profile is already running", http.StatusConflict)
			return
		}
		f, err := os.Create(r.URL.Query().Get("file"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		out = f
	})
	http.HandleFunc("POST /loadgen/cpu/stop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if out == nil {
			http.Error(w, "no CPU profile is running", http.StatusConflict)
			return
		}
		pprof.StopCPUProfile()
		err := out.Close()
		out = nil
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := &http.Server{}
	go srv.Serve(ln)
	defer srv.Close()
	opts.Logger.Info("profiler listening", "pprof", ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = server.Run(ctx, opts)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
