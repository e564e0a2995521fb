package applets

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testBanner = "VDE switch V.2.3.2\n(C) Virtual Square Team (coord. R. Davoli) 2005,2006,2007 - GPLv2\n"
	testPrompt = "\nvde$ "
)

func feedEvents(chunks ...string) []mgmtEvent {
	var p mgmtParser
	var evs []mgmtEvent
	for _, c := range chunks {
		evs = append(evs, p.Feed([]byte(c))...)
	}
	return append(evs, p.Close()...)
}

func TestMgmtParser(t *testing.T) {
	prompt := mgmtEvent{Kind: mgmtPrompt, Text: "vde$ "}
	banner := []mgmtEvent{
		{Kind: mgmtBanner, Text: "VDE switch V.2.3.2"},
		{Kind: mgmtBanner, Text: "(C) Virtual Square Team (coord. R. Davoli) 2005,2006,2007 - GPLv2"},
		prompt,
	}
	for _, tt := range []struct {
		desc string
		in   string
		want []mgmtEvent
	}{
		{"banner", testBanner + testPrompt, banner},
		{"data block", testBanner + testPrompt + "0000 DATA END WITH '.'\nNumports=32\n\nHUB=false\n.\n1000 Success\n" + testPrompt,
			append(banner[:3:3],
				mgmtEvent{Kind: mgmtData, Text: "Numports=32"},
				mgmtEvent{Kind: mgmtData, Text: ""},
				mgmtEvent{Kind: mgmtData, Text: "HUB=false"},
				mgmtEvent{Kind: mgmtStatus, Code: 1000, Text: "Success"},
				prompt)},
		{"failed data command", testBanner + testPrompt + "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n" + testPrompt,
			append(banner[:3:3], mgmtEvent{Kind: mgmtStatus, Code: 1022, Text: "Invalid argument"}, prompt)},
		{"status only", testBanner + testPrompt + "1038 Function not implemented\n" + testPrompt,
			append(banner[:3:3], mgmtEvent{Kind: mgmtStatus, Code: 1038, Text: "Function not implemented"}, prompt)},
		{"empty line: prompt only", testBanner + testPrompt + testPrompt, append(banner[:3:3], prompt)},
		{"debug line", testBanner + testPrompt + "3001 port/+ Port 01 added\n",
			append(banner[:3:3], mgmtEvent{Kind: mgmtDebug, Code: 3001, Text: "port/+ Port 01 added"})},
		{"end of session without newline", testBanner + testPrompt + "9999 END OF SESSION",
			append(banner[:3:3], mgmtEvent{Kind: mgmtEnd, Code: 9999, Text: "END OF SESSION"})},
		{"CRLF", "B\r\n\r\nvde$ 1000 Success\r\n",
			[]mgmtEvent{{Kind: mgmtBanner, Text: "B"}, prompt, {Kind: mgmtStatus, Code: 1000, Text: "Success"}}},
		{"other prompt word", "wirefilter\n\nVDEwf$ ", []mgmtEvent{{Kind: mgmtBanner, Text: "wirefilter"}, {Kind: mgmtPrompt, Text: "VDEwf$ "}}},
		{"text and blank lines", "B\n\nvde$ hello\n\n\nx\n", []mgmtEvent{{Kind: mgmtBanner, Text: "B"}, prompt,
			{Kind: mgmtText, Text: "hello"}, {Kind: mgmtText}, {Kind: mgmtText}, {Kind: mgmtText, Text: "x"}}},
		{"lines that only look like codes", "B\n\nvde$ 1000x\n12 a\n", []mgmtEvent{{Kind: mgmtBanner, Text: "B"}, prompt,
			{Kind: mgmtText, Text: "1000x"}, {Kind: mgmtText, Text: "12 a"}}},
		{"a dot outside data is text", "B\n\nvde$ .\n", []mgmtEvent{{Kind: mgmtBanner, Text: "B"}, prompt, {Kind: mgmtText, Text: "."}}},
		{"codes inside data are data", "B\n\nvde$ 0000 DATA END WITH '.'\n1000 Success\nvde$ \n.\n",
			[]mgmtEvent{{Kind: mgmtBanner, Text: "B"}, prompt, {Kind: mgmtData, Text: "1000 Success"}, {Kind: mgmtData, Text: "vde$ "}}},
	} {
		got := feedEvents(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %q\n got %+v\nwant %+v", tt.desc, tt.in, got, tt.want)
		}
		// Byte by byte gives the same.
		var chunks []string
		for i := range len(tt.in) {
			chunks = append(chunks, tt.in[i:i+1])
		}
		if got := feedEvents(chunks...); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s, byte by byte:\n got %+v\nwant %+v", tt.desc, got, tt.want)
		}
	}
}

