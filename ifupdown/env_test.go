package ifupdown

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func envFrom(m map[string]string) Env {
	return FromEnv(func(k string) string { return m[k] })
}

func TestAction(t *testing.T) {
	for _, tt := range []struct {
		desc string
		env  map[string]string
		want Action
	}{
		{"ifup pre-up with vde2-switch", map[string]string{"IFACE": "tap0", "MODE": "start", "PHASE": "pre-up", "IF_VDE2_SWITCH": "-"}, Up},
		{"ifdown post-down with vde2-slirp", map[string]string{"IFACE": "vde0", "MODE": "stop", "PHASE": "post-down", "IF_VDE2_SLIRP": "-dhcp"}, Down},
		{"vde2-plug only", map[string]string{"IFACE": "tap0", "MODE": "start", "PHASE": "pre-up", "IF_VDE2_PLUG": "vde_plug /tmp/x"}, Up},
		{"no PHASE: MODE decides", map[string]string{"IFACE": "tap0", "MODE": "stop", "IF_VDE2_SWITCH": "-"}, Down},
		{"post-up is not ours", map[string]string{"IFACE": "tap0", "MODE": "start", "PHASE": "post-up", "IF_VDE2_SWITCH": "-"}, None},
		{"pre-down is not ours", map[string]string{"IFACE": "tap0", "MODE": "stop", "PHASE": "pre-down", "IF_VDE2_SWITCH": "-"}, None},
		{"--all pre-pass", map[string]string{"IFACE": "--all", "ADDRFAM": "meta", "METHOD": "none", "MODE": "start", "PHASE": "pre-up"}, None},
		{"stanza without vde2 options", map[string]string{"IFACE": "eth0", "METHOD": "dhcp", "MODE": "start", "PHASE": "pre-up", "IF_ADDRESS": "1.2.3.4"}, None},
		{"no MODE", map[string]string{"IFACE": "tap0", "IF_VDE2_SWITCH": "-"}, None},
	} {
		if got := envFrom(tt.env).Action(); got != tt.want {
			t.Errorf("%s: Action() = %v, want %v", tt.desc, got, tt.want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	e := envFrom(map[string]string{
		"IFACE": "qemu", "LOGICAL": "qemu", "ADDRFAM": "inet", "METHOD": "manual", "MODE": "start",
		"PHASE": "pre-up", "VERBOSITY": "1", "IF_VDE2_SWITCH": "-t qemu", "IF_VDE2_SLIRP": "-dhcp",
		"IF_VDE2_PLUG": "ssh host vde_plug /x",
	})
	want := Env{Iface: "qemu", Logical: "qemu", AddrFam: "inet", Method: "manual", Mode: "start",
		Phase: "pre-up", Verbose: true, Switch: "-t qemu", Slirp: "-dhcp", Plug: "ssh host vde_plug /x"}
	if e != want {
		t.Errorf("FromEnv = %+v, want %+v", e, want)
	}
}

func TestCheckIface(t *testing.T) {
	for _, ok := range []string{"tap0", "vde0", "qemu", "a", "br-lan.10", "123456789012345"} {
		if err := CheckIface(ok); err != nil {
			t.Errorf("CheckIface(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "1234567890123456", "../etc", "a/b", "eth0:1", "a b", "a\tb", "x\x00"} {
		if err := CheckIface(bad); !errors.Is(err, ErrBadIface) {
			t.Errorf("CheckIface(%q) = %v, want ErrBadIface", bad, err)
		}
	}
}

func TestSplit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"-", []string{"-"}},
		{"-t qemu", []string{"-t", "qemu"}},
		{"  -dhcp \t -netaddr\n10.0.5.0 ", []string{"-dhcp", "-netaddr", "10.0.5.0"}},
		{"ssh user@host 'a b'", []string{"ssh", "user@host", "'a", "b'"}}, // no quoting, as set --
		{"a\u00a0b", []string{"a\u00a0b"}},                                // only IFS splits
		{"-L *:1", []string{"-L", "*:1"}},                                 // no globbing
	} {
		if got := Split(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Split(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The command lines Debian's hooks give start-stop-daemon (shared/spec/ifupdown.md, the
// [observed] lines), with /var/run/vde2 for /tmp/hooktest/run.
func TestArgsLikeDebian(t *testing.T) {
	c := Config{}
	for _, tt := range []struct {
		desc string
		got  []string
		want string
	}{
		{"static + vde2-switch -",
			SwitchArgs(Env{Iface: "tap0", Method: "static", Switch: "-"}, c),
			"-s /var/run/vde2/tap0.ctl -m 660 -g vde2-net -p /var/run/vde2/tap0.pid -t tap0 -M /var/run/vde2/tap0.mgmt --mgmtmode 660 -d"},
		{"manual + vde2-switch -: no TAP",
			SwitchArgs(Env{Iface: "vde0", Method: "manual", Switch: "-"}, c),
			"-s /var/run/vde2/vde0.ctl -m 660 -g vde2-net -p /var/run/vde2/vde0.pid -M /var/run/vde2/vde0.mgmt --mgmtmode 660 -d"},
		{"manual + vde2-switch -t qemu",
			SwitchArgs(Env{Iface: "qemu", Method: "manual", Switch: "-t qemu"}, c),
			"-s /var/run/vde2/qemu.ctl -m 660 -g vde2-net -p /var/run/vde2/qemu.pid -M /var/run/vde2/qemu.mgmt --mgmtmode 660 -d -t qemu"},
		{"dhcp + vde2-switch --macaddr",
			SwitchArgs(Env{Iface: "tap0", Method: "dhcp", Switch: "--macaddr 02:00:00:00:00:01"}, c),
			"-s /var/run/vde2/tap0.ctl -m 660 -g vde2-net -p /var/run/vde2/tap0.pid -t tap0 -M /var/run/vde2/tap0.mgmt --mgmtmode 660 -d --macaddr 02:00:00:00:00:01"},
		{"vde2-slirp -dhcp",
			SlirpArgs(Env{Iface: "tap0", Slirp: "-dhcp"}, c),
			"-s /var/run/vde2/tap0.ctl -m 660 -p /var/run/vde2/tap0-slirp.pid -d -dhcp"},
		{"vde2-slirp -",
			SlirpArgs(Env{Iface: "vde0", Slirp: "-"}, c),
			"-s /var/run/vde2/vde0.ctl -m 660 -p /var/run/vde2/vde0-slirp.pid -d"},
		{"vde2-plug ssh",
			PlugArgs(Env{Iface: "tap0", Plug: "ssh user@host vde_plug /var/run/vde2/tap0.ctl"}, c, []string{"/usr/bin/vde_plug"}),
			"-p /var/run/vde2/tap0-plug.pid /usr/bin/vde_plug -g vde2-net -m 660 /var/run/vde2/tap0.ctl = ssh user@host vde_plug /var/run/vde2/tap0.ctl"},
		{"vde2-plug keeps a leading -",
			PlugArgs(Env{Iface: "tap0", Plug: "- x"}, c, []string{"/usr/local/bin/vde", "plug"}),
			"-p /var/run/vde2/tap0-plug.pid /usr/local/bin/vde plug -g vde2-net -m 660 /var/run/vde2/tap0.ctl = - x"},
	} {
		if got := strings.Join(tt.got, " "); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.desc, got, tt.want)
		}
	}
}

func TestPathsFor(t *testing.T) {
	p := PathsFor("/run/x", "tap0")
	want := Paths{Ctl: "/run/x/tap0.ctl", Mgmt: "/run/x/tap0.mgmt", SwitchPid: "/run/x/tap0.pid",
		SlirpPid: "/run/x/tap0-slirp.pid", PlugPid: "/run/x/tap0-plug.pid"}
	if p != want {
		t.Errorf("PathsFor = %+v, want %+v", p, want)
	}
}

// FuzzSplit: words are never empty and hold no IFS byte, and together they are the
// input without its IFS bytes.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"", "-", "-t qemu", " \t\n", "ssh user@host vde_plug /var/run/vde2/tap0.ctl", "a\u00a0b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words := Split(s)
		for _, w := range words {
			if w == "" || strings.ContainsAny(w, " \t\n") {
				t.Fatalf("Split(%q): bad word %q in %q", s, w, words)
			}
		}
		strip := strings.NewReplacer(" ", "", "\t", "", "\n", "")
		if got, want := strings.Join(words, ""), strip.Replace(s); got != want {
			t.Fatalf("Split(%q) = %q: joined %q, want %q", s, words, got, want)
		}
	})
}

// FuzzArgs: whatever the stanza says, the files stay in the run directory, the fixed
// options come first and unchanged, and the stanza's words follow them verbatim.
func FuzzArgs(f *testing.F) {
	f.Add("tap0", "static", "-", "-dhcp", "ssh user@host vde_plug /var/run/vde2/tap0.ctl")
	f.Add("vde0", "manual", "-t qemu", "- -netaddr 10.0.5.0", "vde_plug /tmp/vde2.ctl")
	f.Add("../x", "dhcp", "-s /etc -p /etc/passwd", "-", "-")
	f.Fuzz(func(t *testing.T, iface, method, sw, slirp, plug string) {
		e := Env{Iface: iface, Method: method, Switch: sw, Slirp: slirp, Plug: plug}
		if CheckIface(iface) != nil {
			return
		}
		const dir = "/var/run/vde2"
		p := PathsFor(dir, iface)
		for _, f := range []string{p.Ctl, p.Mgmt, p.SwitchPid, p.SlirpPid, p.PlugPid} {
			if filepath.Dir(f) != dir {
				t.Fatalf("IFACE %q: %s is not in %s", iface, f, dir)
			}
		}
		c := Config{RunDir: dir}
		fixed := []string{"-s", p.Ctl, "-m", "660", "-g", "vde2-net", "-p", p.SwitchPid}
		if method != "manual" {
			fixed = append(fixed, "-t", iface)
		}
		fixed = append(fixed, "-M", p.Mgmt, "--mgmtmode", "660", "-d")
		got := SwitchArgs(e, c)
		if !slices.Equal(got[:len(fixed)], fixed) || !slices.Equal(got[len(fixed):], extraArgs(sw)) {
			t.Fatalf("SwitchArgs(%+v) = %q", e, got)
		}
		sl := SlirpArgs(e, c)
		if !slices.Equal(sl[:7], []string{"-s", p.Ctl, "-m", "660", "-p", p.SlirpPid, "-d"}) || !slices.Equal(sl[7:], extraArgs(slirp)) {
			t.Fatalf("SlirpArgs(%+v) = %q", e, sl)
		}
		pl := PlugArgs(e, c, []string{"vde_plug"})
		head := []string{"-p", p.PlugPid, "vde_plug", "-g", "vde2-net", "-m", "660", p.Ctl, "="}
		if !slices.Equal(pl[:len(head)], head) || !slices.Equal(pl[len(head):], Split(plug)) {
			t.Fatalf("PlugArgs(%+v) = %q", e, pl)
		}
	})
}
