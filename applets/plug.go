package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	_ "github.com/vde-go/vde/switchcore/netnode" // switch://, hub://, multi://, bonding://
	_ "github.com/vde-go/vde/switchcore/ptp"     // ptp:// and seqpacket://
	_ "github.com/vde-go/vde/switchcore/vxlan"   // vxlan:// and vxvde://
	"github.com/vde-go/vde/switchcore/wire"
)

func init() {
	register(Applet{Name: "plug", Aliases: vdeNames("plug"), Main: PlugMain})
}

// plugFlags are vdeplug4's vde_plug options (optstring c:hp:dm:M:g:G:lLD:), plus the
// classic vde2 -s/--sock/--vdesock/--unix DIR, which vdeplug4 rejects, as the URL, and
// our --reconnect.
var plugFlags = []cli.Flag{
	&cli.StringFlag{Name: "c", Usage: "run as the login shell of a user: `COMMAND` must be vde_plug (ssh runs `vde_plug -c vde_plug`); the session is logged"},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
	&cli.StringFlag{Name: "pidfile", Aliases: []string{"p"}, Usage: "write the process id to `PIDFILE`"},
	&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run in the background"},
	&cli.StringFlag{Name: "mod", Aliases: []string{"m"}, Usage: "octal permission `MODE` of the first plug's data socket (vde://)"},
	&cli.StringFlag{Name: "mod2", Aliases: []string{"M"}, Usage: "octal permission `MODE` of the second plug's data socket"},
	&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "`GROUP` that owns the first plug's data socket (vde://)"},
	&cli.StringFlag{Name: "group2", Aliases: []string{"G"}, Usage: "`GROUP` that owns the second plug's data socket"},
	&cli.BoolFlag{Name: "log", Aliases: []string{"l"}, Usage: "log the start and the end of the connection to syslog"},
	&cli.BoolFlag{Name: "iplog", Aliases: []string{"L"}, Usage: "as -l, and log the IP addresses seen on the cable"},
	&cli.StringFlag{Name: "descr", Aliases: []string{"D"}, Usage: "describe the connection to the switch as `DESCR` (port/print shows it)"},
	&cli.StringFlag{Name: "port", Usage: "connect to switch port `PORT` (obsolete: vde://PATH[PORT] says it)"},
	&cli.StringFlag{Name: "port2", Usage: "switch `PORT` of the second plug (obsolete)"},
	&cli.StringFlag{Name: "sock", Aliases: []string{"vdesock", "unix", "s"}, Usage: "the switch's control directory `DIR`, as the classic vde2 vde_plug takes it"},
	&cli.BoolFlag{Name: "reconnect", Usage: "when a vde:// switch goes away, dial it again instead of exiting"},
}

// plugUsage is vdeplug4's usage text, then our additions.
const plugUsage = `Usage:
  vde_plug [ OPTIONS ] 
  vde_plug [ OPTIONS ] vde_plug_url
  vde_plug [ OPTIONS ] vde_plug_url vde_plug_url
  vde_plug [ OPTIONS ] = command [args ...]
  vde_plug [ OPTIONS ] vde_plug_url = command [args ...]
  an omitted or empty '' vde_plug_url refer to the default vde service
  i.e. what defined in "~/.vde2/default.switch" or
       a standard switch defined by libvdeplug_vde.so (e.g. /var/run/vde.ctl)
Options:
  -d | --daemon:            daemonize the program
  -p PIDFILE | --pidfile PIDFILE: 
                            write pid of daemon to PIDFILE
  -l | --log:               log START/STOP of vde_plug on syslog
  -L | --iplog:             -l plus log the IP addresses used
  -h | --help:              show this short summary
  -g GROUP | -group GROUP:  set the group ownership (for vde://...)
  -G GROUP | -group2 GROUP: like -g, for the second plug
  -m MODE | -mod MODE:      comm socket protection mode (see chmod) (for vde://...)
  -M MODE | -mod2 MODE:     like -m, for the second plug
  --port PORT1, --port2 PORT2:
                            obsolete options, set the vde switch port,
                            use [port] suffix in the vde_plug_url instead
  -D DESCR | --descr DESCR  set the description of this connection to DESCR
                            (the default value is "vdeplug:"

More options of this vde_plug:
  -s DIR | --sock DIR       the switch, as the classic vde2 vde_plug takes it
  --reconnect               when a vde:// switch goes away, do not exit: dial it
                            again (every 0.1 s, backing off to 5 s) and go on once
                            it is back; what comes from the other side meanwhile is
                            dropped
`

