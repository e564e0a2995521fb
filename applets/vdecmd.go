package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

func init() {
	register(Applet{Name: "vdecmd", Aliases: []string{"unixcmd"}, Main: VdecmdMain})
}

// vdecmdFlags are unixcmd's options (getopt_long "f:s:v", spec §3.3).
var vdecmdFlags = []cli.Flag{
	&cli.StringFlag{Name: "rcfile", Aliases: []string{"f"}, Usage: "the C tool's script `FILE` (accepted and ignored: no script is needed)"},
	&cli.StringFlag{Name: "sock", Aliases: []string{"s"}, Usage: "the switch's management `SOCKET` (default /var/run/vdecmd, or /var/run/unixcmd as unixcmd)"},
	&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show the session on standard error"},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
}

// vdecmdProgName is the name the tool was called by, from which the C tool derives its
// default socket /var/run/NAME.
func vdecmdProgName() string {
	for i, a := range os.Args {
		if i > 1 {
			break
		}
		if b := filepath.Base(a); b == "unixcmd" || b == "vdecmd" {
			return b
		}
	}
	return "vdecmd"
}

func vdecmdUsage(prog string) string {
	return fmt.Sprintf("Usage: %[1]s OPTIONS command\n"+
		"\t-s sockname  management socket path (default is /var/run/%[1]s)\n"+
		"\t-f rcfile    configuration path (ignored: no script is needed)\n"+
		"\t-v           show the session on standard error\n"+
		"Runs one command: its data lines go to standard output; the exit status is the\n"+
		"switch's errno (0 for 1000 Success, 22 for 1022 Invalid argument), 255 when the\n"+
		"switch cannot be asked.\n", prog)
}

// VdecmdMain is vdecmd (and unixcmd): it runs one management command. What the C tool's
// script meant to do (spec §3.3): the data lines on stdout, exit status = reply code -
// 1000. Debian's prints a NUL after every line and always exits 255.
func VdecmdMain(ctx context.Context, args []string, stdio Stdio) error {
	prog := vdecmdProgName()
	r := getoptLongOnly(vdecmdFlags, args)
	sock := "/var/run/" + prog
	verbose := false
	for _, ev := range r.Opts {
		if ev.Err != "" {
			fmt.Fprintf(stdio.Err, "%s: %s\n%s", prog, ev.Err, vdecmdUsage(prog))
			return exit(255)
		}
		switch ev.Name {
		case "sock":
			sock = ev.Value
		case "verbose":
			verbose = true
		case "help":
			io.WriteString(stdio.Out, vdecmdUsage(prog))
			return nil
		}
	}
	if len(r.Operands) == 0 {
		io.WriteString(stdio.Err, vdecmdUsage(prog))
		return exit(255)
	}
	cmd := strings.Join(r.Operands, " ")
	if strings.ContainsAny(cmd, "\r\n") {
		fmt.Fprintf(stdio.Err, "%s: a command is one line\n", prog)
		return exit(255)
	}
	conn, err := dialMgmt(sock)
	if err != nil {
		fmt.Fprintf(stdio.Err, "%s: connect %s: %s\n", prog, sock, strerror(err))
		return exit(255)
	}
	defer conn.Close()
	var trace io.Writer = io.Discard
	if verbose {
		trace = stdio.Err
	}
	st, err := vdecmdRun(ctx, conn, cmd, stdio.Out, trace)
	if err != nil {
		fmt.Fprintf(stdio.Err, "%s: %s: %v\n", prog, sock, err)
		return exit(255)
	}
	if st.Code != 1000 && st.Code != 9999 {
		fmt.Fprintf(stdio.Err, "%s: %s: %s\n", prog, cmd, st.Text)
	}
	return vdecmdStatus(st.Code)
}

// vdecmdStatus turns a reply code into the exit status.
func vdecmdStatus(code int) error {
	switch {
	case code == 1000 || code == 9999: // 9999: logout or shutdown did what they say
		return nil
	case code > 1000 && code < 1255:
		return exit(code - 1000)
	}
	return exit(255)
}

// vdecmdRun waits for the prompt, sends cmd and copies the data lines of the answer to
// out; it returns the status line (or the end of session). trace sees all the switch
// sends.
func vdecmdRun(ctx context.Context, conn net.Conn, cmd string, out, trace io.Writer) (mgmtEvent, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sw := newMgmtReader(ctx, conn)
	var p mgmtParser
	timer := time.NewTimer(mgmtBannerWait)
	defer timer.Stop()
	sent := false
	var st mgmtEvent
	for eof := false; !eof; {
		var evs []mgmtEvent
		select {
		case b, ok := <-sw.chunks:
			if !ok {
				evs, eof = p.Close(), true
				break
			}
			trace.Write(b)
			evs = p.Feed(b)
		case <-timer.C:
			if !sent {
				return st, fmt.Errorf("no prompt in %v (not a management socket?)", mgmtBannerWait)
			}
			return st, nil // answered, but no prompt after the status line
		case <-ctx.Done():
			return st, ctx.Err()
		}
		for _, ev := range evs {
			switch {
			case !sent && ev.Kind == mgmtPrompt:
				fmt.Fprintf(trace, "%s\n", cmd)
				if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
					return st, err
				}
				sent = true
				timer.Stop()
			case !sent:
			case ev.Kind == mgmtData:
				if _, err := fmt.Fprintln(out, ev.Text); err != nil {
					return st, err
				}
			case ev.Kind == mgmtStatus && st.Code == 0:
				st = ev
				// The prompt follows the status line: wait for it, but not long.
				timer.Reset(time.Second)
			case ev.Kind == mgmtEnd:
				return ev, nil
			case ev.Kind == mgmtPrompt && st.Code != 0:
				return st, nil
			}
		}
	}
	if st.Code != 0 {
		return st, nil
	}
	if !sent {
		return st, errors.New("hung up before any prompt (not a management socket?)")
	}
	return st, errors.New("the switch hung up before answering")
}
