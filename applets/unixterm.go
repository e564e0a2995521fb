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
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func init() {
	register(Applet{Name: "unixterm", Aliases: []string{"vdeterm"}, Main: UnixtermMain})
	register(Applet{Name: "vdecmd", Aliases: []string{"unixcmd"}, Main: VdecmdMain})
}

// The management clients (shared/spec/plug-dpipe-unixterm-vdeq.md §3) speak the switch's
// console protocol (vde_switch.md §5): a banner ending in the prompt "\nvde$ ", then for
// every command an optional data block ("0000 DATA END WITH '.'", lines, "."), a status
// line "1000 Success" or "1ERRNO text", and the prompt again; "9999 END OF SESSION"
// (no newline) before the switch hangs up; "3xxx ..." debug lines at any time.

const (
	mgmtDataHeader = "0000 DATA END WITH '.'"
	mgmtEndSession = "9999 END OF SESSION"
	// mgmtBannerWait bounds the wait for the banner: a socket that does not greet us
	// (a switch's control socket given by mistake) is not a management socket.
	mgmtBannerWait = 5 * time.Second
	// mgmtPaceWait bounds how long the pipe relay holds a line back for the prompt.
	mgmtPaceWait = 5 * time.Second
)

// mgmtKind says what a piece of a management session is.
type mgmtKind uint8

const (
	mgmtBanner mgmtKind = iota // a line before the first prompt
	mgmtPrompt                 // the prompt: Text is "vde$ " (its leading blank line is dropped)
	mgmtData                   // a line of a data block (header and "." are dropped)
	mgmtStatus                 // "1xxx text": Code and Text ("Success")
	mgmtDebug                  // "3xxx text", at any time: Code and Text
	mgmtEnd                    // "9999 ...": the switch ends the session
	mgmtText                   // any other line
)

// mgmtEvent is one piece of a management session.
type mgmtEvent struct {
	Kind mgmtKind
	// Code is the number of a status, debug or end line.
	Code int
	// Text is the line without its code and newline.
	Text string
}

// mgmtParser splits what a switch sends into events. Feed it the bytes as they come, in
// any pieces, and Close it at EOF.
type mgmtParser struct {
	// Prompt is the prompt once the banner has ended ("vde$ "): whatever the line
	// before the first "$ " was.
	Prompt  string
	partial []byte
	inData  bool
	// blank holds an empty line outside a data block: the prompt's own "\n" when the
	// prompt follows, else a line of its own.
	blank bool
}

// Feed parses b and returns the events it completes.
func (p *mgmtParser) Feed(b []byte) []mgmtEvent {
	var evs []mgmtEvent
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.partial = append(p.partial, b...)
			evs = p.partialLine(evs)
			break
		}
		p.partial = append(p.partial, b[:i]...)
		b = b[i+1:]
		line := string(bytes.TrimSuffix(p.partial, []byte("\r")))
		p.partial = p.partial[:0]
		evs = p.line(evs, line)
	}
	return evs
}

// Close ends the stream: an unfinished line ("9999 END OF SESSION" has no newline) and a
// held blank line become events.
func (p *mgmtParser) Close() []mgmtEvent {
	var evs []mgmtEvent
	if len(p.partial) > 0 {
		line := string(p.partial)
		p.partial = nil
		evs = p.line(evs, line)
	}
	if p.blank && !p.inData {
		p.blank = false
		evs = append(evs, mgmtEvent{Kind: p.textKind()})
	}
	return evs
}

func (p *mgmtParser) textKind() mgmtKind {
	if p.Prompt == "" {
		return mgmtBanner
	}
	return mgmtText
}

// partialLine checks the unfinished line for the prompt and the end of session, which
// come without a newline.
func (p *mgmtParser) partialLine(evs []mgmtEvent) []mgmtEvent {
	if p.inData {
		return evs
	}
	s := string(p.partial)
	switch {
	case s == mgmtEndSession:
		p.partial = p.partial[:0]
		return p.line(evs, s)
	case p.Prompt == "" && strings.HasSuffix(s, "$ "), p.Prompt != "" && s == p.Prompt:
		p.partial = p.partial[:0]
		p.Prompt = s
		p.blank = false
		return append(evs, mgmtEvent{Kind: mgmtPrompt, Text: s})
	}
	return evs
}

func (p *mgmtParser) line(evs []mgmtEvent, line string) []mgmtEvent {
	if p.inData {
		if line == "." {
			p.inData = false
			return evs
		}
		return append(evs, mgmtEvent{Kind: mgmtData, Text: line})
	}
	prompt := p.Prompt
	if prompt == "" {
		if i := strings.Index(line, "$ "); i >= 0 {
			prompt = line[:i+2]
		}
	}
	if prompt != "" && strings.HasPrefix(line, prompt) {
		// The prompt and the next line came in one read.
		p.Prompt, p.blank = prompt, false
		evs = append(evs, mgmtEvent{Kind: mgmtPrompt, Text: prompt})
		if line = line[len(prompt):]; line == "" {
			return evs
		}
	}
	if p.blank {
		p.blank = false
		evs = append(evs, mgmtEvent{Kind: p.textKind()})
	}
	if line == "" {
		p.blank = true
		return evs
	}
	if line == mgmtDataHeader {
		p.inData = true
		return evs
	}
	if code, text, ok := mgmtCode(line); ok {
		switch {
		case code >= 1000 && code < 2000:
			return append(evs, mgmtEvent{Kind: mgmtStatus, Code: code, Text: text})
		case code >= 3000 && code < 4000:
			return append(evs, mgmtEvent{Kind: mgmtDebug, Code: code, Text: text})
		case code == 9999:
			return append(evs, mgmtEvent{Kind: mgmtEnd, Code: code, Text: text})
		}
	}
	return append(evs, mgmtEvent{Kind: p.textKind(), Text: line})
}