// A prompt and a debug line in one read are still a prompt and a debug line.
func TestMgmtParserPromptThenLine(t *testing.T) {
	got := feedEvents(testBanner+testPrompt, "1000 Success\n\nvde$ 3001 port/+ x\n")
	want := []mgmtEvent{
		{Kind: mgmtBanner, Text: "VDE switch V.2.3.2"},
		{Kind: mgmtBanner, Text: "(C) Virtual Square Team (coord. R. Davoli) 2005,2006,2007 - GPLv2"},
		{Kind: mgmtPrompt, Text: "vde$ "},
		{Kind: mgmtStatus, Code: 1000, Text: "Success"},
		{Kind: mgmtPrompt, Text: "vde$ "},
		{Kind: mgmtDebug, Code: 3001, Text: "port/+ x"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// FuzzMgmtParser: any bytes parse without panic into events of one line each; the pieces
// the bytes come in do not matter (unless they contain what is recognised without a
// newline: the prompt and the end of session); data lines framed as the switch frames
// them come back as they were.
func FuzzMgmtParser(f *testing.F) {
	for _, s := range []string{
		testBanner + testPrompt,
		"0000 DATA END WITH '.'\nNumports=32\n.\n1000 Success\n" + testPrompt,
		"0000 DATA END WITH '.'\n.\n1022 Invalid argument\n" + testPrompt + "9999 END OF SESSION",
		"3001 port/+ x\n1038 Function not implemented\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, split uint8) {
		var p mgmtParser
		p.Feed([]byte(testBanner + testPrompt))
		whole := append(p.Feed(body), p.Close()...)
		for _, ev := range whole {
			if strings.ContainsRune(ev.Text, '\n') {
				t.Fatalf("event %+v holds a newline", ev)
			}
			if (ev.Kind == mgmtStatus) != (ev.Code >= 1000 && ev.Code < 2000) {
				t.Fatalf("event %+v: kind and code disagree", ev)
			}
		}
		if !bytes.Contains(body, []byte("$ ")) && !bytes.Contains(body, []byte("9999")) {
			var q mgmtParser
			q.Feed([]byte(testBanner + testPrompt))
			var pieces []mgmtEvent
			n := int(split%16) + 1
			for b := body; len(b) > 0; {
				k := min(n, len(b))
				pieces = append(pieces, q.Feed(b[:k])...)
				b = b[k:]
			}
			pieces = append(pieces, q.Close()...)
			if !reflect.DeepEqual(whole, pieces) {
				t.Fatalf("%q in pieces of %d:\n got %+v\nwant %+v", body, n, pieces, whole)
			}
		}
		// Round trip: the body's lines as a data block.
		var lines []string
		for _, l := range strings.Split(string(body), "\n") {
			l = strings.TrimSuffix(l, "\r")
			if l != "." && !strings.Contains(l, "\r") {
				lines = append(lines, l)
			}
		}
		framed := mgmtDataHeader + "\n" + strings.Join(lines, "\n")
		if len(lines) > 0 {
			framed += "\n"
		}
		framed += ".\n1000 Success\n" + testPrompt
		var r mgmtParser
		r.Feed([]byte(testBanner + testPrompt))
		var data []string
		code := 0
		for _, ev := range r.Feed([]byte(framed)) {
			switch ev.Kind {
			case mgmtData:
				data = append(data, ev.Text)
			case mgmtStatus:
				code = ev.Code
			}
		}
		if !reflect.DeepEqual(data, lines) || code != 1000 {
			t.Fatalf("data block %q: got %q code %d; want %q", framed, data, code, lines)
		}
	})
}

func TestHelpCommands(t *testing.T) {
	got := helpCommands([]string{
		"COMMAND PATH       SYNTAX          HELP",
		"------------       --------------  ------------",
		"ds                 ============    DATA SOCKET MENU",
		"ds/showinfo                        show ds info",
		"help               [arg]           Help (limited to arg when specified)",
		"port/print         [N]             print the port/endpoint table",
		"",
	})
	want := []string{"ds/", "ds/showinfo", "help", "port/print"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("helpCommands = %q; want %q", got, want)
	}
}

// --- a fake switch -----------------------------------------------------------------------

// fakeMgmt answers on a management socket the way Debian's vde_switch does, down to
// taking what one read of 128 bytes returns as one command (so a client that writes two
// lines at once sends one command).
type fakeMgmt struct {
	Path string
	// Delay is how long the switch takes before answering a command.
	Delay time.Duration

	mu   sync.Mutex
	cmds []string
	ln   *net.UnixListener
}

const fakeHelp = "0000 DATA END WITH '.'\n" +
	"COMMAND PATH       SYNTAX          HELP\n" +
	"------------       --------------  ------------\n" +
	"help               [arg]           Help (limited to arg when specified)\n" +
	"logout                             logout from this mgmt terminal\n" +
	"shutdown                           shutdown of the switch\n" +
	"showinfo                           show switch version and info\n" +
	"port               ============    PORT STATUS MENU\n" +
	"port/showinfo                      show port info\n" +
	"port/print         [N]             print the port/endpoint table\n" +
	"port/allprint      [N]             print the port/endpoint table (including inactive port)\n" +
	".\n1000 Success\n"

const fakePortPrint = "0000 DATA END WITH '.'\n" +
	"Port 0001 untagged_vlan=0000 ACTIVE - Unnamed Allocatable\n" +
	" Current User: root Access Control: (User: NONE - Group: NONE)\n" +
	"  -- endpoint ID 0007 module unix prog   : peer-one\n" +
	".\n1000 Success\n"

func startFakeMgmt(t *testing.T, delay time.Duration) *fakeMgmt {
	t.Helper()
	fs := &fakeMgmt{Path: filepath.Join(t.TempDir(), "mgmt"), Delay: delay}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: fs.Path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	fs.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fs.serve(c)
		}
	}()
	return fs
}

