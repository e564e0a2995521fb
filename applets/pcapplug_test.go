package applets

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/vde-go/vde/switchcore/packet"
	"github.com/vde-go/vde/switchcore/wire"
)

func TestPcapplugArgs(t *testing.T) {
	o, err := pcapplugPlug.parse([]string{"-s", "/tmp/sw", "-p", "3", "-m", "660", "-g", "0", "-d", "-P", "p.pid", "eth0"}, "/start")
	if err != nil {
		t.Fatal(err)
	}
	want := plug2tapOptions{Tap: "eth0", Sock: "/tmp/sw", Daemon: true, PidFile: "/start/p.pid",
		Open: wire.OpenOptions{Description: "vde_pcapplug:", Port: 3, Mode: 0o660, Group: 0, HasGroup: true}}
	if fmt.Sprintf("%+v", *o) != fmt.Sprintf("%+v", want) {
		t.Errorf("got  %+v\nwant %+v", *o, want)
	}
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{nil, ""}, // C opens the switch first and prints the usage after; we print it at once
		{[]string{"-h"}, ""},
		{[]string{"-p", "0", "eth0"}, ""},
		{[]string{"--mode=0777", "eth0"}, "vde_pcapplug: unrecognized option '--mode=0777'\n"},
		{[]string{"-s"}, "vde_pcapplug: option requires an argument -- 's'\n"},
	} {
		_, err := pcapplugPlug.parse(tt.args, "/start")
		var pe *parseExit
		if !errors.As(err, &pe) || pe.Code != 255 || pe.Stderr != tt.msg+pcapplugUsage {
			t.Errorf("%q: %v; want exit 255 and %q + usage", tt.args, err, tt.msg)
		}
	}
}

func TestPcapErrorText(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&pcapOpenError{"eth9", "No such device exists (No such device exists)"}, "Open eth9: eth9: No such device exists (No such device exists)\n"},
		{&pcapOpenError{"v1", "That device is not up"}, "Open v1: v1: That device is not up\n"},
		{&packet.Error{Interface: "tun0", Op: "hardware type 65534", Err: packet.ErrNotEthernet}, "Given interface is not ethernet\n"},
		{&packet.Error{Interface: "v0", Op: "socket", Err: syscall.EPERM},
			"Open v0: v0: You don't have permission to perform this capture on that device (socket: Operation not permitted)\n"},
		{&packet.Error{Interface: "v0", Op: "bind", Err: syscall.ENOBUFS}, "Open v0: v0: bind: No buffer space available\n"},
	} {
		if got := pcapErrorText(tt.err); got != tt.want {
			t.Errorf("pcapErrorText(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// FuzzPcapplugArgs: any command line parses to options with an interface, or to the
// usage with status 255 (or the getcwd failure), without a panic.
func FuzzPcapplugArgs(f *testing.F) {
	for _, s := range []string{"eth0", "-s /tmp/sw -p 3 eth0", "-pid x -d eth0", "--mod=0 -m 7 v0", "-p", "-- -x", "-g nogroup -s - eth0"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, line string, cwd bool) {
		dir := ""
		if cwd {
			dir = "/start"
		}
		args := strings.Fields(line)
		o, err := pcapplugPlug.parse(args, dir)
		if err != nil {
			var pe *parseExit
			if !errors.As(err, &pe) || (pe.Code != 255 || !strings.HasSuffix(pe.Stderr, pcapplugUsage)) && pe.Code != 1 {
				t.Fatalf("%q: %v", args, err)
			}
			return
		}
		if o.Tap == "" || o.Open.Port < 0 || o.Open.Description != "vde_pcapplug:" {
			t.Fatalf("%q: %+v", args, *o)
		}
	})
}
