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

	"github.com/vde-go/vde/switchcore/capture"
)

func init() {
	register(Applet{Name: "capture", Main: CaptureMain})
}

// captureFlags are vde capture's options: its own, then those Wireshark's extcap
// interface passes (see switchcore/capture/extcap.go).
var captureFlags = []cli.Flag{
	&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "write the capture to `FILE` instead of standard output"},
	&cli.StringFlag{Name: "count", Aliases: []string{"c"}, Usage: "stop after `COUNT` frames (default: at SIGINT or SIGTERM)"},
	&cli.StringFlag{Name: "ring", Usage: "the switch holds up to `N` frames for a reader that is behind, and drops and counts the rest (default 1024)"},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
	&cli.BoolFlag{Name: "extcap-interfaces", Usage: "extcap: list the switches' management sockets found (in /run/vde2, /var/run/vde2 and /tmp, or named by VDE_CAPTURE_MGMT) and their active ports"},
	&cli.StringFlag{Name: "extcap-version", Usage: "extcap: the `VERSION` of Wireshark asking (accepted and ignored)"},
	&cli.StringFlag{Name: "extcap-interface", Usage: "extcap: the interface `IFACE` (vde:MGMT_SOCKET or vde:MGMT_SOCKET:PORT) the other extcap options are about"},
	&cli.BoolFlag{Name: "extcap-dlts", Usage: "extcap: list the interface's link types (Ethernet)"},
	&cli.BoolFlag{Name: "extcap-config", Usage: "extcap: list the interface's options (--ring)"},
	&cli.BoolFlag{Name: "capture", Usage: "extcap: capture the interface into --fifo until Wireshark stops it"},
	&cli.StringFlag{Name: "fifo", Usage: "extcap: the `FIFO` to write the capture to"},
	&cli.StringFlag{Name: "extcap-capture-filter", Usage: "extcap: a capture `FILTER` (not supported: refused unless empty)"},
}

const captureUsage = `Usage: vde capture [-w FILE] [-c COUNT] [--ring N] MGMT_SOCKET [PORT...]
  -w, --write FILE   write pcapng to FILE (default: standard output)
  -c, --count COUNT  stop after COUNT frames (default: at SIGINT or SIGTERM)
      --ring N       frames the switch holds for a slow reader (default 1024)
  -h, --help         print this help
Streams every frame the switch receives from and sends to the PORTs (all ports if
none) as pcapng, one interface per port, from a running switch's management socket
(vde_switch -M). Frames a slow reader has no room for are dropped and counted in the
capture. Wireshark: vde capture MGMT_SOCKET | wireshark -k -i -
Wireshark's extcap interface: --extcap-interfaces, --extcap-interface IFACE
  --extcap-dlts | --extcap-config | --capture --fifo FIFO  (make install-extcap)
`

// captureOpts is a parsed command line.
type captureOpts struct {
	file             string
	args             capture.Args
	mgmt             string
	interfaces, dlts bool
	config, doCap    bool
	iface, fifo      string
	filter           string
}

// parseCaptureArgs reads the command line; a message for the user is the error.
func parseCaptureArgs(argv []string) (o captureOpts, help bool, err error) {
	r := getoptLongOnly(captureFlags, argv)
	for _, ev := range r.Opts {
		if ev.Err != "" {
			return o, false, errors.New(ev.Err)
		}
		switch ev.Name {
		case "write":
			o.file = ev.Value
		case "count":
			n, err := strconv.ParseUint(ev.Value, 10, 64)
			if err != nil || n == 0 {
				return o, false, fmt.Errorf("-c %s: not a positive number", ev.Value)
			}
			o.args.Count = n
		case "ring":
			n, err := strconv.ParseUint(ev.Value, 10, 31)
			if err != nil || n == 0 || n > capture.MaxSlots {
				return o, false, fmt.Errorf("--ring %s: 1 to %d frames", ev.Value, capture.MaxSlots)
			}
			o.args.Slots = int(n)
		case "help":
			return o, true, nil
		case "extcap-interfaces":
			o.interfaces = true
		case "extcap-interface":
			o.iface = ev.Value
		case "extcap-dlts":
			o.dlts = true
		case "extcap-config":
			o.config = true
		case "capture":
			o.doCap = true
		case "fifo":
			o.fifo = ev.Value
		case "extcap-capture-filter":
			o.filter = ev.Value
		}
	}
	if o.interfaces || o.iface != "" || o.doCap {
		return o, false, o.checkExtcap(r.Operands)
	}
	if len(r.Operands) == 0 || r.Operands[0] == "" {
		return o, false, errors.New("no management socket")
	}
	o.mgmt = r.Operands[0]
	for _, p := range r.Operands[1:] {
		n, err := strconv.ParseUint(p, 10, 31)
		if err != nil {
			return o, false, fmt.Errorf("port %q: not a port number", p)
		}
		o.args.Ports = append(o.args.Ports, int(n))
	}
	return o, false, nil
}

