package itest

// TAP devices: the switch's -t ports and vde_plug2tap, ours and Debian's in every pairing,
// each TAP created inside a namespace the test makes (a TAP is born in the namespace of
// the process that opens it, so the tools themselves run under `ip netns exec`).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const debianPlug2Tap = "/usr/bin/vde_plug2tap"

var ourPlug2Tap struct {
	once sync.Once
	path string
	err  error
}

// plug2tapBin is the vde_plug2tap of an implementation: Debian's, or a vde_plug2tap link
// to our vde binary next to the vde_switch link.
func plug2tapBin(t testing.TB, which string) string {
	t.Helper()
	if which == implDebian {
		requireTools(t, debianPlug2Tap)
		return debianPlug2Tap
	}
	sw := switchBin(t, implOurs)
	ourPlug2Tap.once.Do(func() {
		p := filepath.Join(filepath.Dir(sw), "vde_plug2tap")
		ourPlug2Tap.path, ourPlug2Tap.err = p, os.Symlink("vde", p)
	})
	if ourPlug2Tap.err != nil {
		t.Fatalf("vde_plug2tap link: %v", ourPlug2Tap.err)
	}
	return ourPlug2Tap.path
}

// tapImpls are the implementations the TAP tests pair: the one under test and Debian's
// (just Debian's when that is the one under test, which checks the tests themselves).
func tapImpls() []string {
	if impl == referenceImpl {
		return []string{impl}
	}
	return []string{impl, referenceImpl}
}

// startSwitchInNetns runs a switch like startSwitch, but inside ns, so that the TAPs of
// its -t options are created there. Its sockets are in the file system, reachable from
// everywhere.
func startSwitchInNetns(t testing.TB, which, ns string, extra ...string) *Switch {
	t.Helper()
	requireTun(t)
	tmp := testDir(t)
	dir, mgmt := filepath.Join(tmp, "sw"), filepath.Join(tmp, "mgmt")
	args := append([]string{"netns", "exec", ns, switchBin(t, which), "-s", dir, "-M", mgmt}, extra...)
	return runSwitch(t, which, tmp, dir, mgmt, "ip", args)
}

// waitTap waits until the interface exists in ns, failing early if proc (which is to
// create it) exits.
func waitTap(t testing.TB, ns, name string, proc *Proc) {
	t.Helper()
	waitFor(t, startTimeout, "TAP "+name+" in "+ns, func() (bool, string) {
		if proc != nil && proc.Exited() {
			proc.log(t)
			t.Fatalf("%s exited: %v", proc.Name, proc.waitErr)
		}
		out, err := tryRun("ip", "-n", ns, "link", "show", name)
		return err == nil, out
	})
}

// checkTapLikeC checks what the C tools leave on a TAP they open: the link down, no
// address, not persistent. Ours differ in one flag, which changes no frame: they open
// the TAP with IFF_VNET_HDR ("vnet_hdr on"), so as to write runs of TCP segments as one
// GSO packet (tap/gso.go).
func checkTapLikeC(t testing.TB, which, ns, name string) {
	t.Helper()
	out := run(t, "ip", "-n", ns, "-d", "link", "show", name)
	flags := regexp.MustCompile(`<([^>]*)>`).FindStringSubmatch(out)
	if flags == nil || strings.Contains(","+flags[1]+",", ",UP,") || !strings.Contains(out, "state DOWN") {
		t.Errorf("TAP %s is not down:\n%s", name, out)
	}
	vnet := "off"
	if which == implOurs {
		vnet = "on"
	}
	if !strings.Contains(out, "tun type tap pi off vnet_hdr "+vnet+" persist off") {
		t.Errorf("TAP %s is not a plain non-persistent TAP:\n%s", name, out)
	}
	if a := run(t, "ip", "-n", ns, "-o", "addr", "show", "dev", name); strings.TrimSpace(a) != "" {
		t.Errorf("TAP %s has addresses:\n%s", name, a)
	}
}

// addressTap gives a TAP in ns an address and brings it up; the host it makes has no
// plug of its own (the switch owns the TAP).
func addressTap(t testing.TB, ns, name, cidr string) *tapHost {
	t.Helper()
	run(t, "ip", "-n", ns, "addr", "add", cidr, "dev", name)
	run(t, "ip", "-n", ns, "link", "set", name, "up")
	addr, _, _ := strings.Cut(cidr, "/")
	return &tapHost{NS: ns, Tap: name, Addr: addr}
}

