package applets

import (
	"errors"
	"strings"
	"testing"
)

func TestSlirpvdeArgs(t *testing.T) {
	tests := []struct {
		desc  string
		args  []string
		check func(a *slirpvdeArgs) bool
	}{
		{"defaults", nil, func(a *slirpvdeArgs) bool {
			return a.sock == "" && !a.cfg.DHCP && a.cfg.Host.String() == "10.0.2.2/24" && a.cfg.DNS.String() == "10.0.2.3" && !a.cfg.IPv6
		}},
		{"-s -dhcp (the seed's line)", []string{"-s", "/tmp/vde1.ctl", "-dhcp"}, func(a *slirpvdeArgs) bool {
			return a.sock == "/tmp/vde1.ctl" && a.cfg.DHCP && a.cfg.DHCPStart.String() == "10.0.2.15"
		}},
		{"-D", []string{"-D"}, func(a *slirpvdeArgs) bool { return a.cfg.DHCP }},
		{"--dhcp=ADDR", []string{"--dhcp=10.0.2.50"}, func(a *slirpvdeArgs) bool {
			return a.cfg.DHCP && a.cfg.DHCPStart.String() == "10.0.2.50"
		}},
		{"-dhcp=ADDR", []string{"-dhcp=10.0.2.50"}, func(a *slirpvdeArgs) bool { return a.cfg.DHCPStart.String() == "10.0.2.50" }},
		{"-dhcp does not take the next word", []string{"-dhcp", "/tmp/sw"}, func(a *slirpvdeArgs) bool {
			return a.cfg.DHCP && a.sock == "/tmp/sw"
		}},
		{"positional switch", []string{"/tmp/sw"}, func(a *slirpvdeArgs) bool { return a.sock == "/tmp/sw" }},
		{"-socket -daemon -network", []string{"-socket", "/tmp/sw", "-daemon", "-network", "10.1.0.0/16"}, func(a *slirpvdeArgs) bool {
			return a.sock == "/tmp/sw" && a.daemon && a.cfg.Host.String() == "10.1.0.2/16"
		}},
		{"-netaddr (the seed README's option)", []string{"-netaddr", "10.1.0.0", "-dhcp"}, func(a *slirpvdeArgs) bool {
			return a.cfg.Host.String() == "10.1.0.2/24" && a.cfg.DNS.String() == "10.1.0.3" && a.cfg.DHCPStart.String() == "10.1.0.15"
		}},
		{"-H with -N and --dhcp=", []string{"-H", "10.1.0.0/16", "-N", "8.8.8.8", "--dhcp=10.0.2.50"}, func(a *slirpvdeArgs) bool {
			return a.cfg.Host.String() == "10.1.0.2/16" && a.cfg.DNS.String() == "8.8.8.8" && a.cfg.DHCPStart.String() == "10.0.2.50"
		}},
		{"-s - is stream mode and quiet", []string{"-s", "-"}, func(a *slirpvdeArgs) bool { return a.sock == "-" && a.quiet }},
		{"positional -", []string{"-"}, func(a *slirpvdeArgs) bool { return a.sock == "-" && a.quiet }},
		{"-p absolute", []string{"-p", "/run/s.pid"}, func(a *slirpvdeArgs) bool { return a.pidfile == "/run/s.pid" }},
		{"-m -g --port", []string{"-m", "660", "-g", "0", "--port", "5"}, func(a *slirpvdeArgs) bool {
			return a.open.Mode == 0o660 && a.open.HasGroup && a.open.Group == 0 && a.open.Port == 5
		}},
		{"-port (single dash)", []string{"-port", "7"}, func(a *slirpvdeArgs) bool { return a.open.Port == 7 }},
		{"-L -U with bind address", []string{"-L", "2222:10.0.2.15:22", "-U", "127.0.0.1:5353:10.0.2.15:53"}, func(a *slirpvdeArgs) bool {
			return len(a.cfg.Forwards) == 2 && !a.cfg.Forwards[0].UDP && a.cfg.Forwards[1].UDP && a.cfg.Forwards[1].Bind.String() == "127.0.0.1"
		}},
		{"bad -L is reported, not fatal", []string{"-L", "2222::22"}, func(a *slirpvdeArgs) bool {
			return len(a.cfg.Forwards) == 0 && len(a.badForwards) == 1 && strings.HasPrefix(a.badForwards[0], "redir TCP syntax error")
		}},
		{"bad -x uses the C message", []string{"-x", "nope"}, func(a *slirpvdeArgs) bool {
			return len(a.badForwards) == 1 && strings.Contains(a.badForwards[0], "tcp2unix redirection sytax error")
		}},
		{"-x", []string{"-x", "6000:/tmp/.X11-unix/X0"}, func(a *slirpvdeArgs) bool {
			return len(a.cfg.UnixForwards) == 1 && a.cfg.UnixForwards[0].Port == 6000
		}},
		{"-t relative becomes absolute", []string{"-t", "boot"}, func(a *slirpvdeArgs) bool { return strings.HasPrefix(a.cfg.TFTPDir, "/") }},
		{"-6", []string{"-6"}, func(a *slirpvdeArgs) bool { return a.cfg.IPv6 && a.cfg.Host6.String() == "fd00::2/64" }},
		{"--ipv6=PREFIX", []string{"--ipv6=fd00:1::/64"}, func(a *slirpvdeArgs) bool {
			return a.cfg.IPv6 && a.cfg.Host6.String() == "fd00:1::2/64" && a.cfg.DNS6.String() == "fd00:1::3"
		}},
		{"--no-host-loopback", []string{"--no-host-loopback"}, func(a *slirpvdeArgs) bool { return a.cfg.NoHostLoopback }},
		{"-q", []string{"-q"}, func(a *slirpvdeArgs) bool { return a.quiet }},
		{"--reconnect", []string{"--reconnect", "-s", "/tmp/sw"}, func(a *slirpvdeArgs) bool { return a.open.Reconnect && a.sock == "/tmp/sw" }},
		{"-reconnect (single dash)", []string{"-reconnect"}, func(a *slirpvdeArgs) bool { return a.open.Reconnect }},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			a, err := parseSlirpvdeArgs(tc.args)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.args, err)
			}
			if !tc.check(a) {
				t.Errorf("parse %q = %+v", tc.args, a)
			}
		})
	}
}

func TestSlirpvdeUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args []string
		msg  string
	}{
		{"-P is long-only in C too", []string{"-P", "3"}, "slirpvde: unrecognized option '-P'"},
		{"-h", []string{"-h"}, "Usage:"},
		{"two switches", []string{"/a", "/b"}, "Usage:"},
		{"missing argument", []string{"-s"}, "requires an argument"},
		{"bad -H", []string{"-H", "x.y"}, "slirpvde: -H"},
		{"bad --dhcp=", []string{"--dhcp=nope"}, "slirpvde: --dhcp=nope"},
		{"IPv6 not a /64", []string{"--ipv6=fd00::/48"}, "slirpvde: --ipv6"},
		{"bad mode", []string{"-m", "9"}, "invalid mode"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := parseSlirpvdeArgs(tc.args)
			var pe *parseExit
			if !errors.As(err, &pe) {
				t.Fatalf("parse %q: %v, want a usage exit", tc.args, err)
			}
			if pe.Code != 255 {
				t.Errorf("exit %d, want 255 (the C tool's)", pe.Code)
			}
			if !strings.Contains(pe.Stderr, tc.msg) || !strings.Contains(pe.Stderr, "This tool includes software developed by Danny Gasparovski.") {
				t.Errorf("stderr %q, want %q and the usage text", pe.Stderr, tc.msg)
			}
		})
	}
}
