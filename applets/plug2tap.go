package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
)

func init() {
	register(Applet{Name: "plug2tap", Aliases: vdeNames("plug2tap"), Main: Plug2TapMain})
}

// plug2tapFlags are vde_plug2tap's options in the order of the C tool's long option table
// (sock, port, help, mod, group, daemon, pidfile), parsed with getopt_long_only as C does:
// -sock and --sock, -pid for --pidfile. The long form of -m is --mod, although the usage
// text says --mode (which C rejects, and so do we).
var plug2tapFlags = []cli.Flag{
	&cli.StringFlag{Name: "sock", Aliases: []string{"s"}, Usage: "the switch's control socket or directory `SOCK` (- for frames on stdin and stdout)"},
	&cli.StringFlag{Name: "port", Aliases: []string{"p"}, Usage: "connect to switch port `PORT`"},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
	&cli.StringFlag{Name: "mod", Aliases: []string{"m"}, Usage: "octal permission `MODE` of the data socket"},
	&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "`GROUP` that owns the data socket"},
	&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run in the background"},
	&cli.StringFlag{Name: "pidfile", Aliases: []string{"P"}, Usage: "write the process id to `PIDFILE`"},
}

// plug2tapUsage is the C tool's usage text, on standard error with exit status 255.
const plug2tapUsage = `Usage: vde_plug2tap [OPTION]... tap_name

  -p, --port=portnum          Port number in the VDE switch
  -g, --group=group           Group for the socket
  -m, --mode=mode             Octal mode for the socket
  -s, --sock=socket           VDE switch control socket or dir
  -d, --daemon                Launch in background
  -P, --pidfile=pidfile       Create pidfile with our PID
  -h, --help                  This help
`

// plug2tapDaemon is how vde_plug2tap -d daemonizes (daemon.go): it is ready once the TAP
// is open and the switch has given it a port.
var plug2tapDaemon = daemonSpec{Name: "vde_plug2tap", ReadyEnv: "_VDE_PLUG2TAP_DAEMON_READY_FD"}

// plug2tapOptions is a parsed vde_plug2tap command line.
type plug2tapOptions struct {
	// Tap is the interface name (the first operand; C ignores any others).
	Tap string
	// Sock is -s: a switch directory or URL, "-" for a stream on stdin/stdout, empty
	// for the default switch.
	Sock string
	// Open holds -p, -m and -g for the switch connection; the description is
	// "vde_plug2tap:", as Debian's sends it.
	Open wire.OpenOptions
	// Daemon is -d.
	Daemon bool
	// PidFile is -P, made absolute against the start directory; empty for none.
	PidFile string
	// Warnings are printed before the plug starts.
	Warnings []string
}

// parsePlug2TapArgs parses vde_plug2tap's arguments; on a usage error it returns a
// *parseExit with the text and status of the C tool.
func parsePlug2TapArgs(args []string, cwd string) (*plug2tapOptions, error) {
	return plug2tapPlug.parse(args, cwd)
}

