package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgewarden/edgewarden/agent/backoff"
	"github.com/edgewarden/edgewarden/protocol"
)

// ProcessOptions configure the process driver. Zero values mean the
// defaults given.
type ProcessOptions struct {
	// LogDir holds NAME.log (and NAME.log.1, the previous one) with each
	// app's output, and NAME.pid with its process group while it runs.
	// Required.
	LogDir string
	// AppsRoot is where installed apps live. At start the driver kills
	// process groups left by a previous agent (NAME.pid files) only if a
	// member still runs from under AppsRoot, so a recycled process id is
	// never killed. Empty: stale groups are not killed.
	AppsRoot string
	// GracePeriod is how long Stop waits after SIGTERM before SIGKILL.
	// Zero means 10s.
	GracePeriod time.Duration
	// MinBackoff and MaxBackoff bound the delay before a restart after an
	// exit; it doubles per consecutive restart (agent/backoff), jittered. Zero
	// means 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// FastCrash: an exit within this time of starting counts as a fast
	// crash. Zero means 10s.
	FastCrash time.Duration
	// MaxFastCrashes consecutive fast crashes make the app failed (no more
	// restarts until the next Start). Zero means 5.
	MaxFastCrashes int
	// LogMaxBytes is the size at which an app's log is rotated (one previous
	// file is kept, so at most twice this is on disk). Zero means 1 MiB.
	LogMaxBytes int64
	// OnChange, if set, is called with the app's name whenever its state
	// changes. It must not block.
	OnChange func(name string)
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Process is the process driver: the agent runs and supervises each app's
// command itself. Create it with NewProcess; Close stops every app.
type Process struct {
	opts ProcessOptions
	log  *slog.Logger

	mu     sync.Mutex
	apps   map[string]*proc
	closed bool
}

var _ Driver = (*Process)(nil)

type proc struct {
	app      App
	dir      string // app.Dir resolved at Start
	logw     *rotatingLog
	stop     chan struct{} // closed by Stop
	done     chan struct{} // closed when the supervisor returns
	stopping bool          // guarded by Process.mu
	state    string        // guarded by Process.mu
	reason   string        // guarded by Process.mu
	pid      int           // guarded by Process.mu; also the process group id
	restarts int           // guarded by Process.mu
}

// NewProcess creates the driver and kills app process groups a previous
// agent process left behind (see ProcessOptions.AppsRoot).
func NewProcess(opts ProcessOptions) (*Process, error) {
	if opts.LogDir == "" {
		return nil, errors.New("process driver: LogDir is required")
	}
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = 10 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.FastCrash <= 0 {
		opts.FastCrash = 10 * time.Second
	}
	if opts.MaxFastCrashes <= 0 {
		opts.MaxFastCrashes = 5
	}
	if opts.LogMaxBytes <= 0 {
		opts.LogMaxBytes = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(opts.LogDir, 0o750); err != nil {
		return nil, fmt.Errorf("process driver: create log directory: %w", err)
	}
	d := &Process{opts: opts, log: opts.Logger, apps: make(map[string]*proc)}
	d.killStale()
	return d, nil
}

func (d *Process) changed(name string) {
	if d.opts.OnChange != nil {
		d.opts.OnChange(name)
	}
}

// Start implements Driver.
func (d *Process) Start(ctx context.Context, app App) error {
	dir, err := filepath.EvalSymlinks(app.Dir)
	if err != nil {
		return fmt.Errorf("start %s@%s: app directory: %w", app.Name, app.Version, err)
	}
	cmdPath := filepath.Join(dir, filepath.FromSlash(app.Exec.Command))
	if fi, err := os.Stat(cmdPath); err != nil {
		return fmt.Errorf("start %s@%s: command %s: %w", app.Name, app.Version, app.Exec.Command, err)
	} else if fi.Mode()&0o111 == 0 || fi.IsDir() {
		return fmt.Errorf("start %s@%s: command %s is not an executable file; set its artifact mode (e.g. 0755) in the manifest", app.Name, app.Version, app.Exec.Command)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errors.New("process driver is closed")
	}
	if p := d.apps[app.Name]; p != nil && !isDone(p.done) {
		d.mu.Unlock()
		if p.app.Version == app.Version && !p.stopping {
			return nil
		}
		return fmt.Errorf("start %s@%s: %w (version %s); stop it first", app.Name, app.Version, ErrRunning, p.app.Version)
	}
	p := &proc{
		app:   app,
		dir:   dir,
		logw:  &rotatingLog{path: filepath.Join(d.opts.LogDir, app.Name+".log"), max: d.opts.LogMaxBytes},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		state: protocol.AppRunning,
	}
	d.apps[app.Name] = p
	started := make(chan error, 1)
	go d.supervise(p, started)
	d.mu.Unlock()
	if err := <-started; err != nil {
		d.mu.Lock()
		if d.apps[app.Name] == p {
			delete(d.apps, app.Name)
		}
		d.mu.Unlock()
		return err
	}
	return nil
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// supervise runs p's command until Stop or until it gives up. It reports
// the outcome of the first spawn on started. The goroutine stays on one OS
// thread so the children's parent-death signal (SIGKILL when the agent
// dies) is tied to a thread that lives as long as they do.
func (d *Process) supervise(p *proc, started chan<- error) {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	defer close(p.done)
	name := p.app.Name
	fast := 0
	for first := true; ; first = false {
		d.mu.Lock()
		if p.stopping {
			d.mu.Unlock()
			if first {
				started <- nil
			}
			return
		}
		cmd, err := d.spawn(p)
		if err != nil {
			p.state, p.reason = protocol.AppFailed, err.Error()
			d.mu.Unlock()
			d.log.Warn("app failed to start", "app", name, "version", p.app.Version, "err", err)
			if first {
				started <- err
			} else {
				d.changed(name)
			}
			return
		}
		p.pid, p.state, p.reason = cmd.Process.Pid, protocol.AppRunning, ""
		d.mu.Unlock()
		if first {
			started <- nil
		} else {
			d.changed(name)
		}
		d.log.Info("app started", "app", name, "version", p.app.Version, "pid", cmd.Process.Pid)
		t0 := time.Now()
		werr := cmd.Wait()
		ran := time.Since(t0)
		// Leftovers of the group (children of the app) go with it.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		os.Remove(d.pidFile(name))

		d.mu.Lock()
		p.pid = 0
		if p.stopping {
			p.state, p.reason = protocol.AppStopped, "stopped"
			d.mu.Unlock()
			d.log.Info("app stopped", "app", name, "version", p.app.Version)
			d.changed(name)
			return
		}
		if ran < d.opts.FastCrash {
			fast++
		} else {
			fast = 0
		}
		exit := describeExit(werr)
		if fast >= d.opts.MaxFastCrashes {
			p.state = protocol.AppFailed
			p.reason = fmt.Sprintf("exited %d times within %s of starting (last: %s); not restarted until it is started again", fast, d.opts.FastCrash, exit)
			d.mu.Unlock()
			d.log.Warn("app keeps crashing; giving up", "app", name, "version", p.app.Version, "exits", fast, "last", exit)
			d.changed(name)
			return
		}
		delay := backoff.Delay(p.restarts, d.opts.MinBackoff, d.opts.MaxBackoff)
		p.state = protocol.AppStopped
		p.reason = fmt.Sprintf("exited (%s); restarting in %s", exit, delay.Round(time.Millisecond))
		p.restarts++
		d.mu.Unlock()
		d.log.Warn("app exited; restarting", "app", name, "version", p.app.Version, "exit", exit, "in", delay)
		d.changed(name)
		t := time.NewTimer(delay)
		select {
		case <-p.stop:
			t.Stop()
			d.mu.Lock()
			p.state, p.reason = protocol.AppStopped, "stopped"
			d.mu.Unlock()
			d.changed(name)
			return
		case <-t.C:
		}
	}
}

// spawn starts p's command in its own process group with its output going
// to the app's log. Called with d.mu held.
func (d *Process) spawn(p *proc) (*exec.Cmd, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", p.app.Name, err)
	}
	cmd := exec.Command(filepath.Join(p.dir, filepath.FromSlash(p.app.Exec.Command)), p.app.Exec.Args...)
	cmd.Dir = p.dir
	cmd.Env = appEnv(p.app)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("start %s@%s: %w", p.app.Name, p.app.Version, err)
	}
	if err := os.WriteFile(d.pidFile(p.app.Name), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o640); err != nil {
		d.log.Warn("write app pid file", "app", p.app.Name, "err", err)
	}
	// The copier ends when every process holding the pipe has exited.
	go func() {
		defer pr.Close()
		p.logw.copyFrom(pr)
	}()
	return cmd, nil
}

func appEnv(app App) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"EDGEWARDEN_APP=" + app.Name,
		"EDGEWARDEN_APP_VERSION=" + app.Version,
	}
	if app.DataDir != "" {
		env = append(env, "EDGEWARDEN_DATA_DIR="+app.DataDir, "HOME="+app.DataDir)
	}
	return env
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Stop implements Driver: SIGTERM to the app's process group, SIGKILL after
// the grace period (or when ctx is done), and wait for it to exit.
func (d *Process) Stop(ctx context.Context, name string) error {
	d.mu.Lock()
	p := d.apps[name]
	if p == nil || isDone(p.done) {
		d.mu.Unlock()
		return nil
	}
	if !p.stopping {
		p.stopping = true
		close(p.stop)
	}
	pid := p.pid
	d.mu.Unlock()
	if pid > 0 {
		syscall.Kill(-pid, syscall.SIGTERM)
	}
	t := time.NewTimer(d.opts.GracePeriod)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		d.log.Warn("app did not stop within the grace period; killing it", "app", name, "grace", d.opts.GracePeriod)
	case <-ctx.Done():
	}
	if pid > 0 {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	<-p.done
	return nil
}