const loginShellRefusal = "This is a Virtual Distributed Ethernet (vde) tunnel broker. \n" +
	"This is not a login shell, only vde_plug can be executed\n"

// plugArgs is a parsed vde_plug command line.
type plugArgs struct {
	urls     []string // 0, 1 or 2 URLs ("" = default switch)
	command  []string // the "= command args" form
	opts     [2]wire.OpenOptions
	daemon   bool
	pidfile  string
	log      bool
	iplog    bool
	loginCmd bool // -c vde_plug: run by sshd as a login shell
	// reconnect is --reconnect: a vde:// side outlives its switch (wire.Redial).
	reconnect bool
}

// parsePlugArgs reads vde_plug's command line. Options stop at "=": what follows is the
// command and its own options (the C tool's getopt would take `= ssh -p 22 host` for its
// own -p).
func parsePlugArgs(argv0 string, args []string) (*plugArgs, error) {
	var cmd []string
	hasCmd := false
	for i, a := range args {
		if a == "=" {
			cmd, args, hasCmd = args[i+1:], args[:i], true
			break
		}
	}
	r := getoptLongOnly(plugFlags, args)
	pa := &plugArgs{command: cmd}
	for i := range pa.opts {
		pa.opts[i].Description = "vdeplug:"
	}
	usage := func(msg string) error {
		return &parseExit{Code: 255, Stderr: msg + plugUsage}
	}
	var sock string
	for _, ev := range r.Opts {
		if ev.Err != "" {
			return nil, usage("vde_plug: " + ev.Err + "\n")
		}
		switch ev.Name {
		case "help":
			return nil, usage("")
		case "c":
			if ev.Value != "vde_plug" {
				return nil, &parseExit{Code: 255, Stderr: loginShellRefusal}
			}
			pa.loginCmd, pa.log = true, true
			pa.iplog = inGroup("vdeplug_iplog")
		case "pidfile":
			pa.pidfile = ev.Value
		case "daemon":
			pa.daemon = true
		case "mod", "mod2":
			m, err := strconv.ParseUint(ev.Value, 8, 32)
			if err != nil {
				return nil, usage(fmt.Sprintf("vde_plug: invalid mode '%s'\n", ev.Value))
			}
			pa.opts[plugIndex(ev.Name)].Mode = uint32(m)
		case "group", "group2":
			gid, err := lookupGroup(ev.Value)
			if err != nil {
				return nil, usage(fmt.Sprintf("vde_plug: no such group '%s'\n", ev.Value))
			}
			o := &pa.opts[plugIndex(ev.Name)]
			o.Group, o.HasGroup = gid, true
		case "log":
			pa.log = true
		case "iplog":
			pa.log, pa.iplog = true, true
		case "descr":
			if ev.Value != "" {
				pa.opts[0].Description, pa.opts[1].Description = ev.Value, ev.Value
			}
		case "port", "port2":
			n, err := strconv.Atoi(ev.Value)
			if err != nil || n <= 0 {
				return nil, usage("")
			}
			pa.opts[plugIndex(ev.Name)].Port = n
		case "sock":
			sock = ev.Value
		case "reconnect":
			pa.reconnect = true
			pa.opts[0].Reconnect, pa.opts[1].Reconnect = true, true
		}
	}
	if strings.HasPrefix(argv0, "-") && !pa.loginCmd {
		return nil, &parseExit{Code: 255, Stderr: loginShellRefusal}
	}
	pa.urls = r.Operands
	if sock != "" {
		pa.urls = append([]string{sock}, pa.urls...)
	}
	switch {
	case hasCmd && len(cmd) == 0:
		return nil, usage("")
	case hasCmd && len(pa.urls) > 1:
		return nil, usage("")
	case len(pa.urls) > 2:
		return nil, usage("")
	}
	return pa, nil
}

func plugIndex(name string) int {
	if strings.HasSuffix(name, "2") {
		return 1
	}
	return 0
}

