package applets

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/vde-go/vde/switchcore"
)

// switchFlags are vde_switch's options in the order of the C option table (global
// options, then the datasock, consmgmt and tuntap modules); the order shows in getopt's
// "ambiguous" message. The -h text is switchUsage, copied from the C tool, not generated.
var switchFlags = []cli.Flag{
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
	&cli.BoolFlag{Name: "hub", Aliases: []string{"x"}, Usage: "act as a hub: every frame goes to every port"},
	&cli.BoolFlag{Name: "fstp", Aliases: []string{"F"}, Usage: "run the fast spanning tree protocol (FSTP)"},
	&cli.BoolFlag{Name: "flowcontrol", Usage: "slow a sender to a full port's pace instead of dropping its frames"},
	&cli.BoolFlag{Name: "noflowcontrol", Usage: "always drop what a full port cannot take, as the C switch"},
	&cli.StringSliceFlag{Name: "vhost-user", Usage: "serve vhost-user frontends (QEMU's -netdev vhost-user, DPDK's virtio_user) on the Unix socket `PATH`, a port each; may be repeated"},
	&cli.BoolFlag{Name: "poll", Usage: "vhost-user ports poll their rings instead of sleeping between kicks: a core for the lowest latency"},
	&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on `ADDR`: a TCP host:port (keep it on loopback) or a Unix socket path"},
	&cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version and exit"},
	&cli.StringFlag{Name: "numports", Aliases: []string{"n"}, Usage: "the number of `PORTS` (default 32)"},
	&cli.StringFlag{Name: "hashsize", Usage: "`N` entries in the MAC address table"},
	&cli.StringFlag{Name: "macaddr", Usage: "the switch's own `MAC` address (FSTP)"},
	&cli.StringFlag{Name: "priority", Usage: "the switch's FSTP bridge `PRIORITY`"},
	&cli.StringFlag{Name: "sock", Aliases: []string{"vdesock", "unix", "s"}, Usage: "the control directory `DIR` clients connect to (default /tmp/vde.ctl, /var/run/vde.ctl for root)"},
	&cli.StringFlag{Name: "mode", Aliases: []string{"mod", "m"}, Usage: "octal permission `MODE` of the control and data sockets"},
	&cli.StringFlag{Name: "dirmode", Usage: "octal permission `MODE` of the control directory"},
	&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "`GROUP` (a name or a gid) that owns the sockets"},
	&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run in the background once the sockets are ready, logging to syslog"},
	&cli.StringFlag{Name: "pidfile", Aliases: []string{"p"}, Usage: "write the process id to `PIDFILE`"},
	&cli.StringFlag{Name: "rcfile", Aliases: []string{"f"}, Usage: "run the console commands of `FILE` at start (instead of ~/.vde2/vde_switch.rc or /etc/vde2/vde_switch.rc)"},
	&cli.StringFlag{Name: "mgmt", Aliases: []string{"M"}, Usage: "a management console on the Unix socket `SOCKET` (unixterm, vdeterm, vdecmd)"},
	&cli.StringFlag{Name: "mgmtmode", Usage: "octal permission `MODE` of the management socket"},
	&cli.StringFlag{Name: "mgmtgroup", Usage: "`GROUP` that owns the management socket"},
	&cli.BoolFlag{Name: "nostdin", Usage: "in the foreground, no console on stdin: the switch runs on when stdin ends"},
	&cli.StringFlag{Name: "debugclients", Aliases: []string{"D"}, Usage: "accepted and ignored, as in C: `N` debug clients"},
	&cli.StringFlag{Name: "tap", Aliases: []string{"t"}, Usage: "add a port on the TAP interface `TAP` (needs CAP_NET_ADMIN)"},
}

// switchUsage is the C tool's usage text (spec §1.1) with HEAD's --nostdin line and our
// bug address; %d is the number of ports set so far, as in C ("-n 4 -h" says 4).
const switchUsage = `Usage: vde_switch [OPTIONS]
Runs a VDE switch.
(global opts)
  -h, --help                 Display this help and exit
  -v, --version              Display informations on version and exit
  -n  --numports             Number of ports (default %d)
  -x, --hub                  Make the switch act as a hub
  -F, --fstp                 Activate the fast spanning tree protocol
      --macaddr MAC          Set the Switch MAC address
      --priority N           Set the priority for FST (MAC extension)
      --hashsize N           Hash table size
      --flowcontrol          Slow senders to a full port's pace instead of dropping
      --noflowcontrol        Drop what a full port cannot take, as the C switch
      --metrics ADDR         Serve Prometheus metrics on ADDR (host:port or socket path)
      --vhost-user PATH      Serve vhost-user frontends (QEMU, DPDK) on PATH, a port each
      --poll                 vhost-user ports poll instead of sleeping (uses a core)
(opts from datasock module)
  -s, --sock SOCK            control directory pathname
  -s, --vdesock SOCK         Same as --sock SOCK
  -s, --unix SOCK            Same as --sock SOCK
  -m, --mode MODE            Permissions for the control socket (octal)
      --dirmode MODE         Permissions for the sockets directory (octal)
  -g, --group GROUP          Group owner for comm sockets
(opts from consmgmt module)
  -d, --daemon               Daemonize vde_switch once run
  -p, --pidfile PIDFILE      Write pid of daemon to PIDFILE
  -f, --rcfile               Configuration file (overrides /etc/vde2/vde_switch.rc and ~/.vderc)
  -M, --mgmt SOCK            path of the management UNIX socket
      --mgmtmode MODE        management UNIX socket access mode (octal)
      --mgmtgroup GROUP      management UNIX socket group name
      --nostdin              Allow stdin to be closed
  -D, --debugclients #       number of debug clients allowed
(opts from tuntap module)
  -t, --tap TAP              Enable routing through TAP tap interface

Report bugs to https://github.com/vde-go/vde/issues
`

