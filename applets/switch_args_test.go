package applets

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vde-go/vde/switchcore"
)

// testEnv is a non-root user in /start with one group, vde2-net (gid 123); numbers are
// gids, as lookupGroup takes them.
var testEnv = switchEnv{
	Euid: 1000,
	Cwd:  "/start",
	LookupGroup: func(name string) (int, error) {
		if name == "vde2-net" {
			return 123, nil
		}
		if gid, err := strconv.Atoi(name); err == nil && gid >= 0 {
			return gid, nil
		}
		return -1, errors.New("no such group")
	},
}

// defaultConfig is what an empty command line gives for testEnv.
func defaultConfig() switchcore.Config {
	return switchcore.Config{
		NumPorts:  32,
		Priority:  0x8000,
		HashSize:  128,
		CtlDir:    "/tmp/vde.ctl",
		Group:     -1,
		MgmtMode:  0o600,
		MgmtGroup: -1,
	}
}

func usageWith(numports int) string { return fmt.Sprintf(switchUsage, numports) }

func TestParseSwitchArgsOptions(t *testing.T) {
	tests := []struct {
		desc string
		args []string
		// edit turns the default options into the expected ones.
		edit func(o *switchOptions)
	}{
		{"no options", nil, func(o *switchOptions) {}},

		{"-s", []string{"-s", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"-s glued", []string{"-s/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"--sock", []string{"--sock", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"-sock", []string{"-sock", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"--sock=", []string{"--sock=/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"-sock=", []string{"-sock=/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"--vdesock", []string{"--vdesock", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"-vdesock", []string{"-vdesock", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"--unix", []string{"--unix", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"-unix", []string{"-unix", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"-u is a prefix of -unix", []string{"-u", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"--so prefix", []string{"--so", "/x"}, func(o *switchOptions) { o.Config.CtlDir = "/x" }},
		{"argument starting with a dash", []string{"-s", "-x"}, func(o *switchOptions) { o.Config.CtlDir = "-x" }},
		{"last -s wins", []string{"-s", "/a", "--sock", "/b"}, func(o *switchOptions) { o.Config.CtlDir = "/b" }},

		{"-n", []string{"-n", "4"}, func(o *switchOptions) { o.Config.NumPorts = 4 }},
		{"-n glued", []string{"-n4"}, func(o *switchOptions) { o.Config.NumPorts = 4 }},
		{"--numports", []string{"--numports", "4"}, func(o *switchOptions) { o.Config.NumPorts = 4 }},
		{"-numports", []string{"-numports", "4"}, func(o *switchOptions) { o.Config.NumPorts = 4 }},
		{"--numports=", []string{"--numports=3"}, func(o *switchOptions) { o.Config.NumPorts = 3 }},
		{"-n hex", []string{"-n", "0x10"}, func(o *switchOptions) { o.Config.NumPorts = 16 }},
		{"-n octal", []string{"-n", "010"}, func(o *switchOptions) { o.Config.NumPorts = 8 }},
		{"-n trailing junk", []string{"-n", "12abc"}, func(o *switchOptions) { o.Config.NumPorts = 12 }},
		{"-n leading blanks", []string{"-n", "  7"}, func(o *switchOptions) { o.Config.NumPorts = 7 }},

		{"-x", []string{"-x"}, func(o *switchOptions) { o.Config.Hub = true }},
		{"--hub", []string{"--hub"}, func(o *switchOptions) { o.Config.Hub = true }},
		{"-hub", []string{"-hub"}, func(o *switchOptions) { o.Config.Hub = true }},
		{"--flowcontrol", []string{"--flowcontrol"}, func(o *switchOptions) { o.Config.FlowControl = switchcore.FlowAlways }},
		{"-flow prefix", []string{"-flow"}, func(o *switchOptions) { o.Config.FlowControl = switchcore.FlowAlways }},
		{"--noflowcontrol", []string{"--noflowcontrol"}, func(o *switchOptions) { o.Config.FlowControl = switchcore.FlowNever }},
		{"the last flow option wins", []string{"--noflowcontrol", "--flowcontrol"}, func(o *switchOptions) { o.Config.FlowControl = switchcore.FlowAlways }},
		{"-x -F: hub turns FSTP off", []string{"-x", "-F"}, func(o *switchOptions) { o.Config.Hub = true }},
		{"-F -x: hub turns FSTP off", []string{"-F", "-x"}, func(o *switchOptions) { o.Config.Hub = true }},
		{"-hub -fstp", []string{"-hub", "-fstp"}, func(o *switchOptions) { o.Config.Hub = true }},
		{"-F", []string{"-F"}, func(o *switchOptions) { o.Config.FSTP = true }},
		{"--fstp", []string{"--fstp"}, func(o *switchOptions) { o.Config.FSTP = true }},
		{"-fstp", []string{"-fstp"}, func(o *switchOptions) { o.Config.FSTP = true }},

		{"--macaddr colons", []string{"--macaddr", "0:ff:1:2:3:4"}, func(o *switchOptions) { o.Config.MAC = [6]byte{0, 0xff, 1, 2, 3, 4} }},
		{"-macaddr dots", []string{"-macaddr", "a.b.c.d.e.f"}, func(o *switchOptions) { o.Config.MAC = [6]byte{10, 11, 12, 13, 14, 15} }},
		{"--macaddr=", []string{"--macaddr=12:34:56:78:9a:bc"}, func(o *switchOptions) { o.Config.MAC = [6]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc} }},

		{"--priority", []string{"--priority", "7"}, func(o *switchOptions) { o.Config.Priority = 7 }},
		{"--priority masked", []string{"--priority", "0x12345"}, func(o *switchOptions) { o.Config.Priority = 0x2345 }},
		{"-priority no number", []string{"-priority", "abc"}, func(o *switchOptions) {}},

		{"--hashsize power of 2", []string{"--hashsize", "256"}, func(o *switchOptions) { o.Config.HashSize = 256 }},
		{"--hashsize rounded", []string{"--hashsize", "100"}, func(o *switchOptions) {
			o.Config.HashSize = 128
			o.Warnings = []string{"Hash size must be a power of 2. 100 rounded to 128"}
		}},
		{"-hashsize hex rounded", []string{"-hashsize", "0x41"}, func(o *switchOptions) {
			o.Config.HashSize = 128
			o.Warnings = []string{"Hash size must be a power of 2. 65 rounded to 128"}
		}},
		{"--hashsize 0 is one bucket", []string{"--hashsize", "0"}, func(o *switchOptions) { o.Config.HashSize = 1 }},
		{"--hashsize 1", []string{"--hashsize", "1"}, func(o *switchOptions) { o.Config.HashSize = 1 }},
		{"--hashsize no number", []string{"--hashsize", "x"}, func(o *switchOptions) {}},

		{"-m", []string{"-m", "660"}, func(o *switchOptions) { o.Config.Mode, o.Config.ModeSet = 0o660, true }},
		{"-m glued", []string{"-m660"}, func(o *switchOptions) { o.Config.Mode, o.Config.ModeSet = 0o660, true }},
		{"--mode", []string{"--mode", "0666"}, func(o *switchOptions) { o.Config.Mode, o.Config.ModeSet = 0o666, true }},
		{"-mode", []string{"-mode", "600"}, func(o *switchOptions) { o.Config.Mode, o.Config.ModeSet = 0o600, true }},
		{"--mod", []string{"--mod", "640"}, func(o *switchOptions) { o.Config.Mode, o.Config.ModeSet = 0o640, true }},
		{"-mod", []string{"-mod", "640"}, func(o *switchOptions) { o.Config.Mode, o.Config.ModeSet = 0o640, true }},
		{"-m not octal is not given", []string{"-m", "99"}, func(o *switchOptions) {}},
		{"-m negative is not given", []string{"-m", "-1"}, func(o *switchOptions) {}},
		{"-m bad keeps the earlier -m", []string{"-m", "660", "-m", "zz"}, func(o *switchOptions) { o.Config.Mode, o.Config.ModeSet = 0o660, true }},
		{"-m zero", []string{"-m", "0"}, func(o *switchOptions) { o.Config.Mode, o.Config.ModeSet = 0, true }},
		{"--dirmode", []string{"--dirmode", "2770"}, func(o *switchOptions) { o.Config.DirMode, o.Config.DirModeSet = 0o2770, true }},
		{"-dirmode", []string{"-dirmode", "0755"}, func(o *switchOptions) { o.Config.DirMode, o.Config.DirModeSet = 0o755, true }},
		{"--mgmtmode", []string{"--mgmtmode", "660"}, func(o *switchOptions) { o.Config.MgmtMode = 0o660 }},
		{"-mgmtmode not octal", []string{"-mgmtmode", "zz"}, func(o *switchOptions) {}},

		{"-g", []string{"-g", "vde2-net"}, func(o *switchOptions) { o.Config.Group = 123 }},
		{"--group", []string{"--group", "vde2-net"}, func(o *switchOptions) { o.Config.Group = 123 }},
		{"-group number", []string{"-group", "77"}, func(o *switchOptions) { o.Config.Group = 77 }},
		{"--mgmtgroup", []string{"--mgmtgroup", "vde2-net"}, func(o *switchOptions) { o.Config.MgmtGroup = 123 }},
		{"-mgmtgroup", []string{"-mgmtgroup", "0"}, func(o *switchOptions) { o.Config.MgmtGroup = 0 }},

		{"-d", []string{"-d"}, func(o *switchOptions) { o.Daemon = true }},
		{"--daemon", []string{"--daemon"}, func(o *switchOptions) { o.Daemon = true }},
		{"-daemon", []string{"-daemon"}, func(o *switchOptions) { o.Daemon = true }},
		{"--dae prefix", []string{"--dae"}, func(o *switchOptions) { o.Daemon = true }},
		{"-dx bundle", []string{"-dx"}, func(o *switchOptions) { o.Daemon, o.Config.Hub = true, true }},
		{"-xds bundle with argument", []string{"-xds", "/x"}, func(o *switchOptions) {
			o.Daemon, o.Config.Hub, o.Config.CtlDir = true, true, "/x"
		}},

		{"-p relative", []string{"-p", "sw.pid"}, func(o *switchOptions) { o.PidFile = "/start/sw.pid" }},
		{"--pidfile absolute", []string{"--pidfile", "/run/sw.pid"}, func(o *switchOptions) { o.PidFile = "/run/sw.pid" }},
		{"-pidfile", []string{"-pidfile", "../sw.pid"}, func(o *switchOptions) { o.PidFile = "/sw.pid" }},

		{"-f", []string{"-f", "sw.rc"}, func(o *switchOptions) { o.RCFile = "sw.rc" }},
		{"--rcfile", []string{"--rcfile", "/etc/sw.rc"}, func(o *switchOptions) { o.RCFile = "/etc/sw.rc" }},
		{"-rcfile", []string{"-rcfile", "sw.rc"}, func(o *switchOptions) { o.RCFile = "sw.rc" }},

		{"-M", []string{"-M", "/x.mgmt"}, func(o *switchOptions) { o.Config.MgmtPath = "/x.mgmt" }},
		{"--mgmt", []string{"--mgmt", "/x.mgmt"}, func(o *switchOptions) { o.Config.MgmtPath = "/x.mgmt" }},
		{"-mgmt exact beats longer names", []string{"-mgmt", "/x.mgmt"}, func(o *switchOptions) { o.Config.MgmtPath = "/x.mgmt" }},

		{"--nostdin", []string{"--nostdin"}, func(o *switchOptions) { o.NoStdin = true }},
		{"-nostdin", []string{"-nostdin"}, func(o *switchOptions) { o.NoStdin = true }},

		{"-t", []string{"-t", "tap0"}, func(o *switchOptions) { o.Taps = []string{"tap0"} }},
		{"-t repeated, in order", []string{"-t", "tap1", "--tap", "tap0", "-tap=vde3", "-tvde4"}, func(o *switchOptions) {
			o.Taps = []string{"tap1", "tap0", "vde3", "vde4"}
		}},
		{"-t does not split on commas", []string{"-t", "tap0,tap1"}, func(o *switchOptions) { o.Taps = []string{"tap0,tap1"} }},

		{"-D ignored", []string{"-D", "3"}, func(o *switchOptions) {}},
		{"--debugclients= ignored", []string{"--debugclients=3"}, func(o *switchOptions) {}},

		{"the ifupdown hook's command line", []string{
			"-sock", "/var/run/vde2/tap0.ctl", "-mgmt", "/var/run/vde2/tap0.mgmt",
			"-daemon", "-pidfile", "/var/run/vde2/tap0.pid", "-numports", "4", "-hub",
			"-macaddr", "00:ff:00:00:00:01", "-m", "660", "-mgmtmode", "660", "-g", "vde2-net",
		}, func(o *switchOptions) {
			c := &o.Config
			c.CtlDir, c.MgmtPath, c.NumPorts, c.Hub = "/var/run/vde2/tap0.ctl", "/var/run/vde2/tap0.mgmt", 4, true
			c.MAC = [6]byte{0, 0xff, 0, 0, 0, 1}
			c.Mode, c.ModeSet, c.MgmtMode, c.Group = 0o660, true, 0o660, 123
			o.Daemon, o.PidFile = true, "/var/run/vde2/tap0.pid"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := parseSwitchArgs(tt.args, testEnv)
			if err != nil {
				t.Fatalf("parseSwitchArgs(%q): %v", tt.args, err)
			}
			want := &switchOptions{Config: defaultConfig()}
			tt.edit(want)
			if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *want) {
				t.Errorf("parseSwitchArgs(%q)\n got %+v\nwant %+v", tt.args, *got, *want)
			}
		})
	}
}

func TestParseSwitchArgsRootSocket(t *testing.T) {
	env := testEnv
	env.Euid = 0
	o, err := parseSwitchArgs(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if o.Config.CtlDir != "/var/run/vde.ctl" {
		t.Errorf("root's default ctl dir = %q, want /var/run/vde.ctl", o.Config.CtlDir)
	}
}

func TestParseSwitchArgsExits(t *testing.T) {
	usage := usageWith(32)
	tests := []struct {
		desc   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"-h", []string{"-h"}, 1, usage, ""},
		{"--help", []string{"--help"}, 1, usage, ""},
		{"-help", []string{"-help"}, 1, usage, ""},
		{"-h shows the ports set so far", []string{"-n", "4", "-h"}, 1, usageWith(4), ""},
		{"-h before -n", []string{"-h", "-n", "4"}, 1, usage, ""},
		{"-h before -v", []string{"-h", "-v"}, 1, usage, ""},
		{"-v before -h", []string{"-v", "-h"}, 0, switchVersionText(), ""},
		{"-v", []string{"-v"}, 0, switchVersionText(), ""},
		{"--version", []string{"--version"}, 0, switchVersionText(), ""},
		{"-version", []string{"-version"}, 0, switchVersionText(), ""},
		{"operand", []string{"foo"}, 1, usage, ""},
		{"operand after options", []string{"-x", "foo"}, 1, usage, ""},
		{"options after an operand still act", []string{"foo", "-v"}, 0, switchVersionText(), ""},
		{"-- ends options", []string{"--", "-h"}, 1, usage, ""},
		{"lone dash is an operand", []string{"-"}, 1, usage, ""},

		{"-n 0", []string{"-n", "0"}, 1, usage, "vde_switch: Invalid number of ports 0\n"},
		{"-n negative", []string{"-n", "-5"}, 1, usage, "vde_switch: Invalid number of ports -5\n"},
		{"-n not a number", []string{"-n", "abc"}, 1, usage, "vde_switch: Invalid number of ports abc\n"},
		{"-n wraps like a C int", []string{"-n", "0x80000000"}, 1, usage, "vde_switch: Invalid number of ports 0x80000000\n"},

		{"bad MAC", []string{"--macaddr", "zz"}, 1, usage, "vde_switch: Invalid MAC Addr zz\n"},
		{"short MAC", []string{"-macaddr", "1:2:3:4:5"}, 1, usage, "vde_switch: Invalid MAC Addr 1:2:3:4:5\n"},
		{"bad MAC after -n", []string{"-n", "8", "--macaddr", "1.2.3"}, 1, usageWith(8), "vde_switch: Invalid MAC Addr 1.2.3\n"},

		{"--hashsize negative", []string{"--hashsize", "-4"}, 1, usage, "vde_switch: Invalid hash size -4\n"},
		{"--hashsize too big", []string{"--hashsize", "3000000000"}, 1, usage, "vde_switch: Invalid hash size 3000000000\n"},

		{"-g unknown", []string{"-g", "nosuch"}, 1, "", "No such group 'nosuch'\n"},
		{"--group unknown", []string{"--group", "nosuch"}, 1, "", "No such group 'nosuch'\n"},
		{"--mgmtgroup unknown", []string{"--mgmtgroup", "nosuch"}, 1, "", "No such group 'nosuch'\n"},
		{"-mgmtgroup unknown", []string{"-mgmtgroup", "-1"}, 1, "", "No such group '-1'\n"},

		{"-t without a value", []string{"-t"}, 1, usage, "vde_switch: option requires an argument -- 't'\n"},

		{"unknown long option", []string{"--foo"}, 1, usage, "vde_switch: unrecognized option '--foo'\n"},
		{"unknown long option with value", []string{"--foo=1"}, 1, usage, "vde_switch: unrecognized option '--foo=1'\n"},
		{"unknown single-dash option", []string{"-q"}, 1, usage, "vde_switch: unrecognized option '-q'\n"},
		{"-P is not an option", []string{"-P", "3"}, 1, usage, "vde_switch: unrecognized option '-P'\n"},
		{"unknown letter in a bundle", []string{"-dq"}, 1, usage, "vde_switch: invalid option -- 'q'\n"},
		{"ambiguous prefix", []string{"--mo", "600"}, 1, usage, "vde_switch: option '--mo' is ambiguous; possibilities: '--mode' '--mod'\n"},
		{"ambiguous single-dash prefix", []string{"-mgm", "x"}, 1, usage, "vde_switch: option '-mgm' is ambiguous; possibilities: '-mgmt' '-mgmtmode' '-mgmtgroup'\n"},
		{"ambiguous with value", []string{"-h=1"}, 1, usage, "vde_switch: option '-h=1' is ambiguous; possibilities: '-help' '-hub' '-hashsize'\n"},
		{"flag with a value", []string{"--hub=1"}, 1, usage, "vde_switch: option '--hub' doesn't allow an argument\n"},
		{"single-dash flag with a value", []string{"-hub=1"}, 1, usage, "vde_switch: option '-hub' doesn't allow an argument\n"},
		{"missing long argument", []string{"--sock"}, 1, usage, "vde_switch: option '--sock' requires an argument\n"},
		{"missing argument of a prefix", []string{"-u"}, 1, usage, "vde_switch: option '-unix' requires an argument\n"},
		{"missing short argument", []string{"-s"}, 1, usage, "vde_switch: option requires an argument -- 's'\n"},
		{"error after -h", []string{"-h", "--foo"}, 1, usage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			o, err := parseSwitchArgs(tt.args, testEnv)
			var pe *parseExit
			if !errors.As(err, &pe) {
				t.Fatalf("parseSwitchArgs(%q) = %+v, %v; want an exit", tt.args, o, err)
			}
			if pe.Code != tt.code {
				t.Errorf("exit status %d, want %d", pe.Code, tt.code)
			}
			if pe.Stdout != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", pe.Stdout, tt.stdout)
			}
			if pe.Stderr != tt.stderr {
				t.Errorf("stderr %q, want %q", pe.Stderr, tt.stderr)
			}
		})
	}
}

