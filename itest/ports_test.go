package itest

// Clients on ports: Debian's vde_plug and QEMU as peers, several endpoints on one port,
// ports that outlive their clients, socket permissions, and daemon start-up.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// TestVdePlugGetsPort: Debian's `vde_plug vde://CTL[5]` (stdin held open, since with one URL
// it relays stdin/stdout) gets port 5, port/print shows its vdeplug4 description, and
// port/epclose makes it exit 0.
func TestVdePlugGetsPort(t *testing.T) {
	t.Parallel()
	requireTools(t, "vde_plug")
	sw := startSwitch(t, impl)
	plug := startProc(t, "vde_plug", "vde://"+sw.Dir+"[5]")
	descr := fmt.Sprintf("vdeplug: user=root pid=%d", plug.PID())
	waitPlugged(t, sw, plug.PID())
	raw := sw.Cmd(t, "port/print 5")

	r := parseResponse(raw)
	if r.Code != 1000 || len(r.Data) == 0 || !strings.HasPrefix(r.Data[0], "Port 0005 untagged_vlan=0000 ACTIVE - Unnamed Allocatable") {
		t.Fatalf("port/print 5: %q", raw)
	}
	epLine := regexp.MustCompile(`(?m)^  -- endpoint ID (\d{4}) module unix prog   : ` + regexp.QuoteMeta(descr) + `$`)
	m := epLine.FindStringSubmatch(strings.Join(r.Data, "\n"))
	if m == nil {
		t.Fatalf("port/print 5: no endpoint line for %q in %q", descr, raw)
	}
	id, _ := strconv.Atoi(m[1])

	sw.MustCmd(t, fmt.Sprintf("port/epclose 5 %d", id))
	if err := plug.Wait(stopTimeout); err != nil {
		t.Errorf("vde_plug after port/epclose: %v, want exit status 0", err)
	}
	sw.WaitCmd(t, "port/print 5", "1006 No such device or address")
	if raw := sw.Cmd(t, "port/allprint 5"); !strings.Contains(raw, "Port 0005 untagged_vlan=0000 INACTIVE") {
		t.Errorf("port/allprint 5 after the client left: %q, want the port kept, INACTIVE", raw)
	}
}

// TestSecondEndpointSamePort: a second client of the same user asking for a busy port
// becomes a second endpoint of it, and both endpoints receive the port's frames.
func TestSecondEndpointSamePort(t *testing.T) {
	t.Parallel()
	sw := startSwitch(t, impl)
	a := dialPeer(t, sw, 1, wire.DialOptions{Port: 3})
	b := dialPeer(t, sw, 2, wire.DialOptions{Port: 3})
	c := dialPeer(t, sw, 3, wire.DialOptions{})

	raw := sw.Cmd(t, "port/print 3")
	for _, d := range []string{"itest-peer-1", "itest-peer-2"} {
		if !regexp.MustCompile(`(?m)^  -- endpoint ID \d{4} module unix prog   : ` + d + `$`).MatchString(raw) {
			t.Errorf("port/print 3 lacks an endpoint line for %s:\n%s", d, raw)
		}
	}
	if n := strings.Count(raw, "  -- endpoint ID "); n != 2 {
		t.Errorf("port/print 3 lists %d endpoints, want 2:\n%s", n, raw)
	}
	// The newest endpoint is listed first (vde_switch.md §6.2).
	if i, j := strings.Index(raw, "itest-peer-2"), strings.Index(raw, "itest-peer-1"); i > j {
		t.Errorf("port/print 3 lists the older endpoint first:\n%s", raw)
	}

	c.send(t, ethFrame(broadcast, c.MAC, "to-port-3"))
	a.recv(t, "to-port-3")
	b.recv(t, "to-port-3")
	a.send(t, ethFrame(broadcast, a.MAC, "from-a"))
	c.recv(t, "from-a")
	b.send(t, ethFrame(broadcast, b.MAC, "from-b"))
	c.recv(t, "from-b")
}

