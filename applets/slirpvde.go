package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vde-go/vde/slirp"
	"github.com/vde-go/vde/switchcore/metrics"
	"github.com/vde-go/vde/switchcore/wire"
)

func init() {
	register(Applet{Name: "slirpvde", Aliases: []string{"slirp"}, Main: SlirpvdeMain, Processors: SlirpvdeProcessors})
}

// slirpvdeFlags are Debian slirpvde's options (optstring Ds:n:H:p:g:m:L:U:X:x:t:N:dqh,
// shared/spec/slirpvde.md §1), then ours: --netaddr (which Debian's README promises),
// -6/--ipv6[=PREFIX], --no-host-loopback, --bootfile, --reconnect.
var slirpvdeFlags = []cli.Flag{
	&cli.StringFlag{Name: "socket", Aliases: []string{"sock", "vdesock", "unix", "s"}, Usage: "the switch's control socket or directory `SOCK` (- for frames on stdin and stdout)"},
	&cli.StringFlag{Name: "pidfile", Aliases: []string{"p"}, Usage: "write the process id to `PIDFILE`"},
	&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "run in the background"},
	&optionalArgFlag{cli.BoolFlag{Name: "dhcp", Aliases: []string{"D"}, Usage: "serve DHCP, leasing from `ADDR` on (default the network's address 15)"}},
	&cli.StringFlag{Name: "host", Aliases: []string{"H"}, Usage: "the router's address `ADDR[/LEN]`; a network address means its address 2 (default 10.0.2.2/24)"},
	&cli.StringFlag{Name: "network", Aliases: []string{"n"}, Usage: "the guests' network `NETADDR[/LEN]` (as --host)"},
	&cli.StringFlag{Name: "dns", Aliases: []string{"nameserver", "N"}, Usage: "the DNS server address `ADDR` DHCP hands out (default the network's address 3)"},
	&cli.StringFlag{Name: "mod", Aliases: []string{"m"}, Usage: "octal permission `MODE` of the data socket"},
	&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "`GROUP` that owns the data socket"},
	&cli.StringFlag{Name: "port", Usage: "connect to switch port `PORT`"},
	&cli.StringFlag{Name: "L", Usage: "forward TCP connections to a host port to a guest: `[BIND:]HPORT:GUEST:GPORT`"},
	&cli.StringFlag{Name: "U", Usage: "forward UDP datagrams to a host port to a guest: `[BIND:]HPORT:GUEST:GPORT`"},
	&cli.StringFlag{Name: "X", Usage: "let a guest show X11 windows on the host's display: `GUEST[:DISPLAY[.SCREEN]]`"},
	&cli.StringFlag{Name: "x", Usage: "forward guests' connections to the router's port PORT to a Unix socket: `PORT:PATH`"},
	&cli.StringFlag{Name: "tftp", Aliases: []string{"t"}, Usage: "serve `DIR` read-only by TFTP at the router's address"},
	&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing about the configuration at start"},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
	&cli.StringFlag{Name: "netaddr", Usage: "the router's address `ADDR[/LEN]` (as --host)"},
	&optionalArgFlag{cli.BoolFlag{Name: "ipv6", Aliases: []string{"6"}, Usage: "route IPv6 too, on `PREFIX/64` (default fd00::/64)"}},
	&cli.BoolFlag{Name: "no-host-loopback", Usage: "guests reach nothing on the host's loopback, at the router's address or elsewhere"},
	&cli.StringFlag{Name: "bootfile", Usage: "the boot `FILE` DHCP names (with -t)"},
	&cli.BoolFlag{Name: "reconnect", Usage: "when the switch goes away, dial it again instead of exiting"},
	&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on `ADDR`: a TCP host:port (keep it on loopback) or a Unix socket path"},
}