func (fs *fakeMgmt) Commands() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.cmds...)
}

func (fs *fakeMgmt) serve(c net.Conn) {
	defer c.Close()
	io.WriteString(c, testBanner+testPrompt)
	buf := make([]byte, 128)
	for {
		time.Sleep(fs.Delay)
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		cmd := strings.TrimSuffix(string(buf[:n]), "\n")
		fs.mu.Lock()
		fs.cmds = append(fs.cmds, cmd)
		fs.mu.Unlock()
		var resp string
		switch {
		case cmd == "":
			resp = ""
		case cmd == "help":
			resp = fakeHelp
		case strings.HasPrefix(cmd, "port/print"):
			resp = fakePortPrint
		case cmd == "hash/find zz":
			resp = "0000 DATA END WITH '.'\n.\n1022 Invalid argument\n"
		case cmd == "debug":
			// an asynchronous debug line right after the answer
			io.WriteString(c, "1000 Success\n"+testPrompt+"3001 port/+ Port 01 added\n")
			continue
		case cmd == "logout" || cmd == "shutdown":
			io.WriteString(c, "9999 END OF SESSION")
			return
		default:
			resp = "1038 Function not implemented\n"
		}
		io.WriteString(c, resp+testPrompt)
	}
}

func runApplet(t *testing.T, main MainFunc, stdin string, args ...string) (err error, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = main(ctx, args, Stdio{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return err, out.String(), errb.String()
}

func exitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return -1
}

// On a pipe, unixterm prints all the switch says, the final "9999 END OF SESSION"
// included, and sends one line per prompt even to a slow switch.
func TestUnixtermPipe(t *testing.T) {
	fs := startFakeMgmt(t, 50*time.Millisecond)
	err, out, errs := runApplet(t, UnixtermMain, "port/print\nhelp\n\nbogus\nlogout\n", fs.Path)
	if err != nil || errs != "" {
		t.Fatalf("unixterm: %v, stderr %q", err, errs)
	}
	want := testBanner + testPrompt + fakePortPrint + testPrompt + fakeHelp + testPrompt + testPrompt +
		"1038 Function not implemented\n" + testPrompt + "9999 END OF SESSION"
	if out != want {
		t.Errorf("stdout:\n%q\nwant\n%q", out, want)
	}
	if got, want := fs.Commands(), []string{"port/print", "help", "", "bogus", "logout"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the switch got %q; want %q", got, want)
	}
}

// At the end of stdin, unixterm waits for the last answer, then hangs up; a last line
// without a newline is sent with one.
func TestUnixtermPipeEOF(t *testing.T) {
	fs := startFakeMgmt(t, 0)
	err, out, _ := runApplet(t, UnixtermMain, "showinfo\nport/print 1", fs.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := testBanner + testPrompt + "1038 Function not implemented\n" + testPrompt + fakePortPrint + testPrompt
	if out != want {
		t.Errorf("stdout:\n%q\nwant\n%q", out, want)
	}
	if got, want := fs.Commands(), []string{"showinfo", "port/print 1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the switch got %q; want %q", got, want)
	}

	// Nothing on stdin: the banner, and goodbye.
	err, out, _ = runApplet(t, UnixtermMain, "", fs.Path)
	if err != nil || out != testBanner+testPrompt {
		t.Errorf("empty stdin: %v, stdout %q", err, out)
	}
}

func TestUnixtermErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing")
	err, _, errs := runApplet(t, UnixtermMain, "", missing)
	if exitCode(err) != 255 || errs != "unixterm: Socket connecting error: "+missing+": No such file or directory\n" {
		t.Errorf("missing socket: %v, stderr %q", err, errs)
	}
	err, _, errs = runApplet(t, UnixtermMain, "")
	if exitCode(err) != 255 || errs != unixtermUsage {
		t.Errorf("no socket: %v, stderr %q", err, errs)
	}
	err, _, errs = runApplet(t, UnixtermMain, "", "-x", "s")
	if exitCode(err) != 255 || !strings.HasPrefix(errs, "unixterm: unrecognized option '-x'\nUsage: unixterm") {
		t.Errorf("-x: %v, stderr %q", err, errs)
	}
	err, out, _ := runApplet(t, UnixtermMain, "", "--help")
	if err != nil || out != unixtermUsage {
		t.Errorf("--help: %v, stdout %q", err, out)
	}
}