// switchTapHost starts a switch of implementation which inside a new namespace with -t on
// a new TAP, checks the TAP's port and link, and addresses it with cidr.
func switchTapHost(t testing.TB, which, cidr string) (*Switch, *tapHost) {
	t.Helper()
	ns := newNetns(t)
	name := tapName()
	sw := startSwitchInNetns(t, which, ns, "-t", name)
	waitTap(t, ns, name, sw.Proc)
	checkTapLikeC(t, which, ns, name)
	raw := sw.Cmd(t, "port/print")
	if !regexp.MustCompile(`(?m)^  -- endpoint ID \d+ module tuntap +: ` + name + `$`).MatchString(raw) {
		t.Errorf("%s: port/print does not show the tuntap endpoint %s:\n%s", sw.Proc.Name, name, raw)
	}
	return sw, addressTap(t, ns, name, cidr)
}

// plug2tapHost runs vde_plug2tap of implementation which in a new namespace, joining sw
// (through -s and extra options) to a new TAP; it waits for the attachment and addresses
// the TAP with cidr unless that is empty.
func plug2tapHost(t testing.TB, which string, sw *Switch, cidr string, extra ...string) *tapHost {
	t.Helper()
	requireTun(t)
	bin := plug2tapBin(t, which)
	h := &tapHost{NS: newNetns(t), Tap: tapName()}
	args := append([]string{"netns", "exec", h.NS, bin, "-s", sw.Dir}, extra...)
	h.Plug = startProc(t, "ip", append(args, h.Tap)...)
	h.Plug.Name = "vde_plug2tap(" + which + ")"
	waitTap(t, h.NS, h.Tap, h.Plug)
	raw := waitPlugged(t, sw, h.Plug.PID())
	want := fmt.Sprintf(": vde_plug2tap: user=root pid=%d\n", h.Plug.PID())
	if !strings.Contains(raw, want) {
		t.Errorf("port/print does not describe %s as %q:\n%s", h.Plug.Name, want, raw)
	}
	checkTapLikeC(t, which, h.NS, h.Tap)
	if cidr != "" {
		a := addressTap(t, h.NS, h.Tap, cidr)
		h.Addr = a.Addr
	}
	return h
}

// endpointOf finds the port and endpoint ID of the client with this pid in port/print.
func endpointOf(t testing.TB, sw *Switch, pid int) (port, id int) {
	t.Helper()
	raw := sw.Cmd(t, "port/print")
	portRE := regexp.MustCompile(`^Port (\d+) `)
	epRE := regexp.MustCompile(`^  -- endpoint ID (\d+) .* pid=` + strconv.Itoa(pid) + `$`)
	for _, line := range strings.Split(raw, "\n") {
		if m := portRE.FindStringSubmatch(line); m != nil {
			port, _ = strconv.Atoi(m[1])
		}
		if m := epRE.FindStringSubmatch(line); m != nil {
			id, _ = strconv.Atoi(m[1])
			return port, id
		}
	}
	t.Fatalf("no endpoint of pid %d in port/print:\n%s", pid, raw)
	return 0, 0
}

// progDir is the directory of a C tool's argv[0], which starts its messages.
var progDir = regexp.MustCompile(`(?m)^/\S*/(vde_\w+: )`)

// withoutProgDir turns "/usr/bin/vde_switch: ..." lines into "vde_switch: ...".
func withoutProgDir(s string) string { return progDir.ReplaceAllString(s, "$1") }

// TestSwitchTapPing: a switch's -t TAP, addressed in the switch's namespace, answers a
// host on the switch — a TAP of Debian's vde_plug (tap://), of our vde_plug2tap, or of
// Debian's vde_plug2tap — for our switch and Debian's.
func TestSwitchTapPing(t *testing.T) {
	t.Parallel()
	requireTools(t, "ping")
	type plugger struct {
		name string
		host func(t *testing.T, sw *Switch) *tapHost
	}
	pluggers := []plugger{{"vde_plug tap:// (debian)", func(t *testing.T, sw *Switch) *tapHost {
		return plugTap(t, sw, 0, "10.0.9.2/24")
	}}}
	for _, w := range tapImpls() {
		pluggers = append(pluggers, plugger{"vde_plug2tap (" + w + ")", func(t *testing.T, sw *Switch) *tapHost {
			return plug2tapHost(t, w, sw, "10.0.9.2/24")
		}})
	}
	for _, swImpl := range tapImpls() {
		for _, p := range pluggers {
			t.Run(fmt.Sprintf("switch %s -t, %s", swImpl, p.name), func(t *testing.T) {
				t.Parallel()
				sw, swHost := switchTapHost(t, swImpl, "10.0.9.1/24")
				h := p.host(t, sw)
				waitPing(t, h.NS, swHost.Addr)
				waitPing(t, swHost.NS, h.Addr)
			})
		}
	}
}