// slirpvdeUsage is Debian slirpvde's usage text (spec §1), then our additions.
const slirpvdeUsage = "Usage:\n" +
	" slirpvde [-socket vdesock] [-dhcp] [-daemon] [-network netaddr] \n" +
	"\t [-L host_port:guest_addr:guest_port] [-X guest_addr[:display[.screen]]] \n" +
	"\t [-x portno:unix_socket_path]\n" +
	" slirpvde [-s vdesock] [-D] [-d] [-n netaddr]\n" +
	"\t [-L host_port:guest_addr:guest_port] [-X guest_addr[:display[.screen]]] \n" +
	"\t [-x portno:unix_socket_path]\n" +
	"This tool includes software developed by Danny Gasparovski.\n" +
	"\n" +
	"More options of this slirpvde:\n" +
	"  -s -                      frames on stdin/stdout (dpipe vde_plug = ssh host slirpvde -)\n" +
	"  --dhcp[=ADDR]             DHCP server, leases from ADDR (default network+15)\n" +
	"  -H|--host|--netaddr ADDR[/LEN]  router address; a network address means network+2\n" +
	"  -N|--dns ADDR             DNS address given by DHCP (default network+3)\n" +
	"  -L [BIND:]HPORT:GUEST:GPORT, -U ...  TCP/UDP port forwarding (BIND default 0.0.0.0)\n" +
	"  -t|--tftp DIR             read-only TFTP server at the router address\n" +
	"  --bootfile FILE           boot file named by DHCP (with -t)\n" +
	"  -6|--ipv6[=PREFIX/64]     IPv6 router on PREFIX (default fd00::/64)\n" +
	"  --no-host-loopback        guests cannot reach the host's loopback at the router\n" +
	"  --reconnect               when the switch goes away, do not exit: dial it again\n" +
	"                            (every 0.1 s, backing off to 5 s) and go on once it is\n" +
	"                            back; the guests' connections stay open meanwhile\n" +
	"  --metrics ADDR            Prometheus metrics (flows, leases, DNS queries, refusals)\n" +
	"                            on ADDR: host:port (keep it on loopback) or a socket path\n" +
	"  -p FILE, -d, -m MODE, -g GROUP, --port N, -q\n"

// slirpvdeArgs is a parsed slirpvde command line.
type slirpvdeArgs struct {
	cfg     slirp.Config
	sock    string
	pidfile string
	daemon  bool
	quiet   bool
	open    wire.OpenOptions
	x11     []string
	metrics string // --metrics ADDR
	// badForwards are -L/-U/-x specs that did not parse: the C tool says so and goes on.
	badForwards []string
}