func TestVdecmd(t *testing.T) {
	fs := startFakeMgmt(t, 0)
	for _, tt := range []struct {
		desc   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"data lines", []string{"-s", fs.Path, "port/print"}, 0,
			"Port 0001 untagged_vlan=0000 ACTIVE - Unnamed Allocatable\n" +
				" Current User: root Access Control: (User: NONE - Group: NONE)\n" +
				"  -- endpoint ID 0007 module unix prog   : peer-one\n", ""},
		{"words joined, options after them", []string{"port/print", "1", "--sock", fs.Path}, 0, "", ""},
		{"errno", []string{"-s" + fs.Path, "hash/find", "zz"}, 22, "", "vdecmd: hash/find zz: Invalid argument\n"},
		{"unknown command", []string{"-s", fs.Path, "-f", "/etc/vde2/vdecmd", "bogus"}, 38, "", "vdecmd: bogus: Function not implemented\n"},
		{"debug line after the answer", []string{"-s", fs.Path, "debug"}, 0, "", ""},
		{"logout", []string{"-s", fs.Path, "logout"}, 0, "", ""},
		{"shutdown", []string{"-s", fs.Path, "shutdown"}, 0, "", ""},
	} {
		err, out, errs := runApplet(t, VdecmdMain, "", tt.args...)
		if exitCode(err) != tt.code || errs != tt.stderr || (tt.stdout != "" && out != tt.stdout) {
			t.Errorf("%s: vdecmd %q: exit %d (%v), stdout %q, stderr %q; want %d, %q, %q",
				tt.desc, tt.args, exitCode(err), err, out, errs, tt.code, tt.stdout, tt.stderr)
		}
		if strings.ContainsRune(out, 0) {
			t.Errorf("%s: NUL in stdout %q", tt.desc, out)
		}
	}
	want := []string{"port/print", "port/print 1", "hash/find zz", "bogus", "debug", "logout", "shutdown"}
	if got := fs.Commands(); !reflect.DeepEqual(got, want) {
		t.Errorf("the switch got %q; want %q", got, want)
	}

	// -v shows the session on stderr.
	err, _, errs := runApplet(t, VdecmdMain, "", "-v", "-s", fs.Path, "port/print")
	if err != nil || !strings.HasPrefix(errs, testBanner+testPrompt+"port/print\n"+fakePortPrint) {
		t.Errorf("-v: %v, stderr %q", err, errs)
	}
}

func TestVdecmdErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing")
	err, _, errs := runApplet(t, VdecmdMain, "", "-s", missing, "port/print")
	if exitCode(err) != 255 || errs != "vdecmd: connect "+missing+": No such file or directory\n" {
		t.Errorf("missing socket: %v, stderr %q", err, errs)
	}
	err, _, errs = runApplet(t, VdecmdMain, "", "-s", missing)
	if exitCode(err) != 255 || !strings.HasPrefix(errs, "Usage: vdecmd OPTIONS command\n\t-s sockname  management socket path (default is /var/run/vdecmd)\n") {
		t.Errorf("no command: %v, stderr %q", err, errs)
	}
	err, _, errs = runApplet(t, VdecmdMain, "", "-x", "port/print")
	if exitCode(err) != 255 || !strings.HasPrefix(errs, "vdecmd: unrecognized option '-x'\nUsage: vdecmd") {
		t.Errorf("-x: %v, stderr %q", err, errs)
	}
	err, _, errs = runApplet(t, VdecmdMain, "", "-s")
	if exitCode(err) != 255 || !strings.HasPrefix(errs, "vdecmd: option requires an argument -- 's'\nUsage: vdecmd") {
		t.Errorf("-s: %v, stderr %q", err, errs)
	}

	// A stream socket that never greets us is not a management socket.
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "ctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	start := time.Now()
	err, _, errs = runApplet(t, VdecmdMain, "", "-s", filepath.Join(dir, "ctl"), "port/print")
	if exitCode(err) != 255 || !strings.Contains(errs, "no prompt in 5s (not a management socket?)") {
		t.Errorf("silent socket: %v, stderr %q", err, errs)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("silent socket: took %v", d)
	}
}

// The console, with keys from a channel and output to a buffer.
func runTestConsole(t *testing.T, fs *fakeMgmt, keys string) string {
	t.Helper()
	conn, err := dialMgmt(fs.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out bytes.Buffer
	c := &console{conn: conn, out: &out, sock: "SOCK", ed: &lineEditor{Cols: 100}}
	kc := make(chan []byte, 1)
	kc <- []byte(keys)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.run(ctx, kc, make(chan os.Signal), func() int { return 100 }); err != nil {
		t.Fatalf("console: %v\noutput %q", err, out.String())
	}
	return out.String()
}

var escapeRE = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]|\a")

// screen renders terminal output roughly: each row's last "\r" redraw wins, escape
// sequences are dropped.
func screen(out string) string {
	var rows []string
	for _, row := range strings.Split(out, "\r\n") {
		row = escapeRE.ReplaceAllString(row, "")
		if i := strings.LastIndex(strings.TrimRight(row, "\r"), "\r"); i >= 0 {
			row = row[i+1:]
		}
		rows = append(rows, strings.TrimRight(row, "\r "))
	}
	return strings.Join(rows, "\n")
}

