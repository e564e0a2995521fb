package applets

// The management protocol as the clients read it, and a fake switch that speaks it.

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"reflect"
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

// notMgmt listens on a unix stream socket that is not a management socket: serve gets
// the one connection it accepts. It returns the socket's path.
func notMgmt(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			serve(c)
		}
	}()
	return path
}
