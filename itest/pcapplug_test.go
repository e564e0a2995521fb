package itest

// vde_pcapplug: a switch joined to one end of a veth pair, whose other end is a host with
// an address in a namespace of its own, and a TAP host on the switch. Ours carries ping
// and TCP both ways; Debian's (libpcap without immediate mode) only switch -> interface.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const debianPcapplug = "/usr/bin/vde_pcapplug"

// pcapplugBin is the vde_pcapplug of an implementation: Debian's, or a link to ours.
func pcapplugBin(t testing.TB, which string) string {
	t.Helper()
	if which == implDebian {
		requireTools(t, debianPcapplug)
		return "vde_pcapplug" // by name, as users run it: C prints argv[0] in its messages
	}
	return appletPath(t, "vde_pcapplug")
}

// wireHost is a veth pair: the end the plug attaches to (up, no address) in a namespace
// of its own, and the other end as a host with cidr in another.
type wireHost struct {
	PlugNS, Iface string // where the plug runs, the end it attaches to
	Host          *tapHost
}

func newWireHost(t testing.TB, cidr string) *wireHost {
	t.Helper()
	w := &wireHost{PlugNS: newNetns(t), Iface: "pv" + uniqueSuffix(), Host: &tapHost{NS: newNetns(t), Tap: "pw" + uniqueSuffix()}}
	run(t, "ip", "-n", w.PlugNS, "link", "add", w.Iface, "type", "veth", "peer", "name", w.Host.Tap, "netns", w.Host.NS)
	run(t, "ip", "-n", w.PlugNS, "link", "set", w.Iface, "up")
	w.Host.Addr, _, _ = strings.Cut(cidr, "/")
	run(t, "ip", "-n", w.Host.NS, "addr", "add", cidr, "dev", w.Host.Tap)
	run(t, "ip", "-n", w.Host.NS, "link", "set", w.Host.Tap, "up")
	return w
}