// PlugMain is vde_plug: it joins a switch port to stdin/stdout, to a command's stdio, or
// to another network.
func PlugMain(ctx context.Context, args []string, stdio Stdio) error {
	ready := plugDaemon.takeReadyFile()
	pa, err := parsePlugArgs(os.Args[0], args)
	if err != nil {
		return parseFailure(err, stdio)
	}
	if pa.daemon && ready == nil {
		// Unlike the C plug, which daemonizes before connecting and so loses its errors,
		// the starter returns once the daemon is connected, or shows why it is not.
		return plugDaemon.spawn(args, stdio)
	}
	if pa.pidfile != "" {
		if abs, err := filepath.Abs(pa.pidfile); err == nil {
			pa.pidfile = abs // still found after the daemon leaves its start directory
		}
		if err := os.WriteFile(pa.pidfile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0644); err != nil {
			fmt.Fprintf(stdio.Err, "vde_plug: pidfile %s: %v\n", pa.pidfile, err)
			return exit(1)
		}
		defer os.Remove(pa.pidfile)
	}
	logInfo := func(string, ...any) {}
	if pa.log {
		if w, err := syslog.New(syslog.LOG_INFO|syslog.LOG_USER, "vde_plug"); err == nil {
			defer w.Close()
			logInfo = func(format string, args ...any) { w.Info(fmt.Sprintf(format, args...)) }
		}
		logInfo("START user %s %s", currentUserName(), strings.Join(pa.urls, " "))
		defer logInfo("STOP user %s %s", currentUserName(), strings.Join(pa.urls, " "))
	}

	for i := range pa.opts {
		pa.opts[i].Logf = func(format string, args ...any) {
			fmt.Fprintf(stdio.Err, "vde_plug: "+format+"\n", args...)
			logInfo(format, args...)
		}
	}
	a, err := openPlugURL(pa, 0, stdio)
	if err != nil {
		return err
	}
	var b wire.Endpoint
	switch {
	case len(pa.urls) == 2:
		b, err = openPlugURL(pa, 1, stdio)
		if err != nil {
			a.Close()
			return err
		}
	case pa.command != nil:
		cs, err := wire.StartCommand(pa.command)
		if err != nil {
			a.Close()
			fmt.Fprintf(stdio.Err, "vde_plug: %v\n", err)
			return exit(1)
		}
		b = cs
	default:
		b = wire.NewStream(stdio.In, stdio.Out, nil)
	}

	if ready != nil {
		signalReady(ready)
		os.Chdir("/") // like daemon(3): do not keep the start directory busy
	}
	if pa.iplog {
		b = newIPLogger(b, logInfo, currentUserName())
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	signal.Ignore(syscall.SIGPIPE, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM)
	done := make(chan error, 1)
	go func() { done <- wire.Join(a, b) }()
	select {
	case <-sigs:
		a.Close()
		b.Close()
		return nil
	case <-ctx.Done():
		a.Close()
		b.Close()
		return nil
	case err = <-done:
	}
	switch {
	case errors.Is(err, wire.ErrPeerClosed):
		// Status 0, as Debian's vde_plug on a control EOF; but say which switch let go.
		fmt.Fprintf(stdio.Err, "vde_plug: %v\n", err)
		return nil
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed):
		return nil
	case errors.Is(err, wire.ErrStreamLength), errors.Is(err, io.ErrUnexpectedEOF):
		fmt.Fprintf(stdio.Err, "vde_plug: %v\n", err)
		return exit(1)
	}
	return nil // a pipe or socket that went away ends the plug, as in C
}

// plugDaemon is how vde_plug -d daemonizes (daemon.go).
var plugDaemon = daemonSpec{Name: "vde_plug", ReadyEnv: "_VDE_PLUG_DAEMON_READY_FD"}

// openPlugURL opens URL i with vde_plug's message on failure.
func openPlugURL(pa *plugArgs, i int, stdio Stdio) (wire.Endpoint, error) {
	url := ""
	if i < len(pa.urls) {
		url = pa.urls[i]
	}
	e, err := wire.Open(url, pa.opts[i])
	if err != nil {
		name := url
		if name == "" {
			name = "default switch"
		}
		fmt.Fprintf(stdio.Err, "vde_open %s: %v\n", name, err)
		return nil, exit(1)
	}
	return e, nil
}