// mgmtCode splits "1022 Invalid argument" into 1022 and "Invalid argument".
func mgmtCode(line string) (code int, text string, ok bool) {
	if len(line) < 4 || (len(line) > 4 && line[4] != ' ') {
		return 0, "", false
	}
	for i := 0; i < 4; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, "", false
		}
		code = code*10 + int(line[i]-'0')
	}
	if len(line) > 4 {
		text = line[5:]
	}
	return code, text, true
}

// mgmtReader reads a management connection in a goroutine, so that the clients can wait
// for it, the keyboard and signals at once. chunks is closed at EOF or on an error; the
// goroutine also ends when ctx is done.
type mgmtReader struct {
	chunks chan []byte
}

func newMgmtReader(ctx context.Context, c net.Conn) *mgmtReader {
	r := &mgmtReader{chunks: make(chan []byte, 16)}
	go func() {
		defer close(r.chunks)
		for {
			buf := make([]byte, 4096)
			n, err := c.Read(buf)
			if n > 0 {
				select {
				case r.chunks <- buf[:n]:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// dialMgmt connects to a management socket.
func dialMgmt(path string) (net.Conn, error) {
	return net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
}

// --- unixterm ----------------------------------------------------------------------------

var unixtermFlags = []cli.Flag{
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}},
}

const unixtermUsage = "Usage: unixterm SOCKET\n" +
	"Connects to the management socket of a switch (vde_switch -M SOCKET).\n" +
	"On a terminal: a console with line editing, history (Up/Down) and Tab completion.\n" +
	"Otherwise: a relay of standard input, one line per prompt, and of all the switch says.\n"

// UnixtermMain is unixterm (and vdeterm): a terminal for a switch's management socket.
// On a terminal it is the interactive console vdeterm shows; on anything else it relays
// standard input to the switch and everything the switch says to standard output.
func UnixtermMain(ctx context.Context, args []string, stdio Stdio) error {
	r := getoptLongOnly(unixtermFlags, args)
	for _, ev := range r.Opts {
		if ev.Err != "" {
			fmt.Fprintf(stdio.Err, "unixterm: %s\n%s", ev.Err, unixtermUsage)
			return exit(255)
		}
		if ev.Name == "help" {
			io.WriteString(stdio.Out, unixtermUsage)
			return nil
		}
	}
	if len(r.Operands) != 1 {
		io.WriteString(stdio.Err, unixtermUsage)
		return exit(255)
	}
	sock := r.Operands[0]
	conn, err := dialMgmt(sock)
	if err != nil {
		fmt.Fprintf(stdio.Err, "unixterm: Socket connecting error: %s: %s\n", sock, strerror(err))
		return exit(255)
	}
	defer conn.Close()
	in, inTTY := stdio.In.(*os.File)
	out, outTTY := stdio.Out.(*os.File)
	if inTTY && outTTY && isTerminal(in) && isTerminal(out) {
		err = unixtermTTY(ctx, conn, sock, in, out)
	} else {
		err = unixtermPipe(ctx, conn, stdio)
	}
	var ee *ExitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	fmt.Fprintf(stdio.Err, "unixterm: %s: %v\n", sock, err)
	return exit(1)
}

// unixtermPipe relays stdin to the switch and the switch to stdout, byte for byte. It
// sends one line at a time when the switch has prompted (or mgmtPaceWait has passed):
// Debian's switch takes what one read(2) of 128 bytes returns as one command, so two
// lines in one write would be one command. After stdin's EOF it waits for the answer to
// the last line, then hangs up; when the switch hangs up (logout, shutdown), everything
// it sent is printed, "9999 END OF SESSION" included, and unixterm exits 0.
func unixtermPipe(ctx context.Context, conn net.Conn, stdio Stdio) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sw := newMgmtReader(ctx, conn)
	lines := make(chan []byte)
	go func() {
		defer close(lines)
		br := bufio.NewReader(stdio.In)
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
		in := lines
		if pending != nil || stdinEOF {
			in = nil
		}
		select {
		case b, ok := <-sw.chunks:
			if !ok {
				return nil
			}
			if _, err := stdio.Out.Write(b); err != nil {
				return err
			}
			for _, ev := range p.Feed(b) {
				if ev.Kind == mgmtPrompt {
					ready = true
				}
			}
		case line, ok := <-in:
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

// --- the interactive console -------------------------------------------------------------

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// termWidth is the terminal's width, 80 when it does not say.
func termWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

// unixtermTTY runs the console on a terminal in raw mode, and restores the terminal on
// every way out: return, panic, SIGTERM (exit 0, as vdeterm), SIGINT, SIGHUP and SIGQUIT
// (which then end the process as they would have).
func unixtermTTY(ctx context.Context, conn net.Conn, sock string, in, out *os.File) error {
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

// --- vdecmd / unixcmd --------------------------------------------------------------------

// vdecmdFlags are unixcmd's options (getopt_long "f:s:v", spec §3.3).
var vdecmdFlags = []cli.Flag{
	&cli.StringFlag{Name: "rcfile", Aliases: []string{"f"}},
	&cli.StringFlag{Name: "sock", Aliases: []string{"s"}},
	&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}},
	&cli.BoolFlag{Name: "help", Aliases: []string{"h"}},
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
