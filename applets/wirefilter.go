package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/impair"
	"github.com/vde-go/vde/switchcore/wire"
)

func init() {
	register(Applet{Name: "wirefilter", Aliases: []string{"vde_wirefilter"}, Main: WirefilterMain})
}

// wirefilterFlags are wirefilter's options in the order of the C tool's long option
// table (Debian's build parses them with getopt_long_only: "-x" is an "unrecognized
// option '-x'"); --seed is ours.
var wirefilterFlags = []cli.Flag{
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
	&cli.StringFlag{Name: "rcfile", Aliases: []string{"f"}, Usage: "run the console commands of `FILE` before the first frame"},
	&cli.StringFlag{Name: "loss", Aliases: []string{"l"}, Usage: "lose `PERCENT` of the frames (see VALUES)"},
	&cli.StringFlag{Name: "lostburst", Aliases: []string{"L"}, Usage: "lose frames in bursts of mean `LENGTH` (Gilbert model; 0: no bursts)"},
	&cli.StringFlag{Name: "delay", Aliases: []string{"d"}, Usage: "delay each frame by `MS` milliseconds more"},
	&cli.StringFlag{Name: "dup", Aliases: []string{"D"}, Usage: "send `PERCENT` of the frames twice (less than 100)"},
	&cli.StringFlag{Name: "band", Aliases: []string{"b"}, Usage: "channel bandwidth in `BYTES` per second: frames wait in the channel"},
	&cli.StringFlag{Name: "speed", Aliases: []string{"s"}, Usage: "interface speed in `BYTES` per second: the sender waits out each frame's transmission"},
	&cli.StringFlag{Name: "chanbufsize", Aliases: []string{"c", "capacity"}, Usage: "the channel queues at most `BYTES`; frames beyond are dropped"},
	&cli.StringFlag{Name: "noise", Aliases: []string{"n"}, Usage: "damage `BITS` bits per megabyte"},
	&cli.StringFlag{Name: "mtu", Aliases: []string{"m"}, Usage: "drop frames longer than `BYTES`"},
	&cli.BoolFlag{Name: "nofifo", Aliases: []string{"N"}, Usage: "frames may overtake each other (reordering)"},
	&cli.StringFlag{Name: "mgmt", Aliases: []string{"M"}, Usage: "a management console on the Unix socket `SOCKET` (unixterm, vdeterm)"},
	&cli.StringFlag{Name: "mgmtmode", Usage: "octal permission `MODE` of the management socket"},
	&cli.StringFlag{Name: "vde-plug", Aliases: []string{"v"}, Usage: "cable two plugs `URL1:URL2` instead of stdin and stdout (the console is then on stdin)"},
	&cli.BoolFlag{Name: "daemon", Usage: "run in the background"},
	&cli.StringFlag{Name: "pidfile", Usage: "write the process id to `PIDFILE`"},
	&cli.StringFlag{Name: "blink", Usage: "report each frame (direction and length) to the datagram socket `SOCKET`"},
	&cli.StringFlag{Name: "blinkid", Usage: "the `ID` that starts each --blink report"},
	&cli.StringFlag{Name: "seed", Usage: "seed the random choices with `N`, so that they repeat"},
}

// wirefilterUsage is the C tool's usage text (exit status 1), with our --seed.
const wirefilterUsage = `Usage: wirefilter OPTIONS
	--help|-h
	--rcfile|-f Configuration file
	--loss|-l loss_percentage
	--lostburst|-L lost_packet_burst_len
	--delay|-d delay_ms
	--dup|-D dup_percentage
	--band|-b bandwidth(bytes/s)
	--speed|-s interface_speed(bytes/s)
	--chanbufsize|-c channel_bufsize
	--noise|-n noise_bits/megabye
	--mtu|-m mtu_size
	--nofifo|-N
	--mgmt|-M management_socket
	--mgmtmode management_permission(octal)
	--vde-plug plug1:plug2 | -v plug1:plug2
	--daemon
	--pidfile pidfile
	--blink blinksocket
	--blinkid blink_id_string
	--seed seed (the random choices repeat for a seed)
`

// wirefilterDaemon is how --daemon daemonizes: ready once the plugs and the management
// socket are open.
var wirefilterDaemon = daemonSpec{Name: "wirefilter", ReadyEnv: "_VDE_WIREFILTER_DAEMON_READY_FD"}

// wirefilterValue is one -l, -d, ... option, applied in command-line order.
type wirefilterValue struct {
	param impair.Param
	set   impair.Setting
}

