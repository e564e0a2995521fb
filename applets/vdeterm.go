package applets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	register(Applet{Name: "vdeterm", Main: VdetermMain})
}

const vdetermUsage = "Usage: vdeterm SOCKET\n" +
	"Connects to the management socket of a switch (vde_switch -M SOCKET).\n" +
	"On a terminal: a console with line editing, history (Up/Down) and Tab completion.\n" +
	"Otherwise: a relay of standard input, one line per prompt, and of all the switch says.\n"

// VdetermMain is vdeterm: on a terminal the interactive console; on anything else the
// relay unixterm is.
func VdetermMain(ctx context.Context, args []string, stdio Stdio) error {
	return mgmtTerm{prog: "vdeterm", usage: vdetermUsage, onTTY: vdetermTTY}.main(ctx, args, stdio)
}

// termWidth is the terminal's width, 80 when it does not say.
func termWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

// vdetermTTY runs the console on a terminal in raw mode, and restores the terminal on
// every way out: return, panic, SIGTERM (exit 0, as vdeterm), SIGINT, SIGHUP and SIGQUIT
// (which then end the process as they would have).
func vdetermTTY(ctx context.Context, conn net.Conn, sock string, in, out *os.File) error {
	fd := int(in.Fd())
	saved, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	raw := *saved
	raw.Iflag &^= unix.ICRNL | unix.INLCR | unix.IGNCR | unix.IXON
	raw.Lflag &^= unix.ICANON | unix.ECHO | unix.ISIG | unix.IEXTEN
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETSF, &raw); err != nil {
		return fmt.Errorf("raw mode: %w", err)
	}
	restore := func() { unix.IoctlSetTermios(fd, unix.TCSETSW, saved) }
	defer restore()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGWINCH)
	defer signal.Stop(sigs)

	keys := make(chan []byte, 16)
	go func() {
		for {
			buf := make([]byte, 256)
			n, err := in.Read(buf)
			if n > 0 {
				keys <- buf[:n]
			}
			if err != nil {
				close(keys)
				return
			}
		}
	}()
	c := &console{
		conn: conn,
		out:  out,
		sock: sock,
		ed:   &lineEditor{Cols: termWidth(out), HistoryMax: 100},
	}
	err = c.run(ctx, keys, sigs, func() int { return termWidth(out) })
	var cs *consoleSignal
	if errors.As(err, &cs) {
		sig := cs.sig
		io.WriteString(out, "\r\n")
		restore()
		if sig == syscall.SIGTERM {
			return nil
		}
		signal.Reset(sig)
		sigDefault(sig) // not the Go runtime's handler: SIGQUIT would dump goroutines
		syscall.Kill(os.Getpid(), sig)
		time.Sleep(100 * time.Millisecond)
		return exit(128 + int(sig))
	}
	return err
}

// consoleSignal is the error of a console ended by a signal.
type consoleSignal struct{ sig syscall.Signal }

func (s *consoleSignal) Error() string { return s.sig.String() }

// consoleState is where the console is in the session.
type consoleState int

const (
	conBanner consoleState = iota // copying the banner
	conHelp                       // fetching the command list with "help"
	conEdit                       // the user edits a line
	conWait                       // a command runs: its output is shown
	conLogout                     // logout sent: waiting for the hang-up
)

// console is vdeterm's view of a session: the banner, then a "vde[SOCKET]: " prompt; a
// command's data lines are shown without the protocol's framing, its status as text
// ("Success", "Invalid argument"), debug lines as "** DBG MSG: ...".
type console struct {
	conn net.Conn
	out  io.Writer
	sock string
	ed   *lineEditor

	p        mgmtParser
	state    consoleState
	commands []string // completions from "help": paths, menus with a trailing "/"
	helpData []string
	queued   []byte // keys typed while a command runs
	buf      []byte // output not yet written
}

