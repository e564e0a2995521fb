package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore"
	"github.com/vde-go/vde/switchcore/metrics"
	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
)

func init() {
	register(Applet{Name: "switch", Aliases: vdeNames("switch"), Main: SwitchMain, Processors: SwitchProcessors})
}

// SwitchProcessors gives the switch half the processors (at least one). Its work per
// frame is nearly all the kernel's, done on the threads that make the system calls, so
// more processors add little but idle ones cost: the runtime wakes a spare thread to
// look for work each time a port's reader wakes, and under group scheduling (a daemon
// in its own session's autogroup, a systemd service in its own cgroup) those threads
// share the switch's CPU weight with the one forwarding. On 2 CPUs, a daemonised
// switch between slirpvde and a TAP moved 1.1-1.3 Gbit/s with 2 processors and 1.7 with
// one (Debian's: 1.7; iperf3 -R, 2 runs each), with half the context switches. In make
// bench its CPU per forwarded frame fell from 0.72 to 0.60 of Debian's, and 4→4
// forwarding lost 10%. GOMAXPROCS=N in the environment overrides this.
func SwitchProcessors(def int) int { return max(1, def/2) }

// switchCore is what the applet uses of a running switch; tests substitute a fake.
type switchCore interface {
	RunRC(path string) error
	Console(in io.Reader, out io.Writer, prompt io.Writer) error
	Done() <-chan struct{}
	Close() error
	AttachEndpoint(e wire.Endpoint, id int, module, descr string) (port int, err error)
}

// tapPort is what the switch needs of an open TAP device.
type tapPort interface {
	wire.Endpoint
	FD() int
}

// openTap opens a -t interface; tests substitute a fake.
var openTap = func(name string) (tapPort, error) {
	d, err := tap.Open(name)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return d, nil
}

// newSwitch starts a switch. It is a variable so tests can run the applet's process
// life (pid file, daemon, console, signals) against a fake core.
var newSwitch = func(cfg switchcore.Config) (switchCore, error) {
	sw, err := switchcore.New(cfg)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return sw, nil
}

// systemRCFile is run when -f is not given and ~/.vde2/vde_switch.rc is not readable.
var systemRCFile = "/etc/vde2/vde_switch.rc"

// SwitchMain is vde_switch: a VDE switch with the C tool's options (spec vde_switch.md).
func SwitchMain(ctx context.Context, args []string, stdio Stdio) error {
	ready := takeDaemonReadyFile()
	// A process started by an upgrade (switch_upgrade.go) restores the switch it was
	// handed, in the directory the switch was started in, and is already a daemon if -d.
	ho, hoErr := takeHandover()
	if ho != nil && ho.cwd != "" {
		os.Chdir(ho.cwd)
	}
	opts, err := parseSwitchArgs(args, osSwitchEnv())
	if err != nil {
		return parseFailure(err, stdio)
	}
	if ho != nil {
		opts.handover, opts.handoverErr, opts.args = ho, hoErr, args
		return runSwitch(ctx, opts, stdio, ready)
	}
	opts.args = args
	if opts.Daemon && ready == nil {
		return spawnSwitchDaemon(args, stdio)
	}
	return runSwitch(ctx, opts, stdio, ready)
}

func osSwitchEnv() switchEnv {
	cwd, _ := os.Getwd()
	return switchEnv{Euid: os.Geteuid(), Cwd: cwd, LookupGroup: lookupGroup}
}

// lookupGroup resolves a group name, or else a number, to a gid.
var lookupGroup = wire.LookupGroup

// ignoredSignals are the signals the C switch ignores so that they cannot kill it.
// SIGPROF is left out: the Go runtime already handles it (profiling).
var ignoredSignals = []os.Signal{
	syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGUSR1, syscall.SIGUSR2,
	syscall.SIGVTALRM, syscall.SIGIO, syscall.SIGSTKFLT, syscall.SIGPWR,
}