// wirefilterOptions is a parsed wirefilter command line.
type wirefilterOptions struct {
	Values   []wirefilterValue
	NoFIFO   bool
	RCFile   string
	Mgmt     string
	MgmtMode uint32
	// Plugs are -v's two sides (nil without -v); "-" is the stream on stdin/stdout.
	Plugs   []string
	Daemon  bool
	PidFile string
	Blink   string
	BlinkID string
	Seed    uint64
	HasSeed bool
}

var wirefilterParams = map[string]impair.Param{
	"loss": impair.Loss, "lostburst": impair.LostBurst, "delay": impair.Delay, "dup": impair.Dup,
	"band": impair.Band, "speed": impair.Speed, "chanbufsize": impair.ChanBufSize,
	"noise": impair.Noise, "mtu": impair.MTU,
}

// parseWirefilterArgs parses wirefilter's arguments; on a usage error it returns a
// *parseExit with the text and status of the C tool.
func parseWirefilterArgs(args []string, cwd string) (*wirefilterOptions, error) {
	usage := func(msg string) error {
		return &parseExit{Code: 1, Stderr: msg + wirefilterUsage}
	}
	o := &wirefilterOptions{MgmtMode: 0o700}
	res := getoptLongOnly(wirefilterFlags, args)
	for _, ev := range res.Opts {
		if ev.Err != "" {
			return nil, usage("wirefilter: " + ev.Err + "\n")
		}
		v := ev.Value
		if p, ok := wirefilterParams[ev.Name]; ok {
			st, err := impair.ParseValue(v, 1)
			switch {
			case errors.Is(err, impair.ErrNode):
				return nil, usage(fmt.Sprintf("wirefilter: --%s %s: the command line sets Markov node 0 only (set other nodes in an rc file, -f)\n", ev.Name, v))
			case err != nil:
				return nil, usage(fmt.Sprintf("wirefilter: --%s %s: not a value ([LR|RL]VALUE[+VAR][K|M|G][U|N])\n", ev.Name, v))
			}
			o.Values = append(o.Values, wirefilterValue{p, st})
			continue
		}
		switch ev.Name {
		case "help":
			return nil, usage("")
		case "rcfile":
			o.RCFile = v
		case "nofifo":
			o.NoFIFO = true
		case "mgmt":
			o.Mgmt = v
		case "mgmtmode":
			if m, ok := scanOctal(v); ok {
				o.MgmtMode = uint32(m)
			}
		case "vde-plug":
			a, b, ok := strings.Cut(v, ":")
			if !ok {
				return nil, usage("Bad vde_plugs specification.\n")
			}
			o.Plugs = []string{a, b}
		case "daemon":
			o.Daemon = true
		case "pidfile":
			o.PidFile = v
		case "blink":
			o.Blink = v
		case "blinkid":
			o.BlinkID = v
		case "seed":
			s, err := strconv.ParseUint(v, 0, 64)
			if err != nil {
				return nil, usage(fmt.Sprintf("wirefilter: --seed %s: not a number\n", v))
			}
			o.Seed, o.HasSeed = s, true
		}
	}
	if len(res.Operands) > 0 {
		return nil, usage("")
	}
	if o.RCFile != "" {
		// C silently starts without a configuration it cannot read.
		fh, err := os.Open(o.RCFile)
		if err != nil {
			return nil, &parseExit{Code: 1, Stderr: fmt.Sprintf("wirefilter: rc file %s: %s\n", o.RCFile, strerror(err))}
		}
		fh.Close()
	}
	if o.PidFile != "" && !filepath.IsAbs(o.PidFile) {
		o.PidFile = filepath.Join(cwd, o.PidFile)
	}
	return o, nil
}

// WirefilterMain is wirefilter: it joins two switches (-v A:B) or a stream on
// stdin/stdout through an impaired link.
func WirefilterMain(ctx context.Context, args []string, stdio Stdio) error {
	ready := wirefilterDaemon.takeReadyFile()
	cwd, _ := os.Getwd()
	o, err := parseWirefilterArgs(args, cwd)
	if err != nil {
		return parseFailure(err, stdio)
	}
	if o.Daemon && ready == nil {
		return wirefilterDaemon.spawn(args, stdio)
	}
	return runWirefilter(ctx, o, stdio, ready)
}

// isStream reports whether f can carry a frame stream: C insists on a pipe; a socket
// (dpipe may use socketpairs) works as well.
func isStream(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return true // an in-process test's reader or writer
	}
	fi, err := file.Stat()
	if err != nil {
		return false
	}
	m := fi.Mode()
	return m&os.ModeNamedPipe != 0 || m&os.ModeSocket != 0
}

