package itest

// The seed's encrypted tunnel with real ssh: two switches joined by
//
//	dpipe vde_plug CTL_A = ssh -i KEY -p PORT ... root@127.0.0.1 vde_plug CTL_B
//
// through an sshd the test runs on 127.0.0.1 with generated keys; our tools and Debian's
// on either end. Then the faults: kill one piece of the tunnel and check that the rest
// ends (or stays) as Debian's C tools do, and that the switches free the ports.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

const (
	sshdBin         = "/usr/sbin/sshd" // Debian package openssh-server
	sshDebianPlug   = "/usr/bin/vde_plug"
	sshDebianDpipe  = "/usr/bin/dpipe"
	tunnelExitBound = 5 * time.Second // survivors of a fault end within this (Debian's: < 1.5 s)
)

// --- sshd ----------------------------------------------------------------------------------

// sshServer is an sshd of the test's own on 127.0.0.1, accepting root with a generated key.
type sshServer struct {
	Port int
	Key  string // the client's private key
	Proc *Proc
}

// startSSHD runs `sshd -D -e -f CONFIG` with a generated host key and an authorized client
// key in a temporary directory, on a free port of 127.0.0.1, and checks that root logs in
// with the key. It skips if sshd is not installed or cannot listen here.
func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat(sshdBin); err != nil {
		t.Skipf("needs %s (Debian package openssh-server): %v", sshdBin, err)
	}
	requireTools(t, "ssh", "ssh-keygen")
	dir := testDir(t)
	hostKey, clientKey := filepath.Join(dir, "host_key"), filepath.Join(dir, "client_key")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "itest-host", "-f", hostKey)
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "itest-client", "-f", clientKey)
	pub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0600); err != nil {
		t.Fatal(err)
	}
	// The privilege separation directory sshd insists on.
	if err := os.MkdirAll("/run/sshd", 0755); err != nil {
		t.Skipf("sshd cannot run here: mkdir /run/sshd: %v", err)
	}
	var last string
	for attempt := 0; attempt < 3; attempt++ {
		port := freeTCPPort(t)
		cfg := filepath.Join(dir, fmt.Sprintf("sshd_config.%d", attempt))
		conf := strings.Join([]string{
			"ListenAddress 127.0.0.1",
			fmt.Sprintf("Port %d", port),
			"HostKey " + hostKey,
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + authorized,
			"PermitRootLogin prohibit-password",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"StrictModes no",
			"UsePAM no",
			"UseDNS no",
			"PrintMotd no",
			"PrintLastLog no",
			"MaxStartups 100",
			"",
		}, "\n")
		if err := os.WriteFile(cfg, []byte(conf), 0600); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, sshdBin, "-D", "-e", "-f", cfg)
		p.Name = "sshd"
		listening := false
		deadline := time.Now().Add(startTimeout)
		for !p.Exited() && time.Now().Before(deadline) {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
				c.Close()
				listening = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !listening {
			p.Stop()
			last = p.Stderr.String()
			if strings.Contains(last, "Address already in use") {
				continue // lost the port to someone else: another one
			}
			t.Skipf("sshd cannot run here: it did not listen on 127.0.0.1:%d:\n%s", port, last)
		}
		s := &sshServer{Port: port, Key: clientKey, Proc: p}
		out, err := tryRun("ssh", s.args("true")...)
		if err != nil {
			p.log(t)
			t.Fatalf("ssh root@127.0.0.1 with the generated key: %v\n%s", err, out)
		}
		return s
	}
	t.Skipf("sshd cannot run here: no free port after 3 tries:\n%s", last)
	return nil
}

// args are ssh's arguments to run remote on root@127.0.0.1, the seed's shape plus what a
// test needs to be quiet and never ask.
func (s *sshServer) args(remote ...string) []string {
	return append([]string{
		"-i", s.Key, "-p", strconv.Itoa(s.Port),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
		"root@127.0.0.1",
	}, remote...)
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// --- the processes of a tunnel -------------------------------------------------------------

// procHandle is a process the test did not start itself (a child of dpipe or of sshd),
// held by a pidfd so that signals and exit checks never hit a recycled pid.
type procHandle struct {
	Name string
	PID  int
	fd   int
}

func openProc(t *testing.T, name string, pid int) *procHandle {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %s (pid %d): %v", name, pid, err)
	}
	h := &procHandle{Name: name, PID: pid, fd: fd}
	t.Cleanup(func() {
		h.stop()
		unix.Close(fd)
	})
	return h
}