// checkExtcap checks an extcap call: the interface it names, and what it asks for.
func (o *captureOpts) checkExtcap(operands []string) error {
	if len(operands) > 0 {
		return fmt.Errorf("extcap: unexpected %q", operands[0])
	}
	if o.interfaces {
		return nil
	}
	i, err := capture.ParseIface(o.iface)
	if err != nil {
		return err
	}
	o.mgmt = i.Mgmt
	if i.Port >= 0 {
		o.args.Ports = []int{i.Port}
	}
	if o.doCap && o.fifo == "" {
		return errors.New("extcap: --capture needs --fifo")
	}
	if !o.dlts && !o.config && !o.doCap {
		return errors.New("extcap: --extcap-interface with none of --extcap-dlts, --extcap-config, --capture")
	}
	return nil
}

// CaptureMain is `vde capture`: a switch's frames as pcapng, for tshark, Wireshark and
// files; and Wireshark's extcap program for VDE switches.
func CaptureMain(ctx context.Context, argv []string, stdio Stdio) error {
	o, help, err := parseCaptureArgs(argv)
	if help {
		io.WriteString(stdio.Out, captureUsage)
		return nil
	}
	if err != nil {
		fmt.Fprintf(stdio.Err, "vde capture: %v\n%s", err, captureUsage)
		return exit(2)
	}
	switch {
	case o.interfaces:
		return capture.WriteInterfaces(stdio.Out, capture.Discover(capture.SocketDirs, captureEnvSockets(), 2*time.Second))
	case o.dlts:
		return capture.WriteDLTs(stdio.Out)
	case o.config:
		return capture.WriteConfig(stdio.Out)
	case o.doCap && o.filter != "":
		fmt.Fprintf(stdio.Err, "vde capture: capture filters are not supported (%q)\n", o.filter)
		return exit(1)
	}
	out := stdio.Out
	target := "standard output"
	if o.doCap || o.file != "" {
		name := o.file
		if o.doCap {
			name = o.fifo
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0644)
		if err != nil {
			fmt.Fprintf(stdio.Err, "vde capture: %v\n", err)
			return exit(1)
		}
		defer f.Close()
		out, target = f, name
	}
	st, err := capture.Dial(o.mgmt, o.args)
	if err != nil {
		fmt.Fprintf(stdio.Err, "vde capture: %v\n", err)
		return exit(1)
	}
	defer st.Close()
	return captureCopy(ctx, st, out, target, stdio.Err)
}

// captureCopy copies the stream to out until the switch ends it. SIGINT, SIGTERM (how
// Wireshark stops an extcap) or ctx ask the switch to end it, which it does after the
// frames it holds and the statistics; a second signal stops at once.
func captureCopy(ctx context.Context, st *capture.Stream, out io.Writer, target string, errw io.Writer) error {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, st)
		done <- err
	}()
	asked := false
	for {
		select {
		case err := <-done:
			if err != nil {
				if errors.Is(err, syscall.EPIPE) {
					return nil // the reader (Wireshark, head) is gone: nothing more to say
				}
				fmt.Fprintf(errw, "vde capture: %s: %v\n", target, err)
				return exit(1)
			}
			return nil
		case <-sig:
			if asked {
				st.Close()
				return exit(130)
			}
			asked = true
			st.End()
		case <-ctx.Done():
			ctx = context.Background()
			asked = true
			st.End()
		}
	}
}

// captureEnvSockets are the management sockets VDE_CAPTURE_MGMT names (colon-separated),
// for switches whose sockets are elsewhere than where the extcap looks.
func captureEnvSockets() []string {
	var out []string
	for _, p := range filepath.SplitList(os.Getenv("VDE_CAPTURE_MGMT")) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