func runWirefilter(ctx context.Context, o *wirefilterOptions, stdio Stdio, ready *os.File) error {
	daemon := ready != nil
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	signal.Ignore(ignoredSignals...)

	stderr := &lockedWriter{w: stdio.Err}
	toStderr := func(format string, args ...any) {
		fmt.Fprintf(stderr, "wirefilter: "+format+"\n", args...)
	}
	// report is for start-up failures, which the user must see also from the daemon
	// (whose stderr is the starting process's pipe until it is ready).
	logf, report := toStderr, toStderr
	if daemon {
		syslogf := syslogLogger("wirefilter", "WIREFILTER started")
		report = func(format string, args ...any) {
			toStderr(format, args...)
			syslogf(format, args...)
		}
		logf = syslogf
	}
	usageFail := func(msg string) error {
		io.WriteString(stdio.Err, msg+wirefilterUsage)
		return exit(1)
	}

	// The sides: vde plugs, or the stream on stdin/stdout ("-" or no -v at all).
	var eps [2]wire.Endpoint
	closeAll := func() {
		for _, e := range eps {
			if e != nil {
				e.Close()
			}
		}
	}
	bidir := true
	console := false
	if o.Plugs != nil {
		for i, p := range o.Plugs {
			if p == "-" {
				continue
			}
			e, err := wire.Open(p, wire.OpenOptions{Description: "vde_crosscable"})
			if err != nil {
				closeAll()
				return usageFail(fmt.Sprintf("vdeplug %s: %s\n", p, openErrorText(err)))
			}
			eps[i] = e
		}
	}
	if eps[0] == nil || eps[1] == nil {
		if !isStream(stdio.In) {
			closeAll()
			return usageFail("wirefilter: Error on stdin: it is not a pipe\n")
		}
		if !isStream(stdio.Out) {
			closeAll()
			return usageFail("wirefilter: Error on stdout: it is not a pipe\n")
		}
		switch {
		case eps[0] == nil && eps[1] == nil && o.Plugs == nil:
			// dpipe's middle: stdin and stdout to the left, ALTERNATE_STDIN and
			// ALTERNATE_STDOUT to the right; a plain pipe: stdin to stdout only.
			eps[0] = wire.NewStream(stdio.In, stdio.Out, nil)
			altIn, altOut := altFile("ALTERNATE_STDIN"), altFile("ALTERNATE_STDOUT")
			if altIn != nil && altOut != nil {
				eps[1] = wire.NewStream(altIn, altOut, func() error { altIn.Close(); return altOut.Close() })
			} else {
				bidir = false
				eps[0] = wire.NewStream(stdio.In, io.Discard, nil)
				eps[1] = wire.NewStream(strings.NewReader(""), stdio.Out, nil)
			}
		case eps[0] == nil && eps[1] == nil:
			closeAll()
			return usageFail("wirefilter: -v -:-: at most one side can be the stream on stdin/stdout\n")
		case eps[0] == nil:
			eps[0] = wire.NewStream(stdio.In, stdio.Out, nil)
		default:
			eps[1] = wire.NewStream(stdio.In, stdio.Out, nil)
		}
	} else if !daemon {
		console = true
	}
	defer closeAll()

	cfg := impair.Config{Bidirectional: bidir, Seed: o.Seed, HasSeed: o.HasSeed}
	var info impair.Info
	if o.Blink != "" {
		id := o.BlinkID
		if id == "" {
			id = fmt.Sprintf("%06d", os.Getpid())
		}
		blink, err := newBlinker(o.Blink, id, bidir)
		if err != nil {
			report("blink socket %s: %v", o.Blink, err)
			return exit(1)
		}
		defer blink.Close()
		cfg.Blink = blink.send
		info = impair.Info{BlinkPath: o.Blink, BlinkID: id + " "}
	}
	f := impair.New(cfg)
	defer f.Close()
	f.SetInfo(info)
	for _, v := range o.Values {
		f.Store(v.param, v.set)
	}
	if o.NoFIFO {
		f.SetFIFO(false)
	}
	if o.RCFile != "" {
		rc := f.NewSession(nil)
		rc.Logf = logf
		if rc.RunScript(o.RCFile) == -2 {
			return nil // shutdown in the rc file
		}
	}
	// The management socket, with C's limit on sessions (its poll table has 8 slots).
	ended := make(chan error, 4)
	if o.Mgmt != "" {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: o.Mgmt, Net: "unix"})
		if err != nil {
			report("mgmt bind %s: %s", o.Mgmt, strerror(err))
			return exit(1)
		}
		ln.SetUnlinkOnClose(true)
		os.Chmod(o.Mgmt, os.FileMode(o.MgmtMode))
		defer ln.Close()
		slots := 8 - 2 - 1
		for _, e := range eps {
			if _, ok := e.(*wire.Stream); !ok {
				slots-- // a plug's control fd
			}
		}
		if console {
			slots--
		}
		go serveWirefilterMgmt(ln, f, slots, logf, ended)
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile); err != nil {
			report("Error in pidfile creation: %s", strerror(err))
			return exit(1)
		}
		defer func() {
			if err := removePidFile(o.PidFile); err != nil {
				logf("Couldn't remove pidfile '%s': %s", o.PidFile, strerror(err))
			}
		}()
	}
	if ready != nil {
		signalReady(ready)
		os.Chdir("/")
	}
	switch {
	case o.Plugs != nil:
		name := func(p string) string {
			if p == "" {
				return "DEFAULT_SWITCH"
			}
			return p
		}
		logf("bidirectional vdeplug filter L=%s R=%s starting...", name(o.Plugs[0]), name(o.Plugs[1]))
	case bidir:
		logf("bidirectional filter starting...")
	default:
		logf("monodirectional filter starting...")
	}

	if console {
		go func() {
			s := f.NewSession(stdio.Out)
			ended <- s.Serve(stdio.In)
		}()
	}
	for _, e := range eps {
		if cn, ok := e.(wire.ClosedNotifier); ok {
			go func() { <-cn.Closed(); ended <- wire.CloseReason(e) }()
		}
	}
	go func() { ended <- f.Run(eps[0], eps[1]) }()

	select {
	case err := <-ended:
		switch {
		case err == nil, errors.Is(err, io.EOF), errors.Is(err, impair.ErrLogout), errors.Is(err, impair.ErrShutdown):
			return nil
		case errors.Is(err, wire.ErrPeerClosed):
			logf("%v", err)
			return nil
		default:
			logf("%v", err)
			return exit(1)
		}
	case <-sigs:
		return nil
	case <-ctx.Done():
		return nil
	}
}