// Remove implements Driver: it stops the app and deletes its logs.
func (d *Process) Remove(ctx context.Context, name string) error {
	if err := d.Stop(ctx, name); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.apps, name)
	d.mu.Unlock()
	base := filepath.Join(d.opts.LogDir, name+".log")
	for _, f := range []string{base, base + ".1", d.pidFile(name)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s logs: %w", name, err)
		}
	}
	return nil
}

// Status implements Driver.
func (d *Process) Status(_ context.Context, name string) Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.apps[name]
	if p == nil {
		return Status{}
	}
	return Status{Version: p.app.Version, State: p.state, Reason: p.reason, PID: p.pid, Restarts: p.restarts}
}

// Logs implements Driver.
func (d *Process) Logs(_ context.Context, name string, lines int) ([]string, error) {
	base := filepath.Join(d.opts.LogDir, name+".log")
	var all []byte
	found := false
	for _, f := range []string{base + ".1", base} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read logs of %s: %w", name, err)
		}
		found = true
		all = append(all, b...)
	}
	if !found {
		return nil, fmt.Errorf("logs of %s: %w", name, ErrNotFound)
	}
	out := strings.Split(strings.TrimSuffix(string(all), "\n"), "\n")
	if len(all) == 0 {
		out = nil
	}
	if lines > 0 && len(out) > lines {
		out = out[len(out)-lines:]
	}
	return out, nil
}