// TestPortKeepsVLAN: a port reused after its client left keeps its VLAN.
func TestPortKeepsVLAN(t *testing.T) {
	t.Parallel()
	sw := startSwitch(t, impl)
	sw.MustCmd(t, "vlan/create 10")
	first, err := wire.Dial(sw.Dir, wire.DialOptions{Port: 3})
	if err != nil {
		t.Fatal(err)
	}
	sw.MustCmd(t, "port/setvlan 3 10")
	first.Close()
	sw.WaitCmd(t, "port/print 3", "1006 No such device or address")
	if raw := sw.Cmd(t, "port/allprint 3"); !strings.Contains(raw, "Port 0003 untagged_vlan=0010 INACTIVE") {
		t.Errorf("port/allprint 3 after the client left: %q", raw)
	}

	again := dialPeer(t, sw, 1, wire.DialOptions{Port: 3})
	raw := sw.Cmd(t, "port/print 3")
	if !strings.Contains(raw, "Port 0003 untagged_vlan=0010 ACTIVE") {
		t.Errorf("port/print 3 after reconnecting: %q, want untagged_vlan=0010", raw)
	}
	// And it forwards in VLAN 10: a VLAN-10 neighbour hears it.
	sw.MustCmd(t, "port/create 4")
	sw.MustCmd(t, "port/setvlan 4 10")
	n := dialPeer(t, sw, 2, wire.DialOptions{Port: 4})
	exchange(t, again, n, "vlan10")
}

// TestQEMUConnects: QEMU 7.2's -netdev vde attaches with its description.
func TestQEMUConnects(t *testing.T) {
	t.Parallel()
	requireTools(t, "qemu-system-x86_64")
	sw := startSwitch(t, impl)
	qemu := startProc(t, "qemu-system-x86_64", "-nodefaults", "-display", "none", "-S",
		"-machine", "pc,accel=tcg", "-m", "64",
		"-netdev", "vde,id=n0,sock="+sw.Dir, "-device", "virtio-net-pci,netdev=n0")
	descr := fmt.Sprintf("QEMU user=root pid=%d", qemu.PID())
	waitFor(t, 30*time.Second, "QEMU endpoint in port/print", func() (bool, string) {
		if qemu.Exited() {
			t.Fatalf("qemu exited: %v\n%s", qemu.waitErr, qemu.Stderr.String())
		}
		raw := sw.Cmd(t, "port/print")
		return strings.Contains(raw, "module unix prog   : "+descr+"\n"), raw
	})
	qemu.Stop()
	waitFor(t, startTimeout, "the QEMU endpoint to go", func() (bool, string) {
		raw := sw.Cmd(t, "port/print")
		return !strings.Contains(raw, descr), raw
	})
}

// TestSocketPermissions: -m, --dirmode and -g set the modes and group of the control
// directory and sockets (vde_switch.md §3).
func TestSocketPermissions(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	users := lookupGroup(t, "users")
	tests := []struct {
		desc          string
		args          []string
		dirMode       uint32
		sockMode      uint32
		gid           uint32 // of dir, ctl and data sockets
		dataSockMode  uint32 // root switch: mode & 0700, owned by the client
		dataSockOwner uint32
	}{
		{"defaults", nil, 02700, 0600, 0, 0600, 0},
		{"-m 660 -g users", []string{"-m", "660", "-g", "users"}, 02770, 0660, users, 0600, 0},
		{"-m 666", []string{"-m", "666"}, 02777, 0666, 0, 0600, 0},
		{"--dirmode 0750", []string{"--dirmode", "0750"}, 0750, 0640, 0, 0600, 0},
		{"-m 600 --dirmode 2755", []string{"-m", "600", "--dirmode", "2755"}, 02755, 0600, 0, 0600, 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			sw := startSwitch(t, impl, tc.args...)
			if mode, gid := fileMode(t, sw.Dir); mode != tc.dirMode || gid != tc.gid {
				t.Errorf("ctl dir: mode %04o gid %d, want %04o gid %d", mode, gid, tc.dirMode, tc.gid)
			}
			if mode, gid := fileMode(t, filepath.Join(sw.Dir, "ctl")); mode != tc.sockMode || gid != tc.gid {
				t.Errorf("ctl socket: mode %04o gid %d, want %04o gid %d", mode, gid, tc.sockMode, tc.gid)
			}
			p := dialPeer(t, sw, 1, wire.DialOptions{})
			var st syscall.Stat_t
			if err := syscall.Stat(p.Conn.Remote, &st); err != nil {
				t.Fatalf("data socket %s: %v", p.Conn.Remote, err)
			}
			if st.Mode&07777 != tc.dataSockMode || st.Gid != tc.gid || st.Uid != tc.dataSockOwner {
				t.Errorf("data socket %s: mode %04o uid %d gid %d, want %04o uid %d gid %d",
					p.Conn.Remote, st.Mode&07777, st.Uid, st.Gid, tc.dataSockMode, tc.dataSockOwner, tc.gid)
			}
			if want := regexp.MustCompile(`/001\.\d+$`); !want.MatchString(p.Conn.Remote) {
				t.Errorf("data socket name %s, want <ctldir>/001.<fd>", p.Conn.Remote)
			}
		})
	}
}