// run drives the console until the session ends. keys are the terminal's bytes, sigs
// the signals; width gives the terminal's width after SIGWINCH. A signal that ends the
// console comes back as a *consoleSignal.
func (c *console) run(ctx context.Context, keys <-chan []byte, sigs <-chan os.Signal, width func() int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sw := newMgmtReader(ctx, c.conn)
	banner := time.NewTimer(mgmtBannerWait)
	defer banner.Stop()
	var logoutTimer <-chan time.Time
	for {
		c.flush()
		select {
		case b, ok := <-sw.chunks:
			if !ok {
				for _, ev := range c.p.Close() {
					c.event(ev)
				}
				if c.state == conEdit {
					c.buf = append(c.buf, "\r\n"...) // leave the prompt's row
				}
				c.flush()
				if c.state == conBanner {
					return errors.New("hung up before any prompt (not a management socket?)")
				}
				return nil
			}
			for _, ev := range c.p.Feed(b) {
				c.event(ev)
			}
		case k, ok := <-keys:
			if !ok {
				keys = nil
				c.logout()
				logoutTimer = time.After(time.Second)
				continue
			}
			c.queued = append(c.queued, k...)
		case s := <-sigs:
			if s == syscall.SIGWINCH {
				c.ed.Cols = width()
				continue
			}
			if sig, ok := s.(syscall.Signal); ok {
				c.flush()
				return &consoleSignal{sig}
			}
		case <-banner.C:
			if c.state == conBanner {
				c.flush()
				return fmt.Errorf("no prompt in %v (not a management socket?)", mgmtBannerWait)
			}
		case <-logoutTimer:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.state == conEdit {
			if c.edit() {
				logoutTimer = time.After(time.Second)
			}
		}
	}
}

// edit feeds the queued keys to the editor; a complete line is sent. It reports whether
// the user logged out.
func (c *console) edit() (loggedOut bool) {
	for c.state == conEdit && len(c.queued) > 0 {
		n, act, line := c.ed.Feed(c.queued)
		c.queued = c.queued[n:]
		c.buf = append(c.buf, c.ed.Output()...)
		switch act {
		case editEOF:
			c.buf = append(c.buf, "\r\n"...)
			c.logout()
			return true
		case editLine:
			cmd := strings.TrimSpace(line)
			switch {
			case cmd == "" || strings.HasPrefix(cmd, "#"):
				c.ed.Start()
				c.buf = append(c.buf, c.ed.Output()...)
			case cmd == "logout" || strings.HasPrefix(cmd, "logout "):
				c.logout()
				return true
			default:
				c.conn.Write([]byte(cmd + "\n"))
				c.state = conWait
			}
		}
	}
	return false
}

// logout ends the session politely: the switch answers "9999 END OF SESSION" and hangs
// up; the console does not show that.
func (c *console) logout() {
	if c.state != conLogout {
		c.conn.Write([]byte("logout\n"))
		c.state = conLogout
	}
}

func (c *console) println(s string) {
	c.buf = append(c.buf, s...)
	c.buf = append(c.buf, "\r\n"...)
}

func (c *console) event(ev mgmtEvent) {
	switch c.state {
	case conBanner:
		switch ev.Kind {
		case mgmtPrompt:
			c.println("")
			c.ed.Prompt = strings.TrimSuffix(ev.Text, "$ ") + "[" + c.sock + "]: "
			c.conn.Write([]byte("help\n"))
			c.state = conHelp
		default:
			c.println(ev.Text)
		}
		return
	case conHelp:
		switch ev.Kind {
		case mgmtData:
			c.helpData = append(c.helpData, ev.Text)
			return
		case mgmtStatus:
			if ev.Code == 1000 {
				c.commands = helpCommands(c.helpData)
				c.ed.Complete = c.complete
			}
			return
		case mgmtPrompt:
			c.state = conEdit
			c.ed.Start()
			c.buf = append(c.buf, c.ed.Output()...)
			return
		}
	case conLogout:
		return
	}
	// conWait and conEdit, and async lines in conHelp.
	var text string
	switch ev.Kind {
	case mgmtPrompt:
		if c.state == conWait {
			c.state = conEdit
			c.ed.Start()
			c.buf = append(c.buf, c.ed.Output()...)
		}
		return
	case mgmtDebug:
		text = "** DBG MSG: " + ev.Text
	default:
		text = ev.Text
	}
	if c.state == conEdit {
		c.ed.Hide()
		c.buf = append(c.buf, c.ed.Output()...)
		c.println(text)
		c.ed.Show()
		c.buf = append(c.buf, c.ed.Output()...)
		return
	}
	c.println(text)
}

func (c *console) flush() {
	if len(c.buf) > 0 {
		c.out.Write(c.buf)
		c.buf = c.buf[:0]
	}
}

func (c *console) complete(word string) []string {
	var out []string
	for _, cmd := range c.commands {
		if strings.HasPrefix(cmd, word) {
			out = append(out, cmd)
		}
	}
	return out
}

// helpCommands takes the command paths out of help's data lines (vde_switch.md §6): the
// first word of each row after the "------------" rule; a menu ("port  ============")
// becomes "port/".
func helpCommands(lines []string) []string {
	var cmds []string
	rule := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if strings.HasPrefix(f[0], "------") {
			rule = true
			continue
		}
		if !rule {
			continue
		}
		if len(f) > 1 && strings.HasPrefix(f[1], "=====") {
			cmds = append(cmds, f[0]+"/")
			continue
		}
		cmds = append(cmds, f[0])
	}
	return cmds
}