// exited reports whether the process has ended (a zombie counts as ended).
func (h *procHandle) exited() bool {
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

func (h *procHandle) signal(sig unix.Signal) error {
	return unix.PidfdSendSignal(h.fd, sig, nil, 0)
}

// waitExit waits up to timeout for the process to end.
func (h *procHandle) waitExit(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !h.exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// stop ends the process if it still runs: SIGTERM, then SIGKILL.
func (h *procHandle) stop() {
	if h.exited() {
		return
	}
	h.signal(unix.SIGTERM)
	if !h.waitExit(2 * time.Second) {
		h.signal(unix.SIGKILL)
		h.waitExit(2 * time.Second)
	}
}

// childrenOf lists the pids whose parent is ppid.
func childrenOf(ppid int) []int {
	var out []int
	for _, p := range allProcs() {
		if p.ppid == ppid {
			out = append(out, p.pid)
		}
	}
	return out
}

func argv0(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	a, _, _ := strings.Cut(string(b), "\x00")
	return filepath.Base(a)
}

// tunnelStack is the switches and tools of one tunnel.
type tunnelStack struct {
	name     string
	switches string // implOurs or implDebian
	tools    tunnelTools
}

// tunnelTools says which programs make up a tunnel.
type tunnelTools struct {
	Dpipe, LocalPlug, RemotePlug string
}

// tunnel is a running `dpipe LOCALPLUG CTL_A = ssh ... REMOTEPLUG CTL_B`.
type tunnel struct {
	Dpipe  *Proc
	Local  *procHandle // the local vde_plug, on A
	SSH    *procHandle // the ssh client
	Remote *procHandle // the remote vde_plug (a child of sshd), on B
}

// remoteEndpoint matches the remote plug's description on B: vdeplug4 adds the ssh client's
// address from SSH_CLIENT.
var remoteEndpoint = regexp.MustCompile(`vdeplug: user=root pid=(\d+) SSH=127\.0\.0\.1\n`)

// startTunnel joins a and b through srv as the seed does and waits until both plugs are
// attached. Every process of the chain is stopped by pid at cleanup.
func startTunnel(t *testing.T, tools tunnelTools, a, b *Switch, srv *sshServer) *tunnel {
	t.Helper()
	args := []string{tools.LocalPlug, a.Dir, "=", "ssh"}
	args = append(args, srv.args(tools.RemotePlug, b.Dir)...)
	tn := &tunnel{}
	tn.Dpipe = startProc(t, tools.Dpipe, args...)
	tn.Dpipe.Name = "dpipe"
	// Runs before the Proc's own cleanup: end dpipe, then whatever of the chain is left.
	t.Cleanup(func() {
		tn.Dpipe.Stop()
		for _, h := range []*procHandle{tn.Local, tn.SSH, tn.Remote} {
			if h != nil {
				h.stop()
			}
		}
	})
	var local, ssh int
	waitFor(t, startTimeout, "dpipe's two children", func() (bool, string) {
		if tn.Dpipe.Exited() {
			t.Fatalf("dpipe exited: %v\n%s", tn.Dpipe.waitErr, tn.Dpipe.Stderr.String())
		}
		local, ssh = 0, 0
		kids := childrenOf(tn.Dpipe.PID())
		for _, pid := range kids {
			if argv0(pid) == "ssh" {
				ssh = pid
			} else if argv0(pid) == filepath.Base(tools.LocalPlug) {
				local = pid
			}
		}
		return local != 0 && ssh != 0, fmt.Sprint(kids)
	})
	tn.Local = openProc(t, "local vde_plug", local)
	tn.SSH = openProc(t, "ssh", ssh)
	waitPlugged(t, a, local)
	raw := b.WaitCmd(t, "port/print", " SSH=127.0.0.1\n")
	m := remoteEndpoint.FindStringSubmatch(raw)
	if m == nil {
		t.Fatalf("remote plug's endpoint on B not found in:\n%s", raw)
	}
	remote, _ := strconv.Atoi(m[1])
	tn.Remote = openProc(t, "remote vde_plug", remote)
	// waitPlugged wants the pid at the end of the line; here " SSH=..." follows it.
	waitFor(t, startTimeout, fmt.Sprintf("remote plug %d to finish its handshake", remote), func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(b.Dir, fmt.Sprintf(".%05d-*", remote)))
		return len(m) == 0, fmt.Sprint(m)
	})
	if tn.Remote.exited() || argv0(remote) != filepath.Base(tools.RemotePlug) {
		t.Fatalf("pid %d listed on B is not the remote %s", remote, tools.RemotePlug)
	}
	return tn
}