func TestConsole(t *testing.T) {
	fs := startFakeMgmt(t, 0)
	// All keys come at once: the console holds them back until each prompt.
	out := runTestConsole(t, fs, "port/print\rhash/find zz\r\rport/pr\t 1\r\x1b[A\x1b[A\rshowinfo\r\x04")
	got := screen(out)
	want := "VDE switch V.2.3.2\n" +
		"(C) Virtual Square Team (coord. R. Davoli) 2005,2006,2007 - GPLv2\n" +
		"\n" +
		"vde[SOCK]: port/print\n" +
		"Port 0001 untagged_vlan=0000 ACTIVE - Unnamed Allocatable\n" +
		" Current User: root Access Control: (User: NONE - Group: NONE)\n" +
		"  -- endpoint ID 0007 module unix prog   : peer-one\n" +
		"Success\n" +
		"vde[SOCK]: hash/find zz\n" +
		"Invalid argument\n" +
		"vde[SOCK]:\n" +
		"vde[SOCK]: port/print  1\n" +
		"Port 0001 untagged_vlan=0000 ACTIVE - Unnamed Allocatable\n" +
		" Current User: root Access Control: (User: NONE - Group: NONE)\n" +
		"  -- endpoint ID 0007 module unix prog   : peer-one\n" +
		"Success\n" +
		"vde[SOCK]: hash/find zz\n" +
		"Invalid argument\n" +
		"vde[SOCK]: showinfo\n" +
		"Function not implemented\n" +
		"vde[SOCK]:\n" +
		""
	if got != want {
		t.Errorf("screen:\n%s\nwant\n%s\nraw %q", got, want, out)
	}
	if strings.Contains(out, "0000 DATA") || strings.Contains(out, "1000") || strings.Contains(out, "\n.\r") {
		t.Errorf("framing shown: %q", out)
	}
	cmds := fs.Commands()
	want2 := []string{"help", "port/print", "hash/find zz", "port/print  1", "hash/find zz", "showinfo", "logout"}
	if !reflect.DeepEqual(cmds, want2) {
		t.Errorf("the switch got %q; want %q", cmds, want2)
	}
}

// logout ends the console; a debug line while editing is shown above the line.
func TestConsoleLogoutAndDebug(t *testing.T) {
	fs := startFakeMgmt(t, 0)
	out := runTestConsole(t, fs, "debug\rport/x\x01\x0blogout\r")
	got := screen(out)
	if !strings.Contains(got, "vde[SOCK]: debug\nSuccess\n** DBG MSG: port/+ Port 01 added\nvde[SOCK]: logout\n") {
		t.Errorf("screen:\n%s\nraw %q", got, out)
	}
	if cmds := fs.Commands(); !reflect.DeepEqual(cmds, []string{"help", "debug", "logout"}) {
		t.Errorf("the switch got %q", cmds)
	}
}

// When the switch goes away (shutdown from elsewhere), the console ends with status 0.
func TestConsoleSwitchHangsUp(t *testing.T) {
	fs := startFakeMgmt(t, 0)
	out := runTestConsole(t, fs, "shutdown\r")
	if !strings.Contains(screen(out), "vde[SOCK]: shutdown\nEND OF SESSION\n") {
		t.Errorf("screen:\n%s\nraw %q", screen(out), out)
	}
}

func TestConsoleNoBanner(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "ctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close() // hangs up at once
		}
	}()
	conn, err := dialMgmt(filepath.Join(dir, "ctl"))
	if err != nil {
		t.Fatal(err)
	}
	c := &console{conn: conn, out: io.Discard, sock: "S", ed: &lineEditor{}}
	err = c.run(context.Background(), nil, nil, func() int { return 80 })
	if err == nil || !strings.Contains(err.Error(), "hung up before any prompt") {
		t.Errorf("err = %v", err)
	}
}