// tunInNetns creates a TUN in ns and returns its name: opening a TAP of that name fails
// with TUNSETIFF's EINVAL, the failure the open-failure tests provoke.
func tunInNetns(t testing.TB, ns string) string {
	t.Helper()
	name := tapName()
	run(t, "ip", "-n", ns, "tuntap", "add", "dev", name, "mode", "tun")
	return name
}

// TestSwitchTapOpenFailure: a -t interface that cannot be opened (here a TUN of that
// name) is logged with the C switch's two lines and skipped; the switch runs, and the
// next -t still gets a port.
func TestSwitchTapOpenFailure(t *testing.T) {
	t.Parallel()
	for _, which := range tapImpls() {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			ns := newNetns(t)
			bad, good := tunInNetns(t, ns), tapName()
			sw := startSwitchInNetns(t, which, ns, "-t", bad, "-t", good)
			waitTap(t, ns, good, sw.Proc)
			want := "vde_switch: TUNSETIFF failed Invalid argument\n" +
				"vde_switch: ERROR OPENING tap interface: " + bad + "\n"
			waitFor(t, startTimeout, "the error lines", func() (bool, string) {
				s := withoutProgDir(sw.Proc.Stderr.String())
				return strings.Contains(s, want), s
			})
			raw := sw.Cmd(t, "port/print")
			if strings.Contains(raw, bad) || !strings.Contains(raw, "tuntap      : "+good+"\n") {
				t.Errorf("port/print:\n%s", raw)
			}
			if !regexp.MustCompile(`(?m)^Port 0001 .*\n(.*\n)*?  -- endpoint ID \d+ module tuntap +: ` + good).MatchString(raw) {
				t.Errorf("%s is not on port 1:\n%s", good, raw)
			}
		})
	}
}

// TestPlug2TapOpenFailure: both vde_plug2tap say why the TAP would not open, exit 1.
func TestPlug2TapOpenFailure(t *testing.T) {
	t.Parallel()
	for _, which := range tapImpls() {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			requireTun(t)
			sw := startSwitch(t, impl)
			ns := newNetns(t)
			bad := tunInNetns(t, ns)
			out, err := tryRun("ip", "netns", "exec", ns, plug2tapBin(t, which), "-s", sw.Dir, bad)
			if code := exitCode(err); code != 1 || withoutProgDir(out) != "vde_plug2tap: TUNSETIFF failed Invalid argument\n" {
				t.Errorf("exit status %d, output %q; want 1 and the TUNSETIFF line", code, out)
			}
		})
	}
}

// TestPlug2TapEndsWithPort: when the switch closes its endpoint, vde_plug2tap exits 0
// (ours says why), its TAP goes, and the switch frees the port.
func TestPlug2TapEndsWithPort(t *testing.T) {
	t.Parallel()
	for _, which := range tapImpls() {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			sw := startSwitch(t, impl)
			h := plug2tapHost(t, which, sw, "")
			port, id := endpointOf(t, sw, h.Plug.PID())
			sw.MustCmd(t, fmt.Sprintf("port/epclose %d %d", port, id))
			if err := h.Plug.Wait(stopTimeout); err != nil {
				t.Fatalf("%s after port/epclose: %v", h.Plug.Name, err)
			}
			if which == implOurs {
				if s, want := h.Plug.Stderr.String(), "vde_plug2tap: switch "+sw.Dir+" closed the connection\n"; s != want {
					t.Errorf("stderr %q, want %q", s, want)
				}
			}
			if out, err := tryRun("ip", "-n", h.NS, "link", "show", h.Tap); err == nil {
				t.Errorf("TAP still there after the plug exited:\n%s", out)
			}
			if raw := sw.Cmd(t, "port/print"); strings.Contains(raw, fmt.Sprintf("pid=%d\n", h.Plug.PID())) {
				t.Errorf("endpoint still listed:\n%s", raw)
			}
		})
	}
}

