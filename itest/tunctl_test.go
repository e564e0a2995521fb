package itest

// vde_tunctl, ours beside Debian's: each runs the same command lines in a network
// namespace of its own, and what they print, their exit statuses and the devices they
// leave behind (type, flags, owner, group, persistence) must be the same.

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const debianTunctl = "/usr/sbin/vde_tunctl"

// tunctlBin is the vde_tunctl of an implementation: Debian's, or a link to our binary.
func tunctlBin(t testing.TB, which string) string {
	t.Helper()
	if which == implDebian {
		requireTools(t, debianTunctl)
		return "vde_tunctl" // by name, as users run it: C prints argv[0] in its messages
	}
	return appletPath(t, "vde_tunctl")
}

// tunctlResult is what one run showed.
type tunctlResult struct {
	Stdout, Stderr string
	Code           int
}

// runTunctl runs vde_tunctl with args inside ns.
func runTunctl(t testing.TB, bin, ns string, args ...string) tunctlResult {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	if bin == "vde_tunctl" {
		cmd.Env = append(cmd.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	}
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return tunctlResult{out.String(), errb.String(), code}
}

// tunDevices lists the TUN/TAP devices of ns, one line each: name, the tun_flags, owner
// and group from sysfs, and `ip -d link`'s details without the index and the random MAC.
func tunDevices(t testing.TB, ns string) string {
	t.Helper()
	out := nsRun(t, ns, "sh", "-c", `for d in /sys/class/net/*; do
		[ -e "$d/tun_flags" ] || continue
		n=${d##*/}
		echo "$n flags=$(cat $d/tun_flags) owner=$(cat $d/owner) group=$(cat $d/group)"
		ip -d link show dev "$n"
	done`)
	out = regexp.MustCompile(`(?m)^\d+: `).ReplaceAllString(out, "")
	return regexp.MustCompile(`link/ether \S+`).ReplaceAllString(out, "link/ether MAC")
}

// TestTunctlSideBySide: the same command lines, good and bad, one after the other in two
// namespaces, ours in one and Debian's in the other.
func TestTunctlSideBySide(t *testing.T) {
	requireTun(t)
	ours, debian := tunctlBin(t, impl), tunctlBin(t, implDebian)
	nsO, nsD := newNetns(t), newNetns(t)
	// A TAP held open by a process (vdeplug4's tap module) in each namespace: TUNSETIFF
	// on it is refused with EBUSY.
	requireTools(t, "vde_plug")
	for _, ns := range []string{nsO, nsD} {
		p := startProc(t, "ip", "netns", "exec", ns, "vde_plug", "null://", "tap://kbusy")
		waitFor(t, startTimeout, "kbusy in "+ns, func() (bool, string) {
			if p.Exited() {
				t.Fatalf("vde_plug null:// tap://kbusy: %v\n%s", p.waitErr, p.Stderr.String())
			}
			out, err := tryRun("ip", "-n", ns, "link", "show", "kbusy")
			return err == nil, out
		})
	}
	steps := []struct {
		desc string
		args []string
	}{
		// Bad command lines first: they must leave no device behind.
		{"-h", []string{"-h"}},
		{"--help", []string{"--help"}},
		{"-i", []string{"-i", "-t", "kbad0"}},
		{"missing value", []string{"-t"}},
		{"an operand", []string{"-t", "kbad1", "extra"}},
		{"unknown user", []string{"-u", "nosuchuser-vde", "-t", "kbad2"}},
		{"trailing text in a uid", []string{"-u", "12abc", "-t", "kbad3"}},
		{"0x is no number to strtol", []string{"-u", "0x", "-t", "kbad4"}},
		{"no clone device", []string{"-f", "/nonexistent/tun", "-t", "kbad5"}},
		{"not a clone device", []string{"-f", "/dev/null", "-t", "kbad6"}},
		{"a name the kernel refuses", []string{"-t", "a b"}},
		{"busy", []string{"-t", "kbusy"}},
		{"busy -d", []string{"-d", "kbusy"}},
		// Devices.
		{"-u name", []string{"-u", "nobody", "-t", "kt0"}},
		{"plain", []string{"-t", "kt1"}},
		{"again: updates", []string{"-u", "1000", "-t", "kt1"}},
		{"-b", []string{"-b", "-t", "kt2"}},
		{"kernel's name, brief", []string{"-b"}},
		{"kernel's name", nil},
		{"-n, kernel's name", []string{"-n"}},
		{"a tun name", []string{"-t", "tunk0"}},
		{"-n after the name", []string{"-t", "kn0", "-n"}},
		{"a TAP name on a TUN", []string{"-t", "kn0"}},
		{"pattern", []string{"-t", "kp%d"}},
		{"-u empty is uid 0", []string{"-u", "", "-t", "ku0"}},
		{"-u -1 is no owner: euid", []string{"-u", "-1", "-t", "ku1"}},
		{"-u 2^32-1 likewise", []string{"-u", "4294967295", "-t", "ku2"}},
		{"-u cut to 32 bits", []string{"-u", "99999999999", "-t", "ku3"}},
		{"-u printed signed", []string{"-u", "3000000000", "-t", "ku4"}},
		{"-u hex", []string{"-u", "0x10", "-t", "ku5"}},
		{"-u octal", []string{"-u", "010", "-t", "ku6"}},
		{"bundle", []string{"-bu0", "-tku7"}},
		{"-f", []string{"-f", "/dev/net/tun", "-t", "kf0"}},
		// Deleting.
		{"-d", []string{"-d", "kt0"}},
		{"-d a name that never was", []string{"-d", "knone"}},
		{"-d a tun", []string{"-d", "tunk0"}},
		{"-d a TUN by a TAP name", []string{"-d", "kn0"}},
		{"-d -n", []string{"-n", "-d", "kn0"}},
		{"-d twice", []string{"-d", "kt0"}},
	}
	for i, s := range steps {
		o := runTunctl(t, ours, nsO, s.args...)
		d := runTunctl(t, debian, nsD, s.args...)
		if o != d {
			t.Errorf("%s: vde_tunctl %q:\n ours   exit %d, stdout %q, stderr %q\n debian exit %d, stdout %q, stderr %q",
				s.desc, s.args, o.Code, o.Stdout, o.Stderr, d.Code, d.Stdout, d.Stderr)
		}
		if s.desc == "busy -d" {
			// Only kbusy exists: no bad command line left a device.
			if devs := tunDevices(t, nsO); strings.Count(devs, "flags=") != 1 {
				t.Errorf("after the bad command lines (up to %d), ours left devices:\n%s", i, devs)
			}
		}
	}
	if o, d := tunDevices(t, nsO), tunDevices(t, nsD); o != d {
		t.Errorf("devices differ:\n--- ours\n%s--- debian\n%s", o, d)
	}
}

// TestTunctlGroup: -g, which Debian's usage and code have but its getopt string lacks
// ("invalid option -- 'g'"): ours sets the group, with or without an owner.
func TestTunctlGroup(t *testing.T) {
	requireTun(t)
	oursOnly(t, "Debian's vde_tunctl refuses -g")
	bin := tunctlBin(t, implOurs)
	ns := newNetns(t)
	if d := runTunctl(t, tunctlBin(t, implDebian), ns, "-g", "0", "-t", "kg9"); d.Code != 1 || !strings.HasPrefix(d.Stderr, "vde_tunctl: invalid option -- 'g'\n") {
		t.Logf("Debian's vde_tunctl -g: exit %d, %q (it has learnt -g?)", d.Code, d.Stderr)
	}
	tests := []struct {
		args         []string
		out          string
		owner, group string
	}{
		{[]string{"-g", "nogroup", "-t", "kg0"}, "Set 'kg0' persistent and owned by gid 65534\n", "-1", "65534"},
		{[]string{"-u", "nobody", "-g", "100", "-t", "kg1"}, "Set 'kg1' persistent and owned by uid 65534 gid 100\n", "65534", "100"},
		{[]string{"-g", "-1", "-t", "kg2"}, "Set 'kg2' persistent and owned by uid 0\n", "0", "-1"},
	}
	for _, tt := range tests {
		r := runTunctl(t, bin, ns, tt.args...)
		if r.Code != 0 || r.Stdout != tt.out || r.Stderr != "" {
			t.Errorf("vde_tunctl %q: exit %d, stdout %q, stderr %q; want 0, %q", tt.args, r.Code, r.Stdout, r.Stderr, tt.out)
			continue
		}
		name := tt.args[len(tt.args)-1]
		got := nsRun(t, ns, "sh", "-c", fmt.Sprintf("cat /sys/class/net/%s/owner /sys/class/net/%s/group", name, name))
		if want := tt.owner + "\n" + tt.group + "\n"; got != want {
			t.Errorf("%s: owner and group %q, want %q", name, got, want)
		}
	}
	r := runTunctl(t, bin, ns, "-g", "nosuchgroup-vde")
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, "'nosuchgroup-vde' is neither a groupname nor a numeric group.\nCreate: ") {
		t.Errorf("-g nosuchgroup-vde: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// TestTunctlLongName: Debian's cuts a name to 15 bytes and makes a device of another
// name; ours refuses it and makes nothing.
func TestTunctlLongName(t *testing.T) {
	requireTun(t)
	oursOnly(t, "Debian's vde_tunctl cuts long names")
	ns := newNetns(t)
	for _, args := range [][]string{{"-t", "kverylongname0123"}, {"-d", "kverylongname0123"}} {
		r := runTunctl(t, tunctlBin(t, implOurs), ns, args...)
		want := "vde_tunctl: 'kverylongname0123': interface name longer than 15 bytes\n"
		if r.Code != 1 || r.Stdout != "" || r.Stderr != want {
			t.Errorf("vde_tunctl %q: exit %d, stdout %q, stderr %q; want 1, %q", args, r.Code, r.Stdout, r.Stderr, want)
		}
	}
	if devs := tunDevices(t, ns); devs != "" {
		t.Errorf("devices left:\n%s", devs)
	}
}