func lookupGroup(t testing.TB, name string) uint32 {
	t.Helper()
	b, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Skipf("needs /etc/group: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 3 && f[0] == name {
			gid, err := strconv.Atoi(f[2])
			if err == nil {
				return uint32(gid)
			}
		}
	}
	t.Skipf("needs a system group %q", name)
	return 0
}

// TestDaemonReadyOnReturn: `vde_switch -d -s X -p PIDFILE && vde_plug X` works every time:
// the control socket is listening before the starting process exits.
func TestDaemonReadyOnReturn(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	requireTools(t, "vde_plug")
	bin := switchBin(t, impl)
	tmp := testDir(t)
	const rounds = 50
	for i := 0; i < rounds; i++ {
		dir := filepath.Join(tmp, fmt.Sprintf("sw%d", i))
		pidfile := filepath.Join(tmp, fmt.Sprintf("sw%d.pid", i))
		if out, err := tryRun(bin, "-d", "-s", dir, "-p", pidfile); err != nil {
			t.Fatalf("round %d: %s -d -s %s -p %s: %v\n%s", i, bin, dir, pidfile, err, out)
		}
		c, dialErr := wire.Dial(dir, wire.DialOptions{Timeout: 10 * time.Second})
		// Debian's daemon writes the pid file after the fork, so it may still be empty
		// when the parent has returned: wait for it (readiness is about ctl only).
		pid := readPidFile(t, pidfile)
		t.Cleanup(func() { killDaemon(t, pid) })
		if dialErr != nil {
			t.Fatalf("round %d: connecting right after -d returned: %v", i, dialErr)
		}
		c.Close()
		if i%10 == 0 {
			// Debian's vde_plug too; stdin /dev/null makes it exit 0 once connected.
			if out, err := tryRun("vde_plug", dir); err != nil {
				t.Fatalf("round %d: vde_plug %s: %v\n%s", i, dir, err, out)
			}
		}
		killDaemon(t, pid)
		if _, err := os.Stat(pidfile); err == nil {
			t.Errorf("round %d: pid file %s left after SIGTERM", i, pidfile)
		}
	}
}

func readPidFile(t testing.TB, path string) int {
	t.Helper()
	var b []byte
	waitFor(t, startTimeout, "pid file "+path, func() (bool, string) {
		var err error
		b, err = os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		return strings.HasSuffix(string(b), "\n"), fmt.Sprintf("%q", b)
	})
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("pid file %s: %q", path, b)
	}
	return pid
}

// killDaemon sends SIGTERM to a daemon we started (its pid from its pid file) and waits
// until it is gone or a zombie (it is not our child, so we cannot reap it). Repeated calls
// are harmless as long as the pid was not reused, which the wait makes unlikely.
func killDaemon(t testing.TB, pid int) {
	t.Helper()
	if !alive(pid) {
		return
	}
	syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(stopTimeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("daemon %d ignored SIGTERM for %v", pid, stopTimeout)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}