// --- the tunnel carries traffic ------------------------------------------------------------

// TestSSHTunnel: hosts on two switches joined by the seed's ssh tunnel ping each other and
// move 20 MB by TCP, with our tools and Debian's on either end.
func TestSSHTunnel(t *testing.T) {
	t.Parallel()
	requireTun(t)
	requireTools(t, sshDebianPlug, "ping", "socat")
	srv := startSSHD(t)
	plug := appletPath(t, "vde_plug")
	dpipe := appletPath(t, "dpipe")
	for _, tc := range []tunnelStack{
		{"ours", implOurs, tunnelTools{dpipe, plug, plug}},
		{"ours-local_debian-remote", implOurs, tunnelTools{dpipe, plug, sshDebianPlug}},
		{"debian-local_ours-remote", implOurs, tunnelTools{dpipe, sshDebianPlug, plug}},
		{"debian-switches_our-plugs", implDebian, tunnelTools{dpipe, plug, plug}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := startSwitch(t, tc.switches), startSwitch(t, tc.switches)
			ha := plugTap(t, a, 0, "10.0.2.2/24")
			hb := plugTap(t, b, 0, "10.0.2.1/24")
			tn := startTunnel(t, tc.tools, a, b, srv)
			waitPing(t, ha.NS, hb.Addr)
			waitPing(t, hb.NS, ha.Addr)
			moveFile(t, ha, hb, 20<<20)
			// Both ends are on their switches with the descriptions vdeplug4 gives.
			localDescr := fmt.Sprintf(": vdeplug: user=root pid=%d\n", tn.Local.PID)
			remoteDescr := fmt.Sprintf(": vdeplug: user=root pid=%d SSH=127.0.0.1\n", tn.Remote.PID)
			if out := a.Cmd(t, "port/print"); !strings.Contains(out, localDescr) {
				t.Errorf("A's port/print does not show the local plug (pid %d):\n%s", tn.Local.PID, out)
			}
			if out := b.Cmd(t, "port/print"); !strings.Contains(out, remoteDescr) {
				t.Errorf("B's port/print does not show the remote plug (pid %d):\n%s", tn.Remote.PID, out)
			}
			if tn.Dpipe.Exited() || tn.Local.exited() || tn.SSH.exited() || tn.Remote.exited() {
				t.Errorf("a process of the tunnel ended: dpipe %v, local %v, ssh %v, remote %v",
					tn.Dpipe.Exited(), tn.Local.exited(), tn.SSH.exited(), tn.Remote.exited())
			}
		})
	}
}

// --- faults --------------------------------------------------------------------------------

// tunnelFault is one thing to kill and what Debian's tools do then.
type tunnelFault struct {
	name string
	// chainEnds: dpipe and every plug and ssh left end within tunnelExitBound; if false
	// they all stay and the tunnel still carries frames (SIGKILL gives dpipe no chance).
	chainEnds bool
	// status is dpipe's exit status when the chain ends (ssh's, the last command's:
	// 255 when the remote command died of a signal, WEXITSTATUS of a killed ssh is 0).
	status int
	// killsA/killsB: the switch killed, if any.
	killsA, killsB bool
}

