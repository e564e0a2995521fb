package applets

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

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
	conn, err := dialMgmt(notMgmt(t, func(net.Conn) {})) // hangs up at once
	if err != nil {
		t.Fatal(err)
	}
	c := &console{conn: conn, out: io.Discard, sock: "S", ed: &lineEditor{}}
	err = c.run(context.Background(), nil, nil, func() int { return 80 })
	if err == nil || !strings.Contains(err.Error(), "hung up before any prompt") {
		t.Errorf("err = %v", err)
	}
}