// The usage must be the Debian binary's, byte for byte, but for HEAD's --nostdin line, our
// --flowcontrol, --noflowcontrol, --metrics, --vhost-user and --poll lines and the bug address.
func TestSwitchUsageText(t *testing.T) {
	b, err := os.ReadFile("testdata/vde_switch-debian.usage")
	if err != nil {
		t.Fatal(err)
	}
	want := string(b)
	mgmtgroup := "      --mgmtgroup GROUP      management UNIX socket group name\n"
	want = strings.Replace(want, mgmtgroup, mgmtgroup+"      --nostdin              Allow stdin to be closed\n", 1)
	hashsize := "      --hashsize N           Hash table size\n"
	want = strings.Replace(want, hashsize, hashsize+"      --flowcontrol          Slow senders to a full port's pace instead of dropping\n"+
		"      --noflowcontrol        Drop what a full port cannot take, as the C switch\n"+
		"      --metrics ADDR         Serve Prometheus metrics on ADDR (host:port or socket path)\n"+
		"      --vhost-user PATH      Serve vhost-user frontends (QEMU, DPDK) on PATH, a port each\n"+
		"      --poll                 vhost-user ports poll instead of sleeping (uses a core)\n", 1)
	want = strings.Replace(want, "Report bugs to info@v2.cs.unibo.it\n", "Report bugs to https://github.com/vde-go/vde/issues\n", 1)
	if got := usageWith(32); got != want {
		t.Errorf("usage text differs from vde_switch's:\n%s\nwant:\n%s", got, want)
	}
}