// parseSlirpvdeArgs parses args; a usage error is a *parseExit with status 255.
func parseSlirpvdeArgs(args []string) (*slirpvdeArgs, error) {
	usage := func(msg string) error {
		return &parseExit{Code: 255, Stderr: msg + slirpvdeUsage}
	}
	a := &slirpvdeArgs{cfg: slirp.DefaultConfig(), open: wire.OpenOptions{Description: "slirpvde:"}}
	r := getoptLongOnly(slirpvdeFlags, args)
	var host, dns, dhcpStart, ipv6 string
	for _, ev := range r.Opts {
		if ev.Err != "" {
			return nil, usage("slirpvde: " + ev.Err + "\n")
		}
		switch ev.Name {
		case "socket":
			a.sock = ev.Value
		case "pidfile":
			a.pidfile = ev.Value
		case "daemon":
			a.daemon = true
		case "dhcp":
			a.cfg.DHCP = true
			if ev.Value != "" {
				dhcpStart = ev.Value
			}
		case "host", "network", "netaddr":
			host = ev.Value
		case "dns":
			dns = ev.Value
		case "mod":
			m, err := strconv.ParseUint(ev.Value, 8, 32)
			if err != nil {
				return nil, usage(fmt.Sprintf("slirpvde: invalid mode '%s'\n", ev.Value))
			}
			a.open.Mode = uint32(m)
		case "group":
			gid, err := wire.LookupGroup(ev.Value)
			if err != nil {
				return nil, usage(fmt.Sprintf("slirpvde: no such group '%s'\n", ev.Value))
			}
			a.open.Group, a.open.HasGroup = gid, true
		case "port":
			n, err := strconv.Atoi(ev.Value)
			if err != nil || n < 0 {
				return nil, usage(fmt.Sprintf("slirpvde: invalid port '%s'\n", ev.Value))
			}
			a.open.Port = n
		case "L", "U":
			f, err := slirp.ParseForward(ev.Value, ev.Name == "U")
			if err != nil {
				proto := "TCP"
				if ev.Name == "U" {
					proto = "UDP"
				}
				a.badForwards = append(a.badForwards, fmt.Sprintf("redir %s syntax error: %v", proto, err))
				continue
			}
			a.cfg.Forwards = append(a.cfg.Forwards, f)
		case "x":
			u, err := slirp.ParseUnixForward(ev.Value)
			if err != nil {
				a.badForwards = append(a.badForwards, "Error: tcp2unix redirection sytax error -x port:path e.g. -x 6000:/tmp/.X11-unix/X0")
				continue
			}
			a.cfg.UnixForwards = append(a.cfg.UnixForwards, u)
		case "X":
			if _, _, _, err := slirp.ParseX11(ev.Value); err != nil {
				a.badForwards = append(a.badForwards, fmt.Sprintf("redir X syntax error: %v", err))
				continue
			}
			a.x11 = append(a.x11, ev.Value)
		case "tftp":
			a.cfg.TFTPDir = ev.Value
		case "bootfile":
			a.cfg.BootFile = ev.Value
		case "quiet":
			a.quiet = true
		case "help":
			return nil, usage("")
		case "ipv6":
			a.cfg.IPv6 = true
			ipv6 = ev.Value
		case "no-host-loopback":
			a.cfg.NoHostLoopback = true
		case "reconnect":
			a.open.Reconnect = true
		case "metrics":
			a.metrics = ev.Value
		}
	}
	switch len(r.Operands) {
	case 0:
	case 1:
		a.sock = r.Operands[0]
	default:
		return nil, usage("")
	}
	if host != "" {
		if err := a.cfg.SetHost(host, dns != "", dhcpStart != ""); err != nil {
			return nil, usage(fmt.Sprintf("slirpvde: -H %v\n", err))
		}
	}
	if dns != "" {
		ip, err := slirp.ParseAddr(dns)
		if err != nil || !ip.Is4() {
			return nil, usage(fmt.Sprintf("slirpvde: -N %s: not an IPv4 address\n", dns))
		}
		a.cfg.DNS = ip
	}
	if dhcpStart != "" {
		ip, err := slirp.ParseAddr(dhcpStart)
		if err != nil || !ip.Is4() {
			return nil, usage(fmt.Sprintf("slirpvde: --dhcp=%s: not an IPv4 address\n", dhcpStart))
		}
		a.cfg.DHCPStart = ip
	}
	if ipv6 != "" {
		if err := a.cfg.SetHost6(ipv6); err != nil {
			return nil, usage(fmt.Sprintf("slirpvde: --ipv6: %v\n", err))
		}
	}
	if a.cfg.TFTPDir != "" {
		if abs, err := filepath.Abs(a.cfg.TFTPDir); err == nil {
			a.cfg.TFTPDir = abs // the daemon leaves its start directory
		}
	}
	if a.pidfile != "" {
		if abs, err := filepath.Abs(a.pidfile); err == nil {
			a.pidfile = abs
		}
	}
	if a.sock == "-" {
		a.quiet = true
	}
	return a, nil
}