// Close stops every app (in parallel, each with the grace period). It is
// safe to call more than once.
func (d *Process) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	names := make([]string, 0, len(d.apps))
	for n := range d.apps {
		names = append(names, n)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { d.Stop(context.Background(), n) })
	}
	wg.Wait()
	return nil
}

func (d *Process) pidFile(name string) string {
	return filepath.Join(d.opts.LogDir, name+".pid")
}

// killStale kills the process groups recorded in pid files by an agent
// that died without stopping its apps, if they still run from AppsRoot.
func (d *Process) killStale() {
	files, _ := filepath.Glob(filepath.Join(d.opts.LogDir, "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		os.Remove(f)
		if err != nil || d.opts.AppsRoot == "" {
			continue
		}
		pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pgid <= 1 {
			continue
		}
		if groupRunsFrom(pgid, d.opts.AppsRoot) {
			d.log.Warn("killing app processes left by a previous agent", "app", strings.TrimSuffix(filepath.Base(f), ".pid"), "pgid", pgid)
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
}

// groupRunsFrom reports whether a process of group pgid has its working
// directory under root.
func groupRunsFrom(pgid int, root string) bool {
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces or ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
		if err == nil && (cwd == root || strings.HasPrefix(cwd, root+string(filepath.Separator))) {
			return true
		}
	}
	return false
}

// rotatingLog appends to path and, past max bytes, moves it to path.1
// (replacing the previous one).
type rotatingLog struct {
	path string
	max  int64

	mu   sync.Mutex
	f    *os.File
	size int64
}

func (l *rotatingLog) copyFrom(r *os.File) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			l.write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	l.mu.Lock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	l.mu.Unlock()
}

func (l *rotatingLog) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return
		}
		fi, _ := f.Stat()
		l.f, l.size = f, fi.Size()
	}
	for len(b) > 0 {
		room := l.max - l.size
		if room <= 0 {
			l.f.Close()
			os.Rename(l.path, l.path+".1")
			f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
			if err != nil {
				l.f = nil
				return
			}
			l.f, l.size = f, 0
			room = l.max
		}
		chunk := b
		if int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, err := l.f.Write(chunk)
		l.size += int64(n)
		if err != nil {
			return
		}
		b = b[len(chunk):]
	}
}