func TestSwitchVersionText(t *testing.T) {
	first, _, _ := strings.Cut(switchVersionText(), "\n")
	if first != "VDE "+Version {
		t.Errorf("first line %q, want %q", first, "VDE "+Version)
	}
}

func TestLookupGroup(t *testing.T) {
	if gid, err := lookupGroup("root"); err != nil || gid != 0 {
		t.Errorf(`lookupGroup("root") = %d, %v; want 0`, gid, err)
	}
	if gid, err := lookupGroup("4242"); err != nil || gid != 4242 {
		t.Errorf(`lookupGroup("4242") = %d, %v; want 4242`, gid, err)
	}
	for _, bad := range []string{"no-such-group-vde", "-1", ""} {
		if gid, err := lookupGroup(bad); err == nil {
			t.Errorf("lookupGroup(%q) = %d, want an error", bad, gid)
		}
	}
}

func TestSwitchVhostUserArgs(t *testing.T) {
	o, err := parseSwitchArgs([]string{"--vhost-user", "/run/a.sock", "--vhost-user=/run/b.sock", "--poll"}, switchEnv{Euid: 0, Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.VhostUser, " ") != "/run/a.sock /run/b.sock" || !o.Poll {
		t.Fatalf("VhostUser %q, Poll %v", o.VhostUser, o.Poll)
	}
}