// parse parses the command line of p's tool, whose options are vde_plug2tap's; on a
// usage error it returns a *parseExit with the text and status of the C tool.
func (p *ifacePlug) parse(args []string, cwd string) (*plug2tapOptions, error) {
	usage := func(msg string) error {
		return &parseExit{Code: 255, Stderr: msg + p.usage}
	}
	o := &plug2tapOptions{Open: wire.OpenOptions{Description: p.prog + ":", Mode: 0o700}}
	res := getoptLongOnly(plug2tapFlags, args)
	for _, ev := range res.Opts {
		if ev.Err != "" {
			return nil, usage(p.prog + ": " + ev.Err + "\n")
		}
		v := ev.Value
		switch ev.Name {
		case "help":
			return nil, usage("")
		case "port":
			p := atoi(v)
			if p <= 0 {
				return nil, usage("")
			}
			o.Open.Port = int(p)
		case "sock":
			o.Sock = v
		case "mod":
			// sscanf("%o"): no digits keep the default 0700.
			if m, ok := scanOctal(v); ok {
				o.Open.Mode = uint32(m)
			}
		case "group":
			// libvdeplug ignores a group it cannot find; we say so.
			if gid, err := lookupGroup(v); err == nil {
				o.Open.Group, o.Open.HasGroup = gid, true
			} else {
				o.Warnings = append(o.Warnings, fmt.Sprintf("group %s: no such group, ignored", v))
			}
		case "daemon":
			o.Daemon = true
		case "pidfile":
			o.PidFile = v
		}
	}
	if len(res.Operands) == 0 {
		return nil, usage("")
	}
	o.Tap = res.Operands[0]
	if o.PidFile != "" && !filepath.IsAbs(o.PidFile) {
		if cwd == "" {
			return nil, &parseExit{Code: 1, Stderr: p.prog + ": getcwd: cannot resolve the pid file " + o.PidFile + "\n"}
		}
		o.PidFile = filepath.Join(cwd, o.PidFile)
	}
	return o, nil
}

// atoi is C's atoi: optional blanks and sign, decimal digits up to the first other
// character, 0 if there are none; values beyond a C long saturate, then keep their low
// 32 bits as the int conversion does.
func atoi(s string) int32 {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	var v int64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := int64(s[i] - '0')
		if v > (math.MaxInt64-d)/10 {
			if neg {
				return 0 // the low 32 bits of LONG_MIN
			}
			return -1 // the low 32 bits of LONG_MAX
		}
		v = v*10 + d
	}
	if neg {
		v = -v
	}
	return int32(v)
}

// ifacePlug is what differs between vde_plug2tap and vde_pcapplug, which join a switch
// port to a local interface the same way and take the same options.
type ifacePlug struct {
	// prog names the tool in its messages, syslog and the switch's port description.
	prog string
	// usage is the C tool's usage text.
	usage string
	// daemon is how -d daemonizes.
	daemon daemonSpec
	// switchFirst opens the switch before the interface and the pid file (the C
	// vde_pcapplug's order); otherwise the pid file, the interface, the switch.
	switchFirst bool
	// open attaches to the interface; errText is the C tool's message when it fails.
	open    func(name string) (wire.Endpoint, error)
	errText func(error) string
	// ended is the exit status when err, from the interface, ended the plug; ok is
	// false for an error of another kind.
	ended func(err error, logf func(string, ...any)) (code int, ok bool)
}

// plug2tapPlug is vde_plug2tap: a TAP, opened as the C tools open it.
var plug2tapPlug = &ifacePlug{
	prog:   "vde_plug2tap",
	usage:  plug2tapUsage,
	daemon: plug2tapDaemon,
	open: func(name string) (wire.Endpoint, error) {
		d, err := tap.Open(name)
		if err != nil {
			return nil, err
		}
		return d, nil
	},
	errText: tapErrorText,
	ended: func(err error, logf func(string, ...any)) (int, bool) {
		var te *tap.Error
		if !errors.As(err, &te) {
			return 0, false
		}
		logf("%v", err)
		return 1, true
	},
}

// Plug2TapMain is vde_plug2tap: it joins a switch port (or, with -s -, a vde_plug stream
// on stdin/stdout) to a TAP interface, until either side ends.
func Plug2TapMain(ctx context.Context, args []string, stdio Stdio) error {
	return plug2tapPlug.main(ctx, args, stdio)
}

func (p *ifacePlug) main(ctx context.Context, args []string, stdio Stdio) error {
	ready := p.daemon.takeReadyFile()
	cwd, _ := os.Getwd()
	o, err := p.parse(args, cwd)
	if err != nil {
		return parseFailure(err, stdio)
	}
	if o.Daemon && ready == nil {
		return p.daemon.spawn(args, stdio)
	}
	return p.run(ctx, o, stdio, ready)
}