// promiscuity is the interface's promiscuous count, as `ip -d link` shows it.
func promiscuity(t testing.TB, ns, iface string) int {
	t.Helper()
	out := run(t, "ip", "-n", ns, "-d", "link", "show", iface)
	m := regexp.MustCompile(`promiscuity (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no promiscuity in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// startPcapplug runs a vde_pcapplug in the wire host's plug namespace, attached to sw.
func startPcapplug(t testing.TB, bin string, sw *Switch, w *wireHost, extra ...string) *Proc {
	t.Helper()
	args := append(append([]string{"netns", "exec", w.PlugNS, bin, "-s", sw.Dir}, extra...), w.Iface)
	p := startProc(t, "ip", args...)
	p.Name = "vde_pcapplug(" + filepath.Base(bin) + ")"
	waitPlugged(t, sw, p.PID())
	return p
}

// TestPcapplugBothWays: ping and TCP between a TAP host on the switch and a host behind
// the interface, in both directions; the interface is promiscuous while the plug runs
// and not after; no frame the plug sends comes back to the switch (the TAP host's MAC
// stays on its own port).
func TestPcapplugBothWays(t *testing.T) {
	requireTools(t, "socat", "vde_plug")
	sw := startSwitch(t, impl)
	h := plugTap(t, sw, 1, "10.78.0.1/24")
	w := newWireHost(t, "10.78.0.2/24")
	p := startPcapplug(t, pcapplugBin(t, impl), sw, w, "-p", "2")
	if n := promiscuity(t, w.PlugNS, w.Iface); n != 1 {
		t.Errorf("promiscuity %d while attached, want 1", n)
	}
	waitPing(t, h.NS, w.Host.Addr)
	waitPing(t, w.Host.NS, h.Addr)
	moveFile(t, h, w.Host, 4<<20) // switch -> interface
	moveFile(t, w.Host, h, 4<<20) // interface -> switch: GSO packets from the veth, cut
	// A broadcast from the TAP host (ARP) crossed the plug's port; had it come back, the
	// switch would have moved the TAP host's MAC to port 2.
	mac := strings.ToLower(strings.Fields(run(t, "ip", "-n", h.NS, "-br", "link", "show", h.Tap))[2])
	out := sw.Cmd(t, "hash/print")
	if m := regexp.MustCompile(`(?m)^.*` + regexp.QuoteMeta(mac) + `.*$`).FindString(out); !strings.Contains(m, "to port: 001 ") {
		t.Errorf("the TAP host's MAC %s is not on port 1 in hash/print:\n%s", mac, out)
	}
	p.Stop()
	if code := p.ExitCode(); code != 0 {
		t.Errorf("vde_pcapplug exit %d after SIGTERM, want 0", code)
	}
	if n := promiscuity(t, w.PlugNS, w.Iface); n != 0 {
		t.Errorf("promiscuity %d after the plug ended, want 0", n)
	}
}

// TestPcapplugDebianOneWay: Debian's vde_pcapplug beside ours in the same setup. Its
// switch -> interface direction works (the host behind the interface learns the TAP
// host's address from its ARP requests); the other direction never does on this machine.
func TestPcapplugDebianOneWay(t *testing.T) {
	requireTools(t, "vde_plug")
	sw := startSwitch(t, impl)
	h := plugTap(t, sw, 1, "10.79.0.1/24")
	w := newWireHost(t, "10.79.0.2/24")
	startPcapplug(t, pcapplugBin(t, implDebian), sw, w)
	waitFor(t, 20*time.Second, "the wire host to hear the TAP host's ARP requests", func() (bool, string) {
		tryRun("ip", "netns", "exec", h.NS, "ping", "-n", "-c", "1", "-W", "1", w.Host.Addr)
		out, _ := tryRun("ip", "-n", w.Host.NS, "neigh", "show", h.Addr)
		return strings.Contains(out, h.Addr), out
	})
	if promiscuity(t, w.PlugNS, w.Iface) != 1 {
		t.Error("Debian's did not make the interface promiscuous")
	}
}

// TestPcapplugLinkChanges: ours goes on after the interface's link goes down and up
// again (Debian's ends), and ends with status 0 and a line saying so when the interface
// is deleted; a plug killed with SIGKILL leaves the interface not promiscuous.
func TestPcapplugLinkChanges(t *testing.T) {
	oursOnly(t, "Debian's ends at the first link change")
	requireTools(t, "vde_plug")
	sw := startSwitch(t, impl)
	h := plugTap(t, sw, 1, "10.80.0.1/24")
	w := newWireHost(t, "10.80.0.2/24")
	p := startPcapplug(t, pcapplugBin(t, implOurs), sw, w)
	waitPing(t, h.NS, w.Host.Addr)
	run(t, "ip", "-n", w.PlugNS, "link", "set", w.Iface, "down")
	time.Sleep(300 * time.Millisecond)
	run(t, "ip", "-n", w.PlugNS, "link", "set", w.Iface, "up")
	waitPing(t, w.Host.NS, h.Addr)
	if p.Exited() {
		t.Fatalf("the plug ended when the link went down: %v\n%s", p.waitErr, p.Stderr.String())
	}
	run(t, "ip", "-n", w.PlugNS, "link", "del", w.Iface)
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatalf("after the interface was deleted: %v", err)
	}
	if want := fmt.Sprintf("vde_pcapplug: interface %s is gone\n", w.Iface); p.Stderr.String() != want {
		t.Errorf("stderr %q, want %q", p.Stderr.String(), want)
	}

	w2 := newWireHost(t, "10.80.0.3/24")
	k := startPcapplug(t, pcapplugBin(t, implOurs), sw, w2)
	k.Cmd.Process.Signal(syscall.SIGKILL)
	k.Wait(10 * time.Second)
	waitFor(t, 5*time.Second, "promiscuity 0 after SIGKILL", func() (bool, string) {
		n := promiscuity(t, w2.PlugNS, w2.Iface)
		return n == 0, fmt.Sprint(n)
	})
}

// TestPcapplugDaemon: -d returns once attached, the pid file names the daemon, which
// carries traffic; SIGTERM ends it and removes the pid file.
func TestPcapplugDaemon(t *testing.T) {
	oursOnly(t, "Debian's daemon reports nothing")
	requireTools(t, "vde_plug")
	sw := startSwitch(t, impl)
	h := plugTap(t, sw, 1, "10.81.0.1/24")
	w := newWireHost(t, "10.81.0.2/24")
	pidfile := filepath.Join(testDir(t), "pcap.pid")
	out := run(t, "ip", "netns", "exec", w.PlugNS, pcapplugBin(t, implOurs), "-d", "-P", pidfile, "-s", sw.Dir, w.Iface)
	if out != "" {
		t.Errorf("-d printed %q", out)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	waitPing(t, w.Host.NS, h.Addr)
	syscall.Kill(pid, syscall.SIGTERM)
	waitFor(t, 10*time.Second, "the daemon to end and remove its pid file", func() (bool, string) {
		_, err := os.Stat(pidfile)
		return os.IsNotExist(err) && syscall.Kill(pid, 0) != nil, fmt.Sprint(err)
	})
	if n := promiscuity(t, w.PlugNS, w.Iface); n != 0 {
		t.Errorf("promiscuity %d after the daemon ended", n)
	}
}

// TestPcapplugBadInvocations: ours and Debian's print the same and exit alike for bad
// command lines and interfaces it cannot use, a switch being there.
func TestPcapplugBadInvocations(t *testing.T) {
	requireTun(t)
	sw := startSwitch(t, impl, "-m", "0777", "--dirmode", "0777") // open to nobody too
	os.Chmod(sw.Tmp, 0o755)
	os.Chmod(filepath.Dir(sw.Tmp), 0o755) // t.TempDir's parent, when testDir used it
	ns := newNetns(t)
	run(t, "ip", "-n", ns, "link", "add", "bv0", "type", "veth", "peer", "name", "bv1")
	run(t, "ip", "-n", ns, "link", "set", "bv0", "up")
	run(t, "ip", "-n", ns, "tuntap", "add", "btun0", "mode", "tun")
	run(t, "ip", "-n", ns, "link", "set", "btun0", "up")
	tmp := testDir(t)
	cases := [][]string{
		{"-h"},
		{"--help"},
		{"-x", "bv0"},
		{"--mode=0777", "bv0"}, // the long option is --mod, whatever the usage says
		{"-p", "0", "bv0"},
		{"-p", "-3", "bv0"},
		{"-s"},
		{"-s", filepath.Join(tmp, "nosw"), "bv0"},
		{"-s", sw.Dir, "nosuchif"},
		{"-s", sw.Dir, "bv1"}, // down
		{"-s", sw.Dir, "btun0"},
		{"-s", sw.Dir, "averyveryverylongname0"},
		{"-s", sw.Dir, "-P", filepath.Join(tmp, "nodir", "x.pid"), "bv0"},
		{"-s", sw.Dir, "-P", filepath.Join(tmp, "p.pid"), "bv1"}, // pid file written, then removed
		{"-s", sw.Dir},
		{"nobody", "-s", sw.Dir, "bv0"},
	}
	_, noSetpriv := exec.LookPath("setpriv")
	for _, args := range cases {
		var res [2]string
		for i, which := range []string{impl, implDebian} {
			argv := append([]string{"netns", "exec", ns, pcapplugBin(t, which)}, args...)
			if args[0] == "nobody" {
				if noSetpriv != nil {
					break
				}
				// Not root: no packet socket.
				argv = append([]string{"netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
					pcapplugBin(t, which)}, args[1:]...)
			}
			cmd := exec.Command("ip", argv...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			res[i] = fmt.Sprintf("exit %d\n%s", code, out)
		}
		if res[0] != res[1] {
			t.Errorf("vde_pcapplug %q:\n--- ours\n%s--- debian\n%s", args, res[0], res[1])
		}
		if _, err := os.Stat(filepath.Join(tmp, "p.pid")); err == nil {
			t.Errorf("vde_pcapplug %q left its pid file", args)
		}
	}
	if n := promiscuity(t, ns, "bv0"); n != 0 {
		t.Errorf("promiscuity %d after the bad invocations", n)
	}
}