// runSwitch runs the switch in this process until a signal, EOF on the console, a
// shutdown command or ctx ends it. ready is non-nil in the daemon: the pipe on which
// the starting process waits for the switch to accept connections.
func runSwitch(ctx context.Context, o *switchOptions, stdio Stdio, ready *os.File) error {
	restored := o.handover != nil
	daemon := ready != nil || restored && o.Daemon
	startDir, _ := os.Getwd()
	// Handlers go in before the switch exists, as in C, so that a signal during
	// start-up still cleans up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	signal.Ignore(ignoredSignals...)

	stderr := &lockedWriter{w: stdio.Err}
	logf := lineLogger(stderr)
	// report is for start-up failures: the user must see them on the terminal also
	// in the daemon, whose stderr is the starting process's pipe until it is ready.
	report := logf
	if daemon {
		logf = syslogLogger("vde_switch", "VDE_SWITCH started")
		report = func(format string, args ...any) {
			lineLogger(stderr)(format, args...)
			logf(format, args...)
		}
		if err := absolutePaths(o); err != nil {
			report("%v", err)
			return exit(1)
		}
	}
	for _, w := range o.Warnings {
		fmt.Fprintf(stderr, "vde_switch: %s\n", w)
	}

	cfg := o.Config
	cfg.Log = logf
	cfg.Version = Version
	cfg.Stdout = stdio.Out
	var sw switchCore
	var vhost *vhostServers // restored with the switch, or started below
	var err error
	if restored {
		sw, vhost, err = restoreOrFallBack(cfg, o, logf)
	} else {
		sw, err = newSwitch(cfg)
	}
	if err != nil {
		report("%v", err)
		return exit(255)
	}
	if o.PidFile != "" && !restored { // a restored switch has the same pid, and its file
		if err := writePidFile(o.PidFile); err != nil {
			report("Error in pidfile creation: %s", strerror(err))
			closeSwitch(sw, logf)
			return exit(1)
		}
		defer func() {
			if err := removePidFile(o.PidFile); err != nil {
				logf("Couldn't remove pidfile '%s': %s", o.PidFile, strerror(err))
			}
		}()
	}
	// TAPs come after the pid file and before the rc file, as the C switch's tuntap
	// module initialises after consmgmt; each takes the next free port.
	if !restored { // the state has the TAPs' ports and what the rc file set
		attachTaps(sw, o.Taps, report)
	}
	if rc := rcFilePath(o.RCFile, os.Getenv("HOME")); rc != "" && !restored {
		if err := sw.RunRC(rc); err != nil {
			logf("%v", err) // C is silent here; a missing -f file deserves a word
		}
	}
	if len(o.VhostUser) > 0 && vhost == nil {
		if vhost, err = serveVhostUser(sw, o, logf); err != nil {
			report("%v", err)
			closeSwitch(sw, logf)
			return exit(1)
		}
	}
	// The vhost-user link in the control directory goes before the switch removes the
	// directory; stop is idempotent (and nil-safe), so the deferred call covers early
	// returns.
	defer vhost.stop()
	if o.Metrics != "" {
		srv, err := serveMetrics(sw, o.Metrics, logf)
		if err != nil {
			report("%v", err)
			closeSwitch(sw, logf)
			return exit(1)
		}
		defer srv.Close()
	}
	if ready != nil {
		// Ready after the rc file ran, so that clients find its VLANs and ports.
		signalReady(ready)
	}
	if daemon {
		os.Chdir("/") // like daemon(3): do not keep the start directory busy
	}
	// Upgrades in place: SIGUSR2 and the console's upgrade. A test's fake core cannot
	// hand over: SIGUSR2 stays ignored then and upgrade answers 1038 Function not
	// implemented.
	var up *upgrader
	if real, ok := sw.(*switchcore.Switch); ok {
		if up = newUpgrader(real, vhost, o.args, startDir, logf); up != nil {
			real.SetUpgrade(up.upgrade)
			up.rearm = func() { signal.Notify(sigs, syscall.SIGUSR2) }
			up.rearm()
		}
	}

	var console chan error
	if !daemon && !o.NoStdin {
		console = make(chan error, 1)
		go func() { console <- runConsole(sw, stdio) }()
	}
	code := 0
loop:
	for {
		select {
		case err := <-console:
			switch {
			case errors.Is(err, io.EOF):
				logf("EOF on stdin, cleaning up and exiting")
			case errors.Is(err, switchcore.ErrShutdown):
				// The core logs this for mgmt sessions; the console is ours.
				logf("Shutdown from mgmt command")
			default:
				logf("Reading from stdin: %v, cleaning up and exiting", err)
				code = 1
			}
			break loop
		case sig := <-sigs:
			if sig == syscall.SIGUSR2 && up != nil {
				if err := up.upgrade(""); err != nil { // returns only on failure
					logf("%v", err)
				}
				continue
			}
			if sig == syscall.SIGHUP {
				// Debian's switch survives SIGHUP; it raises the sig/hup event, on
				// which iplog reopens its log file (after logrotate).
				if h, ok := sw.(interface{ Hangup() }); ok {
					h.Hangup()
				}
				continue
			}
			logf("Caught signal %d, cleaning up and exiting", int(sig.(syscall.Signal)))
			break loop
		case <-sw.Done():
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	if up != nil {
		// An upgrade under way (a console's upgrade command) finishes first: its exec
		// replaces this process, or it resumes the switch, which then stops here.
		up.mu.Lock()
		defer up.mu.Unlock()
	}
	vhost.stop()
	closeSwitch(sw, logf)
	if code != 0 {
		return exit(code)
	}
	return nil
}

// attachTaps opens each -t interface and plugs it into the next free port as a "tuntap"
// endpoint described by the interface name. A TAP that fails is logged and skipped, as in
// C; the switch runs without it. The port closes the TAP when the switch does.
func attachTaps(sw switchCore, names []string, logf func(string, ...any)) {
	for _, name := range names {
		d, err := openTap(name)
		if err == nil {
			if _, err = sw.AttachEndpoint(d, d.FD(), "tuntap", name); err != nil {
				d.Close()
			}
		}
		if err != nil {
			logf("%s", tapErrorText(err))
			logf("ERROR OPENING tap interface: %s", name)
		}
	}
}

func closeSwitch(sw switchCore, logf func(string, ...any)) {
	if err := sw.Close(); err != nil {
		logf("%v", err)
	}
}

// runConsole serves the stdin console. "logout" ends a mgmt session but does nothing on
// the console (as in C), so a nil return starts the next session.
func runConsole(sw switchCore, stdio Stdio) error {
	var prompt io.Writer
	if f, ok := stdio.In.(*os.File); ok {
		// C writes the prompt to fd 0: it shows on a terminal and fails
		// harmlessly when stdin is a pipe or a file.
		prompt = ignoreErrors{f}
	}
	for {
		if err := sw.Console(stdio.In, stdio.Out, prompt); err != nil {
			return err
		}
	}
}

// rcFilePath picks the rc file: -f FILE, else ~/.vde2/vde_switch.rc if readable, else
// the system one if readable, else none.
func rcFilePath(explicit, home string) string {
	if explicit != "" {
		return explicit
	}
	if home != "" {
		p := filepath.Join(home, ".vde2", "vde_switch.rc")
		if unix.Access(p, unix.R_OK) == nil {
			return p
		}
	}
	if unix.Access(systemRCFile, unix.R_OK) == nil {
		return systemRCFile
	}
	return ""
}

// absolutePaths makes the daemon's paths absolute before it leaves its start directory,
// so that cleanup finds its sockets again.
func absolutePaths(o *switchOptions) error {
	paths := []*string{&o.Config.CtlDir, &o.Config.MgmtPath, &o.RCFile}
	for i := range o.VhostUser {
		paths = append(paths, &o.VhostUser[i])
	}
	for _, p := range paths {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("cannot resolve %s: %w", *p, err)
		}
		*p = abs
	}
	return nil
}

// lineLogger logs "vde_switch: <message>" lines on w, as the C switch does on stderr.
func lineLogger(w io.Writer) func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(w, "vde_switch: "+format+"\n", args...)
	}
}

// lockedWriter serialises writes, so that log lines from the core's goroutines never
// interleave (and tests can log into a bytes.Buffer).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// ignoreErrors is a writer that never fails.
type ignoreErrors struct{ w io.Writer }

func (i ignoreErrors) Write(p []byte) (int, error) {
	i.w.Write(p)
	return len(p), nil
}

// serveMetrics serves sw's counters on addr (--metrics).
func serveMetrics(sw switchCore, addr string, logf func(string, ...any)) (*metrics.Server, error) {
	src, ok := sw.(metrics.Source)
	if !ok {
		return nil, fmt.Errorf("metrics: this switch keeps no counters")
	}
	reg, err := metrics.NewRegistry(metrics.NewCollector(src))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return metrics.Listen(addr, reg, logf)
}