// What Debian's dpipe, vde_plug and vde_switch (vdeplug 4.0.1-4, vde2 2.3.2+r586) did when
// run by hand: every survivor gone within 0.4 s (the remote plug after ssh's death within
// 1 s), nothing on stderr; after SIGKILL to dpipe the plugs and ssh went on carrying frames.
var tunnelFaults = []tunnelFault{
	{name: "kill-local-plug", chainEnds: true, status: 0},
	{name: "kill-ssh", chainEnds: true, status: 0},
	{name: "kill-remote-plug", chainEnds: true, status: 255},
	{name: "kill-switch-A", chainEnds: true, status: 0, killsA: true},
	{name: "kill-switch-B", chainEnds: true, status: 0, killsB: true},
	{name: "kill-dpipe", chainEnds: false},
}

// TestSSHTunnelFaults kills one piece of a running tunnel with SIGKILL: the local plug,
// ssh, the remote plug, the switch under either plug, dpipe. The expectations are what
// Debian's dpipe, vde_plug and vde_switch do, checked here too ("debian" subtests): the
// rest of the chain ends within a bound with dpipe's status as Debian's (or, for dpipe,
// everything stays and still carries frames), the surviving switches free the dead plugs'
// ports and still serve, and nothing prints more than a line per process.
func TestSSHTunnelFaults(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	srv := startSSHD(t)
	var stacks []tunnelStack
	if _, err := os.Stat(sshDebianPlug); err == nil {
		if _, err := os.Stat(sshDebianDpipe); err == nil {
			stacks = append(stacks, tunnelStack{implDebian, implDebian,
				tunnelTools{sshDebianDpipe, sshDebianPlug, sshDebianPlug}})
		}
	}
	if impl == implOurs {
		plug := appletPath(t, "vde_plug")
		stacks = append(stacks, tunnelStack{implOurs, implOurs, tunnelTools{appletPath(t, "dpipe"), plug, plug}})
	}
	if len(stacks) == 0 {
		t.Skipf("needs %s and %s (Debian packages vdeplug) in debian mode", sshDebianPlug, sshDebianDpipe)
	}
	for _, st := range stacks {
		for _, f := range tunnelFaults {
			t.Run(st.name+"/"+f.name, func(t *testing.T) {
				t.Parallel()
				checkTunnelFault(t, st.switches, st.tools, f, srv)
			})
		}
	}
}