// run runs the plug in this process. ready is non-nil in the daemon.
func (p *ifacePlug) run(ctx context.Context, o *plug2tapOptions, stdio Stdio, ready *os.File) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	signal.Ignore(ignoredSignals...)

	stderr := &lockedWriter{w: stdio.Err}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, p.prog+": "+format+"\n", args...)
	}
	report := logf
	if ready != nil {
		syslogf := syslogLogger(p.prog, strings.ToUpper(p.prog)+" started")
		report = func(format string, args ...any) {
			logf(format, args...)
			syslogf(format, args...)
		}
		logf = syslogf
	}
	for _, w := range o.Warnings {
		report("%s", w)
	}

	var dev, sw wire.Endpoint
	stream := o.Sock == "-"
	openSwitch := func() error {
		var err error
		if stream {
			sw = wire.NewStream(stdio.In, stdio.Out, nil)
			return nil
		}
		if sw, err = wire.Open(o.Sock, o.Open); err != nil {
			name := o.Sock
			if name == "" {
				name = "DEF_SWITCH"
			}
			report("vde_open %s: %s", name, openErrorText(err))
			return exit(1)
		}
		return nil
	}
	closeAll := func() {
		for _, e := range []wire.Endpoint{dev, sw} {
			if e != nil {
				e.Close()
			}
		}
	}
	if p.switchFirst {
		if err := openSwitch(); err != nil {
			return err
		}
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile); err != nil {
			closeAll()
			report("Error in pidfile creation: %s", strerror(err))
			return exit(1)
		}
		defer func() {
			if err := removePidFile(o.PidFile); err != nil {
				logf("Couldn't remove pidfile '%s': %s", o.PidFile, strerror(err))
			}
		}()
	}
	var err error
	if dev, err = p.open(o.Tap); err != nil {
		closeAll()
		report("%s", p.errText(err))
		return exit(1)
	}
	if !p.switchFirst {
		if err := openSwitch(); err != nil {
			closeAll()
			return err
		}
	}
	if ready != nil {
		signalReady(ready)
		os.Chdir("/") // like daemon(3): do not keep the start directory busy
	}

	joined := make(chan error, 1)
	go func() { joined <- wire.Join(dev, sw) }()
	select {
	case err = <-joined:
	case <-sigs:
		closeAll()
		return nil
	case <-ctx.Done():
		closeAll()
		return nil
	}
	if code, ok := p.ended(err, logf); ok {
		if code == 0 {
			return nil
		}
		return exit(code)
	}
	switch {
	case stream && errors.Is(err, io.EOF):
		return nil // the far end of the stream hung up: C exits quietly
	case stream:
		logf("stream: %v", err)
		return exit(1)
	case errors.As(err, new(*wire.SwitchGoneError)):
		logf("%v", err) // names the switch, and the data socket's error if that ended it
	case errors.Is(err, wire.ErrPeerClosed) || errors.Is(err, io.EOF):
		logf("switch closed the connection")
	default:
		logf("switch connection: %v", err)
	}
	// C exits 0 whenever the switch side ends.
	return nil
}

// tapErrorText is the C tools' message for a TAP that would not open ("TUNSETIFF failed
// Device or resource busy"), or our error where C has none (a name too long).
func tapErrorText(err error) string {
	var te *tap.Error
	if !errors.As(err, &te) {
		return err.Error()
	}
	switch {
	case te.Op == "TUNSETIFF":
		return "TUNSETIFF failed " + strerror(te.Err)
	case strings.HasPrefix(te.Op, "open "):
		return "Failed to open " + strings.TrimPrefix(te.Op, "open ") + " " + strerror(te.Err)
	}
	return err.Error()
}

// openErrorText is strerror of what made vde_open fail, or our full error when no errno
// tells it.
func openErrorText(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return strerror(err)
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	}
	return err.Error()
}
