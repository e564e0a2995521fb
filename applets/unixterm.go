package applets

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func init() {
	register(Applet{Name: "unixterm", Main: UnixtermMain})
}

// unixterm is Debian's unixterm: a relay between the user and a switch's management
// socket, on a terminal as on a pipe. The user sees the switch's banner, its "vde$ "
// prompt and the protocol text; the terminal's own line discipline echoes and edits
// what the user types. vdeterm (vdeterm.go) is the console with line editing, history
// and completion.

var mgmtTermFlags = []cli.Flag{
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "print the usage summary and exit"},
}

const unixtermUsage = "Usage: unixterm SOCKET\n" +
	"Connects to the management socket of a switch (vde_switch -M SOCKET) and relays\n" +
	"standard input to it, one line per prompt, and all the switch says to standard\n" +
	"output: its banner, its prompt and its answers as they are. On a terminal the\n" +
	"terminal edits the line; vdeterm is the console with history and Tab completion.\n"

// UnixtermMain is unixterm: the relay, on a terminal too.
func UnixtermMain(ctx context.Context, args []string, stdio Stdio) error {
	return mgmtTerm{prog: "unixterm", usage: unixtermUsage, onTTY: unixtermTTY}.main(ctx, args, stdio)
}

// unixtermTTY is the relay on a terminal, which stays as it is (echo, line editing, ^C):
// the screen is the one Debian's unixterm shows.
func unixtermTTY(ctx context.Context, conn net.Conn, sock string, in, out *os.File) error {
	return mgmtRelay(ctx, conn, in, out, false)
}

// mgmtTerm is the command line unixterm and vdeterm share: one operand, the socket.
type mgmtTerm struct {
	prog, usage string
	// onTTY runs the session when standard input and output are both a terminal; on
	// anything else the session is mgmtRelay.
	onTTY func(ctx context.Context, conn net.Conn, sock string, in, out *os.File) error
}

func (m mgmtTerm) main(ctx context.Context, args []string, stdio Stdio) error {
	r := getoptLongOnly(mgmtTermFlags, args)
	for _, ev := range r.Opts {
		if ev.Err != "" {
			fmt.Fprintf(stdio.Err, "%s: %s\n%s", m.prog, ev.Err, m.usage)
			return exit(255)
		}
		if ev.Name == "help" {
			io.WriteString(stdio.Out, m.usage)
			return nil
		}
	}
	if len(r.Operands) != 1 {
		io.WriteString(stdio.Err, m.usage)
		return exit(255)
	}
	sock := r.Operands[0]
	conn, err := dialMgmt(sock)
	if err != nil {
		fmt.Fprintf(stdio.Err, "%s: Socket connecting error: %s: %s\n", m.prog, sock, strerror(err))
		return exit(255)
	}
	defer conn.Close()
	in, inFile := stdio.In.(*os.File)
	out, outFile := stdio.Out.(*os.File)
	switch {
	case inFile && outFile && isTerminal(in) && isTerminal(out):
		err = m.onTTY(ctx, conn, sock, in, out)
	default:
		err = mgmtRelay(ctx, conn, stdio.In, stdio.Out, !outFile || !isTerminal(out))
	}
	var ee *ExitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	fmt.Fprintf(stdio.Err, "%s: %s: %v\n", m.prog, sock, err)
	return exit(1)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// mgmtRelay relays in to the switch and the switch to out, byte for byte. It sends one
// line at a time when the switch has prompted (or mgmtPaceWait has passed): Debian's
// switch takes what one read(2) of 128 bytes returns as one command, so two lines in one
// write would be one command. After in's EOF it waits for the answer to the last line,
// then hangs up; when the switch hangs up (logout, shutdown), everything it sent is
// printed and the relay returns nil. showEnd says whether that includes the switch's
// last words, "9999 END OF SESSION" (without a newline): kept on a pipe, for scripts;
// not shown on a terminal, where Debian's unixterm, which exits as soon as the switch
// hangs up, does not show it either, and the shell's prompt would follow it on its line.
func mgmtRelay(ctx context.Context, conn net.Conn, in io.Reader, out io.Writer, showEnd bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sw := newMgmtReader(ctx, conn)
	lines := make(chan []byte)
	go func() {
		defer close(lines)
		br := bufio.NewReader(in)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				if line[len(line)-1] != '\n' {
					line = append(line, '\n')
				}
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	var p mgmtParser
	ready := false // the switch prompted since the last line was sent
	stdinEOF := false
	var pending []byte
	pace := time.NewTimer(mgmtBannerWait)
	defer pace.Stop()
	for {
		if ready && pending != nil {
			if _, err := conn.Write(pending); err != nil {
				return err
			}
			pending, ready = nil, false
			pace.Reset(mgmtPaceWait)
		}
		if ready && stdinEOF {
			return nil
		}
		lineIn := lines
		if pending != nil || stdinEOF {
			lineIn = nil
		}
		select {
		case b, ok := <-sw.chunks:
			if !ok {
				return nil
			}
			show := b
			for _, ev := range p.Feed(b) {
				switch ev.Kind {
				case mgmtPrompt:
					ready = true
				case mgmtEnd:
					if !showEnd {
						show = bytes.TrimSuffix(show, []byte(mgmtEndSession))
					}
				}
			}
			if _, err := out.Write(show); err != nil {
				return err
			}
		case line, ok := <-lineIn:
			if !ok {
				stdinEOF = true
				continue
			}
			pending = line
		case <-pace.C:
			ready = true
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