// switchVersionText is printed by -v. The first line keeps the C tool's shape.
func switchVersionText() string {
	return "VDE " + Version + `
Copyright the vde-go authors.
A reimplementation in Go of VDE2 by Renzo Davoli and others.
vde comes with NO WARRANTY, to the extent permitted by law.
You may redistribute copies of vde under the terms of the
Apache License, Version 2.0.
For more information about these matters, see the file
named LICENSE.
`
}

const (
	defaultNumPorts = 32
	defaultHashSize = 128
	defaultPriority = 0x8000
	// maxHashSize is the largest power of two a C int holds; C loops forever above it.
	maxHashSize = 1 << 30
)

// switchEnv is what option parsing needs from the process, so that tests can fake it.
type switchEnv struct {
	// Euid picks the default control directory (/var/run/vde.ctl for root).
	Euid int
	// Cwd resolves a relative pid file; empty if unknown.
	Cwd string
	// LookupGroup returns the gid of a group name (or number).
	LookupGroup func(name string) (int, error)
}

// switchOptions is a parsed vde_switch command line.
type switchOptions struct {
	// Config is the switch configuration; Log, Stdout and Version are left for Main.
	Config switchcore.Config
	// Daemon is -d.
	Daemon bool
	// NoStdin is --nostdin: no console on stdin in the foreground.
	NoStdin bool
	// PidFile is -p, made absolute against the start directory; empty for none.
	PidFile string
	// RCFile is -f as given; empty means the default rc files.
	RCFile string
	// args are the arguments as given, which an upgrade passes to the new binary.
	args []string
	// handover is what an upgrade handed this process (switch_upgrade.go), handoverErr
	// why it could not all be read; nil for a switch started afresh.
	handover    *handoverIn
	handoverErr error
	// Metrics is --metrics: where to serve the counters (host:port or a socket path).
	Metrics string
	// VhostUser are the --vhost-user socket paths; Poll is --poll.
	VhostUser []string
	Poll      bool
	// Taps are the -t interfaces, one port each, in command-line order. As in C, a
	// value is one name: commas do not split it (the man page says they do).
	Taps []string
	// Warnings are logged at start-up ("Hash size must be a power of 2...").
	Warnings []string
}

// parseExit is parsing's verdict when the switch must not start: what to print on
// standard output and standard error, and the exit status.
type parseExit struct {
	Code   int
	Stdout string
	Stderr string
}

func (e *parseExit) Error() string {
	return fmt.Sprintf("vde_switch: exit status %d: %s", e.Code, e.Stderr)
}

// parseFailure prints what a failed parse has to say and gives its exit status (none
// for status 0); an error that is not a *parseExit passes through.
func parseFailure(err error, stdio Stdio) error {
	var pe *parseExit
	if !errors.As(err, &pe) {
		return err
	}
	io.WriteString(stdio.Out, pe.Stdout)
	io.WriteString(stdio.Err, pe.Stderr)
	if pe.Code == 0 {
		return nil
	}
	return exit(pe.Code)
}