// altFile opens the descriptor an environment variable names (dpipe's ALTERNATE_*).
func altFile(env string) *os.File {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return nil
	}
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), env)
}

// serveWirefilterMgmt accepts management sessions: each gets the banner and the prompt,
// then its commands' answers; logout closes it, shutdown ends the program.
func serveWirefilterMgmt(ln *net.UnixListener, f *impair.Filter, slots int, logf func(string, ...any), ended chan<- error) {
	var mu sync.Mutex
	open := 0
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		mu.Lock()
		if open >= slots {
			mu.Unlock()
			logf("too many mgmt connections")
			c.Close()
			continue
		}
		open++
		mu.Unlock()
		go func() {
			defer func() { mu.Lock(); open--; mu.Unlock() }()
			defer c.Close()
			fmt.Fprintf(c, "\nVDE wirefilter V.%s\n(C) vde-go authors 2026 - Apache-2.0, compatible with VDE2 by Virtual Square\n%s", Version, impair.Prompt)
			s := f.NewSession(c)
			if err := s.Serve(c); errors.Is(err, impair.ErrShutdown) {
				ended <- err
			}
		}()
	}
}

// blinker sends --blink's datagrams: "ID DIR SIZE\n" for every frame sent, SIZE
// counting the 2-byte length C's buffers carry, from an unbound datagram socket.
type blinker struct {
	fd   int
	addr unix.Sockaddr
	id   string
	mono bool
}

func newBlinker(path, id string, bidir bool) (*blinker, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return &blinker{fd: fd, addr: &unix.SockaddrUnix{Name: path}, id: id, mono: !bidir}, nil
}

func (b *blinker) send(d impair.Dir, size int) {
	var buf [128]byte
	m := append(buf[:0], b.id...)
	switch {
	case b.mono:
		m = append(m, " -- "...)
	case d == impair.LR:
		m = append(m, " LR "...)
	default:
		m = append(m, " RL "...)
	}
	m = strconv.AppendInt(m, int64(size+2), 10)
	m = append(m, '\n')
	unix.Sendto(b.fd, m, 0, b.addr) // like C's sendto, whose result nobody checks
}

func (b *blinker) Close() error { return unix.Close(b.fd) }