func checkTunnelFault(t *testing.T, switches string, tools tunnelTools, f tunnelFault, srv *sshServer) {
	a, b := startSwitch(t, switches), startSwitch(t, switches)
	// One pair of peers on each switch to check that it still serves, one of each pair
	// also to check the tunnel.
	a1, a2 := dialPeer(t, a, 1, wire.DialOptions{}), dialPeer(t, a, 2, wire.DialOptions{})
	b1, b2 := dialPeer(t, b, 3, wire.DialOptions{}), dialPeer(t, b, 4, wire.DialOptions{})
	tn := startTunnel(t, tools, a, b, srv)
	acrossTunnel(t, a1, b1, "before")

	var victim string
	start := time.Now()
	switch f.name {
	case "kill-local-plug":
		victim = "local plug"
		tn.Local.signal(unix.SIGKILL)
	case "kill-ssh":
		victim = "ssh"
		tn.SSH.signal(unix.SIGKILL)
	case "kill-remote-plug":
		victim = "remote plug"
		tn.Remote.signal(unix.SIGKILL)
	case "kill-switch-A":
		victim = "switch A"
		a.Proc.Cmd.Process.Signal(syscall.SIGKILL)
	case "kill-switch-B":
		victim = "switch B"
		b.Proc.Cmd.Process.Signal(syscall.SIGKILL)
	case "kill-dpipe":
		victim = "dpipe"
		tn.Dpipe.Cmd.Process.Signal(syscall.SIGKILL)
	default:
		t.Fatalf("unknown fault %q", f.name)
	}

	if f.chainEnds {
		// Everything of the chain ends: dpipe last, as it waits for its children.
		for _, h := range []*procHandle{tn.Local, tn.SSH, tn.Remote} {
			if !h.waitExit(tunnelExitBound - time.Since(start)) {
				t.Errorf("after SIGKILL to the %s, the %s (pid %d) still runs after %v",
					victim, h.Name, h.PID, tunnelExitBound)
			}
		}
		if err := tn.Dpipe.Wait(tunnelExitBound - time.Since(start) + time.Second); !tn.Dpipe.Exited() {
			t.Errorf("after SIGKILL to the %s, %v", victim, err)
		} else if got := tn.Dpipe.ExitCode(); got != f.status {
			t.Errorf("after SIGKILL to the %s, dpipe exit status %d, want %d (Debian's)", victim, got, f.status)
		}
		t.Logf("SIGKILL to the %s: the chain ended in %v, dpipe status %d",
			victim, time.Since(start).Round(time.Millisecond), tn.Dpipe.ExitCode())
	} else {
		if err := tn.Dpipe.Wait(stopTimeout); !tn.Dpipe.Exited() {
			t.Fatalf("dpipe after SIGKILL: %v", err)
		}
		time.Sleep(time.Second)
		for _, h := range []*procHandle{tn.Local, tn.SSH, tn.Remote} {
			if h.exited() {
				t.Errorf("after SIGKILL to dpipe, the %s (pid %d) ended; Debian's stays", h.Name, h.PID)
			}
		}
		acrossTunnel(t, a1, b1, "after")
		t.Logf("SIGKILL to dpipe: the plugs and ssh stay and carry frames")
	}
	// Nothing chatty, no Go panic: at most one line from each of dpipe, the two plugs and
	// ssh. (Debian's print nothing.)
	if s := strings.TrimSpace(tn.Dpipe.Stderr.String()); s != "" {
		t.Logf("stderr of the chain after SIGKILL to the %s:\n%s", victim, s)
		if n := strings.Count(s, "\n") + 1; n > 4 || strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
			t.Errorf("stderr of the chain: %d lines, want at most one per process:\n%s", n, s)
		}
	}

	// The surviving switches: the dead plugs' ports are free, and they still serve.
	for _, s := range []struct {
		sw     *Switch
		killed bool
		plug   *procHandle
		p, q   *peer
	}{{a, f.killsA, tn.Local, a1, a2}, {b, f.killsB, tn.Remote, b1, b2}} {
		if s.killed {
			if err := s.sw.Proc.Wait(stopTimeout); !s.sw.Proc.Exited() {
				t.Fatalf("%s after SIGKILL: %v", s.sw.Proc.Name, err)
			}
			continue
		}
		if f.chainEnds {
			want := fmt.Sprintf(" pid=%d", s.plug.PID)
			what := fmt.Sprintf("%s to free the port of the %s", s.sw.Proc.Name, s.plug.Name)
			waitFor(t, stopTimeout, what, func() (bool, string) {
				out := s.sw.Cmd(t, "port/print")
				return !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" "), out
			})
		} else if out := s.sw.Cmd(t, "port/print"); !strings.Contains(out, fmt.Sprintf(" pid=%d", s.plug.PID)) {
			t.Errorf("%s no longer lists the %s (pid %d):\n%s", s.sw.Proc.Name, s.plug.Name, s.plug.PID, out)
		}
		exchange(t, s.p, s.q, "still-serves")
	}
}

// acrossTunnel checks that p (on A) and q (on B) reach each other through the tunnel both
// ways; the first frame is retried while the cable comes up.
func acrossTunnel(t *testing.T, p, q *peer, tag string) {
	t.Helper()
	waitFor(t, startTimeout, "a frame from A to B through the tunnel", func() (bool, string) {
		p.send(t, ethFrame(broadcast, p.MAC, tag+"-a2b"))
		_, ok := q.tryRecv(tag+"-a2b", 200*time.Millisecond)
		return ok, ""
	})
	q.send(t, ethFrame(p.MAC, q.MAC, tag+"-b2a"))
	if _, ok := p.tryRecv(tag+"-b2a", recvTimeout); !ok {
		t.Fatalf("no frame from B to A through the tunnel (%s)", tag)
	}
}