// parseSwitchArgs turns vde_switch's arguments into options, or into a *parseExit.
// Options act in command-line order, like the C tool's getopt loop: the first of -h, -v,
// a bad value or a bad group decides the outcome.
func parseSwitchArgs(args []string, env switchEnv) (*switchOptions, error) {
	numports := int32(defaultNumPorts)
	hashsize := int32(defaultHashSize)
	priority := int32(defaultPriority)
	mode, dirmode, mgmtmode := int32(-1), int32(-1), int32(0o600)
	group, mgmtgroup := -1, -1
	var mac [6]byte
	var hub, fstp bool
	flow := switchcore.FlowAuto
	o := &switchOptions{}
	sock, hashArg := "", ""

	usage := func(stderr string) error {
		return &parseExit{Code: 1, Stdout: fmt.Sprintf(switchUsage, numports), Stderr: stderr}
	}
	fail := func(stderr string) error { return &parseExit{Code: 1, Stderr: stderr} }

	res := getoptLongOnly(switchFlags, args)
	for _, ev := range res.Opts {
		if ev.Err != "" {
			// The C tool only warns and carries on; a mistyped option should
			// not start a switch with defaults, so we stop with the usage.
			return nil, usage("vde_switch: " + ev.Err + "\n")
		}
		v := ev.Value
		switch ev.Name {
		case "help":
			return nil, usage("")
		case "version":
			return nil, &parseExit{Code: 0, Stdout: switchVersionText() + handoverProbeText()}
		case "hub":
			hub = true
		case "fstp":
			fstp = true
		case "flowcontrol":
			flow = switchcore.FlowAlways
		case "noflowcontrol":
			flow = switchcore.FlowNever
		case "metrics":
			o.Metrics = v
		case "vhost-user":
			o.VhostUser = append(o.VhostUser, v)
		case "poll":
			o.Poll = true
		case "numports":
			// vde-2 HEAD's check; Debian kept 32 for "-n abc".
			n, ok := scanInt(v)
			if !ok || n < 1 || n > math.MaxInt32-1 {
				return nil, usage(fmt.Sprintf("vde_switch: Invalid number of ports %s\n", v))
			}
			numports = n
		case "hashsize":
			if n, ok := scanInt(v); ok {
				hashsize, hashArg = n, v
			}
		case "priority":
			if n, ok := scanInt(v); ok {
				priority = n & 0xffff
			}
		case "macaddr":
			m, ok := parseMAC(v)
			if !ok {
				return nil, usage(fmt.Sprintf("vde_switch: Invalid MAC Addr %s\n", v))
			}
			mac = m
		case "sock":
			sock = v
		case "mode":
			if n, ok := scanOctal(v); ok {
				mode = n
			}
		case "dirmode":
			if n, ok := scanOctal(v); ok {
				dirmode = n
			}
		case "mgmtmode":
			if n, ok := scanOctal(v); ok {
				mgmtmode = n
			}
		case "group", "mgmtgroup":
			gid, err := env.LookupGroup(v)
			if err != nil {
				return nil, fail(fmt.Sprintf("No such group '%s'\n", v))
			}
			if ev.Name == "group" {
				group = gid
			} else {
				mgmtgroup = gid
			}
		case "daemon":
			o.Daemon = true
		case "pidfile":
			o.PidFile = v
		case "rcfile":
			o.RCFile = v
		case "mgmt":
			o.Config.MgmtPath = v
		case "nostdin":
			o.NoStdin = true
		case "debugclients":
			// Listed by the C tool's usage and ignored by it.
		case "tap":
			o.Taps = append(o.Taps, v)
		}
	}
	if len(res.Operands) > 0 {
		return nil, usage("")
	}

	switch {
	case hashsize < 0 || hashsize > maxHashSize:
		return nil, usage(fmt.Sprintf("vde_switch: Invalid hash size %s\n", hashArg))
	case hashsize == 0:
		hashsize = 1 // C: zero hash bits, one bucket, no warning
	case hashsize&(hashsize-1) != 0:
		r := int32(1)
		for r < hashsize {
			r <<= 1
		}
		o.Warnings = append(o.Warnings, fmt.Sprintf("Hash size must be a power of 2. %d rounded to %d", hashsize, r))
		hashsize = r
	}

	if sock == "" {
		sock = "/tmp/vde.ctl"
		if env.Euid == 0 {
			sock = "/var/run/vde.ctl"
		}
	}
	if o.PidFile != "" && !filepath.IsAbs(o.PidFile) {
		if env.Cwd == "" {
			return nil, fail("vde_switch: getcwd: cannot resolve the pid file " + o.PidFile + "\n")
		}
		o.PidFile = filepath.Join(env.Cwd, o.PidFile)
	}

	c := &o.Config
	c.NumPorts = int(numports)
	c.Hub = hub
	// -x switches FSTP off whatever the order ("-F -x" and "-x -F" both run a hub
	// without FSTP in C), so only -F without -x runs it.
	c.FSTP = fstp && !hub
	c.FlowControl = flow
	c.MAC = mac
	c.Priority = int(priority)
	c.HashSize = int(hashsize)
	c.CtlDir = sock
	// A negative value after %o (e.g. "-m -1") means "not given" in C.
	c.Mode, c.ModeSet = uint32(max(mode, 0)), mode >= 0
	c.DirMode, c.DirModeSet = uint32(max(dirmode, 0)), dirmode >= 0
	c.Group = group
	c.MgmtMode = uint32(mgmtmode)
	c.MgmtGroup = mgmtgroup
	return o, nil
}