// SlirpvdeProcessors gives a daemonised slirpvde (-d: the re-executed process, in a
// session of its own) half the processors, at least one, for the switch's reason
// (SwitchProcessors): the kernel's autogroups weigh a session as one, and the runtime's
// spare threads then share the router's weight with the one moving packets. On 2 CPUs,
// with a -d switch and a guest's TAP, iperf3 ran at 2.1-3.0 Gbit/s host→guest with both
// processors and 2.8-3.3 with one (median 2.3 → 3.2), guest→host 2.6 → 3.3. In the
// foreground, sharing its session with the switch and the guest, one processor was no
// better (host→guest 2.6-3.1 against 3.3), so there it keeps the runtime's default.
func SlirpvdeProcessors(def int) int {
	if _, daemon := os.LookupEnv(slirpvdeDaemon.ReadyEnv); daemon {
		return max(1, def/2)
	}
	return def
}

// slirpvdeDaemon is how slirpvde -d daemonizes (daemon.go).
var slirpvdeDaemon = daemonSpec{Name: "slirpvde", ReadyEnv: "_VDE_SLIRPVDE_DAEMON_READY_FD"}

// SlirpvdeMain is slirpvde: a user-mode router with DHCP, DNS and NAT on one switch port.
func SlirpvdeMain(ctx context.Context, args []string, stdio Stdio) error {
	ready := slirpvdeDaemon.takeReadyFile()
	a, err := parseSlirpvdeArgs(args)
	if err != nil {
		return parseFailure(err, stdio)
	}
	if a.daemon && ready == nil {
		return slirpvdeDaemon.spawn(args, stdio)
	}
	// What goes wrong with one flow later on goes to stderr, or to syslog for a daemon
	// (start-up errors are printed directly: the starter shows the daemon's stderr).
	logf := func(format string, args ...any) {
		fmt.Fprintf(stdio.Err, "slirpvde: "+format+"\n", args...)
	}
	if ready != nil {
		logf = syslogLogger("slirpvde", "slirpvde started")
	}
	for _, msg := range a.badForwards {
		fmt.Fprintln(stdio.Err, msg)
	}

	a.open.Logf = logf // a Redial's lost and reconnected lines
	// From our switch, a guest's TSO packets then come whole (a switch that is not ours
	// refuses the request, and the router gets plain frames as before).
	a.open.Offload = true
	var ep wire.Endpoint
	if a.sock == "-" {
		ep = wire.NewStream(stdio.In, stdio.Out, nil)
	} else {
		ep, err = wire.Open(a.sock, a.open)
		if err != nil {
			fmt.Fprintf(stdio.Err, "slirpvde: Could not connect to the VDE switch at '%s': %s\n", a.sockName(), connectError(err))
			return exit(1)
		}
	}
	a.cfg.Logf = logf
	router, err := slirp.New(a.cfg)
	if err != nil {
		ep.Close()
		fmt.Fprintf(stdio.Err, "slirpvde: %v\n", err)
		return exit(1)
	}
	defer router.Close()
	if a.metrics != "" {
		reg, err := metrics.NewRegistry(slirp.NewCollector(router))
		var srv *metrics.Server
		if err == nil {
			srv, err = metrics.Listen(a.metrics, reg, logf)
		}
		if err != nil {
			ep.Close()
			fmt.Fprintf(stdio.Err, "slirpvde: %v\n", err)
			return exit(1)
		}
		defer srv.Close()
	}
	forwards, errs := router.StartForwards()
	for _, err := range errs {
		fmt.Fprintf(stdio.Err, "slirpvde: %v\n", err)
	}
	x11 := a.startX11(router, stdio)
	if !a.quiet {
		a.banner(stdio.Err, forwards, x11)
	}
	if a.pidfile != "" {
		if err := writePidFile(a.pidfile); err != nil {
			fmt.Fprintf(stdio.Err, "slirpvde: pidfile %s: %s\n", a.pidfile, strerror(err))
			ep.Close()
			return exit(1)
		}
		defer removePidFile(a.pidfile)
	}
	if ready != nil {
		signalReady(ready)
		os.Chdir("/")
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	signal.Ignore(syscall.SIGPIPE)
	done := make(chan error, 1)
	go func() { done <- router.Run(ep) }()
	select {
	case err = <-done:
	case <-sigs:
		router.Close()
		waitRun(done)
		return nil
	case <-ctx.Done():
		router.Close()
		waitRun(done)
		return nil
	}
	if err != nil && a.sock == "-" && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return nil // stream mode ends at EOF on stdin
	}
	if err == nil {
		if cn, ok := ep.(wire.ClosedNotifier); ok {
			select {
			case <-cn.Closed():
				err = wire.CloseReason(ep)
			default:
			}
		}
	}
	if errors.Is(err, wire.ErrPeerClosed) {
		// Status 0, as Debian's slirpvde when its switch goes away; but say so (a daemon
		// says it to syslog).
		logf("%v", err)
		return nil
	}
	if err != nil {
		fmt.Fprintf(stdio.Err, "slirpvde: %v\n", err)
		return exit(1)
	}
	return nil
}