// TestPlug2TapKilledSwitch: the switch dies under vde_plug2tap; the plug exits 0.
func TestPlug2TapKilledSwitch(t *testing.T) {
	t.Parallel()
	for _, which := range tapImpls() {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			sw := startSwitch(t, impl)
			h := plug2tapHost(t, which, sw, "")
			sw.Proc.Cmd.Process.Kill()
			if err := h.Plug.Wait(stopTimeout); err != nil {
				t.Fatalf("%s after the switch died: %v", h.Plug.Name, err)
			}
			if which == implOurs {
				if s := h.Plug.Stderr.String(); !strings.HasPrefix(s, "vde_plug2tap: switch") || strings.Count(s, "\n") != 1 {
					t.Errorf("stderr %q, want one line about the switch", s)
				}
			}
		})
	}
}

// TestPlug2TapDaemon: our vde_plug2tap -d -P returns once attached, the pid file names the
// daemon, SIGTERM ends it and removes the pid file and the TAP.
func TestPlug2TapDaemon(t *testing.T) {
	t.Parallel()
	oursOnly(t, "Debian's -d returns before the plug is attached")
	requireTun(t)
	sw := startSwitch(t, impl)
	ns := newNetns(t)
	name := tapName()
	pidFile := filepath.Join(testDir(t), "p2t.pid")
	out := run(t, "ip", "netns", "exec", ns, plug2tapBin(t, implOurs), "-d", "-P", pidFile, "-s", sw.Dir, name)
	if out != "" {
		t.Errorf("output of the starter: %q", out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file holds %q", b)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // if the test fails early
	// Attached when -d returned: no waiting here.
	if raw := sw.Cmd(t, "port/print"); !strings.Contains(raw, fmt.Sprintf("vde_plug2tap: user=root pid=%d\n", pid)) {
		t.Errorf("daemon %d not attached when -d returned:\n%s", pid, raw)
	}
	if out, err := tryRun("ip", "-n", ns, "link", "show", name); err != nil {
		t.Errorf("no TAP %s when -d returned: %v\n%s", name, err, out)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(comm) != "vde_plug2tap\n" {
		t.Errorf("daemon's process name %q", comm)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, stopTimeout, "the daemon to exit", func() (bool, string) {
		// Gone, or a zombie waiting for init (which may be slow to reap it).
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true, ""
		}
		_, after, _ := strings.Cut(string(b), ") ")
		return strings.HasPrefix(after, "Z"), string(b)
	})
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	if _, err := tryRun("ip", "-n", ns, "link", "show", name); err == nil {
		t.Errorf("TAP %s left behind", name)
	}
}

// TestPlug2TapStream: vde_plug2tap -s - speaks the vde_plug stream on stdin/stdout;
// `dpipe vde_plug CTL = vde_plug2tap -s - TAP` puts the TAP on the switch.
func TestPlug2TapStream(t *testing.T) {
	t.Parallel()
	requireTools(t, "/usr/bin/dpipe", "vde_plug", "ping")
	for _, which := range tapImpls() {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			sw, swHost := switchTapHost(t, impl, "10.0.9.1/24")
			h := &tapHost{NS: newNetns(t), Tap: tapName()}
			h.Plug = startProc(t, "/usr/bin/dpipe", "/usr/bin/vde_plug", sw.Dir, "=",
				"ip", "netns", "exec", h.NS, plug2tapBin(t, which), "-s", "-", h.Tap)
			h.Plug.Name = "dpipe vde_plug = vde_plug2tap(" + which + ")"
			waitTap(t, h.NS, h.Tap, h.Plug)
			h.Addr = addressTap(t, h.NS, h.Tap, "10.0.9.2/24").Addr
			waitPing(t, h.NS, swHost.Addr)
		})
	}
}

// TestSwitchTapTCP moves 20 MB by TCP between the switch's -t TAP and a vde_plug2tap TAP
// (ours on ours; the rate is logged, not judged).
func TestSwitchTapTCP(t *testing.T) {
	t.Parallel()
	requireTools(t, "iperf3")
	sw, swHost := switchTapHost(t, impl, "10.0.9.1/24")
	h := plug2tapHost(t, impl, sw, "10.0.9.2/24")
	waitPing(t, h.NS, swHost.Addr)
	for _, dir := range []struct {
		name     string
		srv, cli *tapHost
	}{{"plug2tap->switch", swHost, h}, {"switch->plug2tap", h, swHost}} {
		res := runIperf3(t, dir.srv, dir.cli, "-n", "20M")
		if res.End.SumSent.Bytes < 20<<20 {
			t.Errorf("%s: sent %d bytes, want 20 MiB", dir.name, res.End.SumSent.Bytes)
		}
		t.Logf("%s: %.0f Mbit/s", dir.name, res.End.SumReceived.BitsPerSecond/1e6)
	}
}
