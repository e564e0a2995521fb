package applets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
)

func TestPlug2TapArgs(t *testing.T) {
	def := func(edit func(o *plug2tapOptions)) *plug2tapOptions {
		o := &plug2tapOptions{Tap: "tap0", Open: wire.OpenOptions{Description: "vde_plug2tap:", Mode: 0o700}}
		if edit != nil {
			edit(o)
		}
		return o
	}
	tests := []struct {
		desc string
		args []string
		want *plug2tapOptions
	}{
		{"tap only", []string{"tap0"}, def(nil)},
		{"extra operands ignored, as in C", []string{"tap0", "tap1"}, def(nil)},
		{"-s", []string{"-s", "/tmp/sw", "tap0"}, def(func(o *plug2tapOptions) { o.Sock = "/tmp/sw" })},
		{"--sock=", []string{"--sock=/tmp/sw", "tap0"}, def(func(o *plug2tapOptions) { o.Sock = "/tmp/sw" })},
		{"-sock (getopt_long_only)", []string{"-sock", "/tmp/sw", "tap0"}, def(func(o *plug2tapOptions) { o.Sock = "/tmp/sw" })},
		{"-s - (stream)", []string{"-s", "-", "tap0"}, def(func(o *plug2tapOptions) { o.Sock = "-" })},
		{"-s URL", []string{"-s", "vde:///tmp/sw[4]", "tap0"}, def(func(o *plug2tapOptions) { o.Sock = "vde:///tmp/sw[4]" })},
		{"-p is the port", []string{"-p", "5", "tap0"}, def(func(o *plug2tapOptions) { o.Open.Port = 5 })},
		{"--port atoi", []string{"--port", "3x", "tap0"}, def(func(o *plug2tapOptions) { o.Open.Port = 3 })},
		{"-m octal", []string{"-m", "660", "tap0"}, def(func(o *plug2tapOptions) { o.Open.Mode = 0o660 })},
		{"--mod", []string{"--mod=0666", "tap0"}, def(func(o *plug2tapOptions) { o.Open.Mode = 0o666 })},
		{"-mode is -m ode (no digits: default kept)", []string{"-mode", "tap0"}, def(nil)},
		{"-g", []string{"-g", "0", "tap0"}, def(func(o *plug2tapOptions) { o.Open.Group, o.Open.HasGroup = 0, true })},
		{"-g unknown: ignored with a warning", []string{"-g", "nosuchgroup", "tap0"}, def(func(o *plug2tapOptions) {
			o.Warnings = []string{"group nosuchgroup: no such group, ignored"}
		})},
		{"-d", []string{"-d", "tap0"}, def(func(o *plug2tapOptions) { o.Daemon = true })},
		{"-P relative", []string{"-P", "p.pid", "tap0"}, def(func(o *plug2tapOptions) { o.PidFile = "/start/p.pid" })},
		{"-pid prefix of --pidfile", []string{"-pid", "/run/p.pid", "tap0"}, def(func(o *plug2tapOptions) { o.PidFile = "/run/p.pid" })},
		{"options after the name", []string{"tap0", "-d", "-p", "2"}, def(func(o *plug2tapOptions) { o.Daemon, o.Open.Port = true, 2 })},
	}
	for _, tt := range tests {
		got, err := parsePlug2TapArgs(tt.args, "/start")
		if err != nil {
			t.Errorf("%s: %q: %v", tt.desc, tt.args, err)
			continue
		}
		if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *tt.want) {
			t.Errorf("%s: %q:\n got %+v\nwant %+v", tt.desc, tt.args, *got, *tt.want)
		}
	}
}

// The messages are Debian's vde_plug2tap's, observed; all exit 255 with the usage.
func TestPlug2TapUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{nil, ""},
		{[]string{"-h"}, ""},
		{[]string{"--help", "tap0"}, ""},
		{[]string{"-hx"}, ""},
		{[]string{"-p", "0", "tap0"}, ""},
		{[]string{"--po=0", "tap0"}, ""},
		{[]string{"-p", "-3", "tap0"}, ""},
		{[]string{"-p", "4294967296", "tap0"}, ""}, // low 32 bits 0
		{[]string{"-d"}, ""},
		{[]string{"--mode=600", "t"}, "vde_plug2tap: unrecognized option '--mode=600'\n"},
		{[]string{"-p"}, "vde_plug2tap: option requires an argument -- 'p'\n"},
		{[]string{"--port"}, "vde_plug2tap: option '--port' requires an argument\n"},
		{[]string{"-q"}, "vde_plug2tap: unrecognized option '-q'\n"},
		{[]string{"--daemon=1", "t"}, "vde_plug2tap: option '--daemon' doesn't allow an argument\n"},
		{[]string{"--p", "3", "t"}, "vde_plug2tap: option '--p' is ambiguous; possibilities: '--port' '--pidfile'\n"},
		{[]string{"-P"}, "vde_plug2tap: option requires an argument -- 'P'\n"},
	}
	for _, tt := range tests {
		var out, errb strings.Builder
		err := Plug2TapMain(context.Background(), tt.args, Stdio{Out: &out, Err: &errb})
		if code := exitCodeOf(err); code != 255 {
			t.Errorf("%q: exit status %d, want 255", tt.args, code)
		}
		if out.String() != "" || errb.String() != tt.msg+plug2tapUsage {
			t.Errorf("%q: stdout %q, stderr %q; want the usage after %q on stderr", tt.args, out.String(), errb.String(), tt.msg)
		}
	}
}

func TestPlug2TapUsageText(t *testing.T) {
	// Debian's, byte for byte (vde_plug2tap --help 2>&1 >/dev/null).
	want := "Usage: vde_plug2tap [OPTION]... tap_name\n\n" +
		"  -p, --port=portnum          Port number in the VDE switch\n" +
		"  -g, --group=group           Group for the socket\n" +
		"  -m, --mode=mode             Octal mode for the socket\n" +
		"  -s, --sock=socket           VDE switch control socket or dir\n" +
		"  -d, --daemon                Launch in background\n" +
		"  -P, --pidfile=pidfile       Create pidfile with our PID\n" +
		"  -h, --help                  This help\n"
	if plug2tapUsage != want {
		t.Errorf("usage:\n%s\nwant:\n%s", plug2tapUsage, want)
	}
}

func TestAtoi(t *testing.T) {
	for s, want := range map[string]int32{
		"7": 7, " 12x": 12, "+3": 3, "-4": -4, "": 0, "x": 0, "010": 10,
		"2147483648": -2147483648, "99999999999999999999": -1, "-99999999999999999999": 0,
	} {
		if got := atoi(s); got != want {
			t.Errorf("atoi(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestTapErrorText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&tap.Error{Name: "t0", Op: "TUNSETIFF", Err: errBusy}, "TUNSETIFF failed Device or resource busy"},
		{&tap.Error{Name: "t0", Op: "open /dev/net/tun", Err: errNoEnt}, "Failed to open /dev/net/tun No such file or directory"},
		{&tap.Error{Name: "abcdefghijklmnop", Op: "name", Err: tap.ErrNameTooLong}, "tap abcdefghijklmnop: name: interface name longer than 15 bytes"},
		{errors.New("other"), "other"},
	}
	for _, tt := range tests {
		if got := tapErrorText(tt.err); got != tt.want {
			t.Errorf("tapErrorText(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

var (
	errBusy  = syscall.EBUSY
	errNoEnt = syscall.ENOENT
)