// waitRun gives the router's reader a moment to end: a read of stdin (stream mode)
// cannot be interrupted, and the process is about to exit anyway.
func waitRun(done <-chan error) {
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// sockName is the switch as the messages name it.
func (a *slirpvdeArgs) sockName() string {
	if a.sock == "" {
		return "*DEFAULT*"
	}
	return a.sock
}

// connectError is the reason a connection failed, as strerror words when it is an errno.
func connectError(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return strerror(errno)
	}
	return err.Error()
}

// startX11 forwards the first free host port from 6000 on to each -X guest's display.
func (a *slirpvdeArgs) startX11(r *slirp.Router, stdio Stdio) []string {
	var lines []string
	for _, spec := range a.x11 {
		guest, display, screen, _ := slirp.ParseX11(spec)
		ok := false
		for port := 6000; port <= 6100 && !ok; port++ {
			f := slirp.Forward{HostPort: uint16(port), Guest: guest, GuestPort: uint16(6000 + display)}
			if r.AddForward(f) == nil {
				ok = true
				lines = append(lines, fmt.Sprintf("%s:%d.%d (host display :%d)", guest, display, screen, port-6000))
			}
		}
		if !ok {
			fmt.Fprintf(stdio.Err, "slirpvde: -X %s: no free port in 6000-6100\n", spec)
		}
	}
	return lines
}

// banner prints the C tool's start-up lines (spec §1.2).
func (a *slirpvdeArgs) banner(w io.Writer, forwards []slirp.Forward, x11 []string) {
	const pad = "                   "
	var b strings.Builder
	fmt.Fprintf(&b, "Starting slirpvde: virtual_host=%s\n", a.cfg.Host)
	fmt.Fprintf(&b, "%sDNS         =%s\n", pad, a.cfg.DNS)
	if a.cfg.DHCP {
		fmt.Fprintf(&b, "%sdhcp_start  =%s\n", pad, a.cfg.DHCPStart)
	}
	if a.cfg.TFTPDir != "" {
		fmt.Fprintf(&b, "%stftp prefix =%s\n", pad, a.cfg.TFTPDir)
	}
	if a.cfg.IPv6 {
		fmt.Fprintf(&b, "%sIPv6 host   =%s\n", pad, a.cfg.Host6)
		fmt.Fprintf(&b, "%sIPv6 DNS    =%s\n", pad, a.cfg.DNS6)
	}
	fmt.Fprintf(&b, "%svde switch  =%s\n", pad, a.sockName())
	for _, f := range forwards {
		proto := "TCP"
		if f.UDP {
			proto = "UDP"
		}
		fmt.Fprintf(&b, "%sredir %s   =%s\n", pad, proto, f)
	}
	for _, u := range a.cfg.UnixForwards {
		fmt.Fprintf(&b, "%sredir unix  =%d:%s\n", pad, u.Port, u.Path)
	}
	for _, x := range x11 {
		fmt.Fprintf(&b, "%sredir X     =%s\n", pad, x)
	}
	io.WriteString(w, b.String())
}
