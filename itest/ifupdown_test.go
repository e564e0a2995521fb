package itest

// The seed's /etc/network/interfaces stanzas under Debian's real ifup/ifdown, with our
// package installed by `make install`. Each test re-runs itself inside `unshare -m` (a
// private mount namespace) where /run is a fresh tmpfs and /etc, /usr/local, /var/lib/dpkg,
// /var/log and /var/lib/dhcp are overlays, so make install's files, users, groups and
// dpkg diversions never reach the real system; ifup runs in a network namespace.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ifupdownInsideEnv marks the re-run of a test inside its private mount namespace.
const ifupdownInsideEnv = "VDE_ITEST_IFUPDOWN_INSIDE"

// checkOurUnixterm also checks the console with our unixterm (next to Debian's).
const checkOurUnixterm = true

// ifupWorld is one test's private system.
type ifupWorld struct {
	t      *testing.T
	NS     string // network namespace where ifup runs
	Dir    string // scratch directory on the private /run
	File   string // the interfaces file
	State  string // ifupdown's state directory
	Prefix []string
}

// privateSystem re-runs the calling test in a private mount namespace and returns nil
// (the caller returns); inside, it sets the namespace up, runs `make install` there and
// returns the world.
func privateSystem(t *testing.T, stanzas string) *ifupWorld {
	t.Helper()
	return privateSystemWith(t, stanzas, nil)
}

// privateSystemWith is privateSystem with a change to the private system (and only to
// it: the mounts are in place) before make install.
func privateSystemWith(t *testing.T, stanzas string, beforeInstall func()) *ifupWorld {
	t.Helper()
	requireTun(t)
	requireTools(t, "ifup", "ifdown", "unshare", "ip", "make", "busybox", "ping", "useradd", "dpkg-divert")
	if os.Getenv(ifupdownInsideEnv) == "" {
		reRunInside(t)
		return nil
	}
	setupMounts(t)
	w := &ifupWorld{t: t, Dir: "/run/itest", NS: newNetns(t)}
	w.File, w.State = filepath.Join(w.Dir, "interfaces"), filepath.Join(w.Dir, "state")
	if err := os.MkdirAll(w.State, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.File, []byte(stanzas), 0o644); err != nil {
		t.Fatal(err)
	}
	w.Prefix = []string{"ip", "netns", "exec", w.NS}
	if beforeInstall != nil {
		if mi, _ := os.ReadFile("/proc/self/mountinfo"); !strings.Contains(string(mi), " /etc rw,relatime - overlay ") && !strings.Contains(string(mi), " /etc rw - overlay ") {
			t.Fatalf("/etc is not a private overlay; not changing it:\n%s", mi)
		}
		beforeInstall()
	}
	makeInstall(t)
	return w
}

// reRunInside runs this test alone in `unshare -m --propagation private` and reports
// what it said.
func reRunInside(t *testing.T) {
	t.Helper()
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-m", "--propagation", "private", exe,
		"-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=20m")
	cmd.Env = append(os.Environ(), ifupdownInsideEnv+"=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	s := out.String()
	switch {
	case err != nil:
		t.Errorf("%s in a private mount namespace: %v\n%s", t.Name(), err, s)
	case strings.Contains(s, "--- SKIP: "+t.Name()):
		t.Skipf("inside:\n%s", s)
	case !strings.Contains(s, "--- PASS: "+t.Name()):
		t.Errorf("%s in a private mount namespace did not pass:\n%s", t.Name(), s)
	default:
		t.Logf("inside:\n%s", s)
	}
}

// setupMounts makes the namespace's system private: tmpfs on /run (and on the repo's bin/,
// which make install builds into), overlays on the rest.
func setupMounts(t *testing.T) {
	t.Helper()
	mount := func(src, dst, fstype, data string) {
		t.Helper()
		if err := unix.Mount(src, dst, fstype, 0, data); err != nil {
			t.Fatalf("mount %s on %s (%s): %v", fstype, dst, data, err)
		}
	}
	// Refuse to touch anything unless we are alone in a mount namespace.
	self, _ := os.Readlink("/proc/self/ns/mnt")
	init, _ := os.Readlink("/proc/1/ns/mnt")
	if self == "" || self == init {
		t.Fatalf("not in a private mount namespace (%q)", self)
	}
	mount("tmpfs", "/run", "tmpfs", "mode=0755")
	for _, d := range []string{"/etc", "/usr/local", "/var/lib/dpkg", "/var/log", "/var/lib/dhcp"} {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		base := filepath.Join("/run/.overlay", strings.ReplaceAll(strings.TrimPrefix(d, "/"), "/", "_"))
		up, work := base+"/upper", base+"/work"
		if err := os.MkdirAll(up, 0o755); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(work, 0o755)
		mount("overlay", d, "overlay", fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", d, up, work))
	}
	root, _ := filepath.Abs("..")
	bin := filepath.Join(root, "bin")
	os.MkdirAll(bin, 0o755)
	mount("tmpfs", bin, "tmpfs", "mode=0755")
	for _, d := range []string{"/run/sshd", "/run/itest"} {
		os.MkdirAll(d, 0o755)
	}
}

// makeInstall runs `make install` (DESTDIR empty) from the repository in the namespace.
func makeInstall(t *testing.T) {
	t.Helper()
	root, _ := filepath.Abs("..")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command("make", "-C", root, "install", "GO="+gobin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	t.Logf("make install:\n%s", lastLines(string(out), 12))
	for _, f := range []string{"/usr/local/bin/vde", "/usr/local/bin/vde_switch", "/etc/network/if-pre-up.d/vde2", "/etc/network/if-post-down.d/vde2"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("after make install: %v", err)
		}
	}
	if _, err := exec.Command("getent", "passwd", "vde2-net").Output(); err != nil {
		t.Fatalf("after make install: no user vde2-net")
	}
	// Exactly one hook runs: Debian's, if installed, went aside.
	for _, d := range []string{"if-pre-up.d", "if-post-down.d"} {
		b, _ := os.ReadFile("/etc/network/" + d + "/vde2")
		if !strings.Contains(string(b), "vde ifup-hook") {
			t.Errorf("/etc/network/%s/vde2 is not ours:\n%s", d, b)
		}
		if out, _ := exec.Command("dpkg-query", "-S", "/etc/network/"+d+"/vde2").CombinedOutput(); strings.Contains(string(out), "vde2:") {
			if _, err := os.Stat("/etc/network/" + d + "/vde2.distrib"); err != nil {
				t.Errorf("Debian's %s/vde2 was not diverted: %v", d, err)
			}
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// ifup runs `ifup -v -i FILE --state-dir DIR iface` in the namespace.
func (w *ifupWorld) ifup(iface string, extra ...string) (string, error) {
	args := append(append(append([]string{}, w.Prefix[1:]...), "ifup", "-v", "-i", w.File, "--state-dir", w.State), extra...)
	return tryRun(w.Prefix[0], append(args, iface)...)
}

func (w *ifupWorld) ifdown(iface string) (string, error) {
	args := append(append([]string{}, w.Prefix[1:]...), "ifdown", "-v", "-i", w.File, "--state-dir", w.State, iface)
	return tryRun(w.Prefix[0], args...)
}

func (w *ifupWorld) mustIfup(iface string, extra ...string) {
	w.t.Helper()
	out, err := w.ifup(iface, extra...)
	if err != nil {
		w.t.Fatalf("ifup %s: %v\n%s", iface, err, out)
	}
	w.t.Cleanup(func() { w.ifdown(iface) })
}

func (w *ifupWorld) mustIfdown(iface string) {
	w.t.Helper()
	if out, err := w.ifdown(iface); err != nil {
		w.t.Fatalf("ifdown %s: %v\n%s", iface, err, out)
	}
}

// ifupSwitch is the switch ifup started for iface, for the harness's mgmt helpers.
func ifupSwitch(iface string) *Switch {
	return &Switch{Impl: implOurs, Dir: "/var/run/vde2/" + iface + ".ctl", Mgmt: "/var/run/vde2/" + iface + ".mgmt",
		Proc: &Proc{Name: "vde_switch(ifup " + iface + ")"}}
}

// pidOf reads a pid file and checks that the process runs.
func pidOf(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !running(pid) {
		t.Fatalf("pid file %s: %q names no running process", file, b)
	}
	return pid
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// checkGone checks that ifdown left nothing of iface: no process, pid file, ctl dir,
// mgmt socket or TAP.
func (w *ifupWorld) checkGone(iface string, pids ...int) {
	w.t.Helper()
	for _, pid := range pids {
		waitFor(w.t, stopTimeout, fmt.Sprintf("pid %d to end", pid), func() (bool, string) {
			return !running(pid), procArgs(pid)
		})
	}
	for _, s := range []string{".pid", "-slirp.pid", "-plug.pid", ".ctl", ".mgmt"} {
		if _, err := os.Lstat("/var/run/vde2/" + iface + s); err == nil {
			w.t.Errorf("after ifdown: /var/run/vde2/%s%s is left", iface, s)
		}
	}
	if m, _ := filepath.Glob("/var/run/vde2/" + iface + ".ctl.*"); len(m) > 0 {
		w.t.Errorf("after ifdown: %v left", m)
	}
	if out, err := tryRun("ip", "-n", w.NS, "link", "show", iface); err == nil {
		w.t.Errorf("after ifdown: TAP %s is left:\n%s", iface, out)
	}
}

func procArgs(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// switchPids lists the running vde_switch processes in network namespace ns whose command
// line names ctl (other tests run switches of the same name in their own namespaces).
func switchPids(ns, ctl string) []int {
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns, &st); err != nil {
		return nil
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	var out []int
	for _, p := range allProcs() {
		a := procArgs(p.pid)
		if p.state == "Z" || !strings.HasPrefix(a, "vde_switch ") || !strings.Contains(a, " "+ctl+" ") {
			continue
		}
		if n, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.pid)); n == want {
			out = append(out, p.pid)
		}
	}
	return out
}

// consoleCheck asks the switch for showinfo through a unixterm binary.
func consoleCheck(t *testing.T, unixterm, mgmt string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `(printf 'showinfo\n'; sleep 1) | "$0" "$1"`, unixterm, mgmt)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1000 Success") || !strings.Contains(string(out), "mgmt "+mgmt+" perm 0660") {
		t.Errorf("%s %s: %v\n%s", unixterm, mgmt, err, out)
	}
}

// asUser is the credential of a user of the private /etc.
func asUser(t *testing.T, name string) *syscall.Credential {
	t.Helper()
	out := run(t, "id", "-u", name)
	uid, _ := strconv.Atoi(strings.TrimSpace(out))
	gid, _ := strconv.Atoi(strings.TrimSpace(run(t, "id", "-g", name)))
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	for _, g := range strings.Fields(run(t, "id", "-G", name)) {
		n, _ := strconv.Atoi(g)
		c.Groups = append(c.Groups, uint32(n))
	}
	return c
}

// TestIfupdownSwitchManual: `iface vde0 inet manual` + `vde2-switch -`: the switch answers
// on the seed's paths with the seed's permissions; a member of vde2-net can plug in and an
// outsider cannot; ifdown leaves nothing.
func TestIfupdownSwitchManual(t *testing.T) {
	w := privateSystem(t, "iface vde0 inet manual\n    vde2-switch -\n")
	if w == nil {
		return
	}
	w.mustIfup("vde0")
	pid := pidOf(t, "/var/run/vde2/vde0.pid")
	sw := ifupSwitch("vde0")

	gid := strings.Split(strings.TrimSpace(run(t, "getent", "group", "vde2-net")), ":")[2]
	for _, c := range []struct {
		path string
		mode uint32
	}{
		{"/var/run/vde2", 02770}, {"/var/run/vde2/vde0.ctl", 02770},
		{"/var/run/vde2/vde0.ctl/ctl", 0660}, {"/var/run/vde2/vde0.mgmt", 0660},
	} {
		mode, g := fileMode(t, c.path)
		if mode != c.mode || strconv.Itoa(int(g)) != gid {
			t.Errorf("%s: mode %04o group %d; want %04o group vde2-net (%s)", c.path, mode, g, c.mode, gid)
		}
	}
	if out, err := tryRun("ip", "-n", w.NS, "link", "show", "vde0"); err == nil {
		t.Errorf("manual method: a TAP vde0 exists:\n%s", out)
	}

	// Our vde_plug as root, then as a member of vde2-net; an outsider is refused.
	plug := startProc(t, "/usr/local/bin/vde_plug", "/var/run/vde2/vde0.ctl")
	waitPlugged(t, sw, plug.PID())
	run(t, "useradd", "-M", "-G", "vde2-net", "vdein")
	run(t, "useradd", "-M", "vdeout")
	member := startProcOpts(t, procOptions{Credential: asUser(t, "vdein")}, "/usr/local/bin/vde_plug", "/var/run/vde2/vde0.ctl")
	waitPlugged(t, sw, member.PID())
	outsider := startProcOpts(t, procOptions{Credential: asUser(t, "vdeout")}, "/usr/local/bin/vde_plug", "/var/run/vde2/vde0.ctl")
	if err := outsider.Wait(startTimeout); err == nil {
		t.Errorf("vde_plug of a user outside vde2-net: exit 0, want a refusal")
	} else if !strings.Contains(outsider.Stderr.String(), "ermission denied") {
		t.Errorf("vde_plug of a user outside vde2-net: %v, stderr %q; want permission denied", err, outsider.Stderr.String())
	}

	// The console, raw, with Debian's unixterm and with ours.
	if info := strings.Join(sw.MustCmd(t, "showinfo"), "\n"); !strings.Contains(info, "mgmt /var/run/vde2/vde0.mgmt perm 0660") {
		t.Errorf("showinfo:\n%s", info)
	}
	if _, err := os.Stat("/usr/bin/unixterm"); err == nil {
		consoleCheck(t, "/usr/bin/unixterm", "/var/run/vde2/vde0.mgmt")
	}
	if checkOurUnixterm {
		consoleCheck(t, "/usr/local/bin/unixterm", "/var/run/vde2/vde0.mgmt")
	}

	member.Stop()
	plug.Stop()
	w.mustIfdown("vde0")
	w.checkGone("vde0", pid)
}

// TestIfupdownSwitchTapQemu: `iface qemu inet manual` + `vde2-switch -t qemu`: the TAP
// qemu exists and is a port of the switch; ifdown removes it.
func TestIfupdownSwitchTapQemu(t *testing.T) {
	w := privateSystem(t, "iface qemu inet manual\n    vde2-switch -t qemu\n")
	if w == nil {
		return
	}
	w.mustIfup("qemu")
	pid := pidOf(t, "/var/run/vde2/qemu.pid")
	run(t, "ip", "-n", w.NS, "link", "show", "qemu")
	sw := ifupSwitch("qemu")
	if raw := sw.Cmd(t, "port/allprint"); !strings.Contains(raw, "qemu") || !strings.Contains(raw, "tuntap") {
		t.Errorf("port/allprint does not list the TAP qemu:\n%s", raw)
	}
	w.mustIfdown("qemu")
	w.checkGone("qemu", pid)
}

// TestIfupdownStaticTap: `iface tap0 inet static` 10.0.3.1/24 + `vde2-switch -`: tap0 has
// the address and a namespace plugged into the switch with 10.0.3.2 pings it.
func TestIfupdownStaticTap(t *testing.T) {
	w := privateSystem(t, "iface tap0 inet static\n    address 10.0.3.1\n    netmask 255.255.255.0\n    vde2-switch -\n")
	if w == nil {
		return
	}
	w.mustIfup("tap0")
	pid := pidOf(t, "/var/run/vde2/tap0.pid")
	if out := run(t, "ip", "-n", w.NS, "addr", "show", "tap0"); !strings.Contains(out, "inet 10.0.3.1/24") {
		t.Errorf("tap0 lacks 10.0.3.1/24:\n%s", out)
	}
	h := plugTapWith(t, "/usr/bin/vde_plug", ifupSwitch("tap0"), 0, "10.0.3.2/24")
	waitPing(t, h.NS, "10.0.3.1")
	h.Plug.Stop()
	w.mustIfdown("tap0")
	w.checkGone("tap0", pid)
}

// TestIfupdownSlirpDHCP: `iface vde0 inet manual` + `vde2-switch -` + `vde2-slirp -dhcp`:
// slirpvde runs as vde2-net and a namespace on the switch gets a lease.
func TestIfupdownSlirpDHCP(t *testing.T) {
	w := privateSystem(t, "iface vde0 inet manual\n    vde2-switch -\n    vde2-slirp -dhcp\n")
	if w == nil {
		return
	}
	w.mustIfup("vde0")
	pid := pidOf(t, "/var/run/vde2/vde0.pid")
	slirp := pidOf(t, "/var/run/vde2/vde0-slirp.pid")
	uid := strings.TrimSpace(run(t, "id", "-u", "vde2-net"))
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", slirp))
	if !strings.Contains(string(st), "\nUid:\t"+uid+"\t") {
		t.Errorf("slirpvde does not run as vde2-net (uid %s):\n%s", uid, st)
	}
	g := plugGuestOn(t, ifupSwitch("vde0"))
	g.dhcp(t)
	g.checkLease(t, map[string]string{"ip": "10.0.2.15", "router": "10.0.2.2"})
	pingOK(t, g.NS, "10.0.2.2")
	g.Plug.Stop()
	w.mustIfdown("vde0")
	w.checkGone("vde0", pid, slirp)
}

// TestIfupdownRecovery: ifup of an interface that is up starts no second switch (also with
// --force, which runs the hooks again); after the switch was SIGKILLed, ifup --force
// starts a new one over the stale pid file and sockets, and ifdown after another SIGKILL
// still leaves nothing; a stanza whose switch cannot start makes ifup fail with the
// switch's message and leaves nothing behind.
func TestIfupdownRecovery(t *testing.T) {
	w := privateSystem(t, "iface vde0 inet manual\n    vde2-switch -\n\niface bad0 inet manual\n    vde2-switch --nosuchoption\n")
	if w == nil {
		return
	}
	w.mustIfup("vde0")
	pid := pidOf(t, "/var/run/vde2/vde0.pid")
	for _, extra := range [][]string{nil, {"--force"}} {
		w.ifup("vde0", extra...) // plain ifup refuses: already configured
		if got := switchPids(w.NS, "/var/run/vde2/vde0.ctl"); len(got) != 1 || got[0] != pid {
			t.Errorf("after a second ifup %v: switches %v, want only %d", extra, got, pid)
		}
	}

	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, stopTimeout, "the killed switch to end", func() (bool, string) { return !running(pid), "" })
	if out, err := w.ifup("vde0", "--force"); err != nil {
		t.Fatalf("ifup --force after SIGKILL: %v\n%s", err, out)
	}
	pid2 := pidOf(t, "/var/run/vde2/vde0.pid")
	if pid2 == pid {
		t.Fatalf("pid file still names the killed switch")
	}
	ifupSwitch("vde0").MustCmd(t, "showinfo")

	syscall.Kill(pid2, syscall.SIGKILL)
	waitFor(t, stopTimeout, "the killed switch to end", func() (bool, string) { return !running(pid2), "" })
	w.mustIfdown("vde0")
	w.checkGone("vde0", pid2)

	out, err := w.ifup("bad0")
	if err == nil {
		t.Errorf("ifup bad0 (vde2-switch --nosuchoption) succeeded:\n%s", out)
	}
	if !strings.Contains(out, "vde_switch: unrecognized option '--nosuchoption'") {
		t.Errorf("ifup bad0 does not show the switch's message:\n%s", out)
	}
	w.checkGone("bad0")
	if got := switchPids(w.NS, "/var/run/vde2/bad0.ctl"); len(got) != 0 {
		t.Errorf("switches of bad0 left: %v", got)
	}
	if m, _ := filepath.Glob(filepath.Join(w.State, "*")); len(m) > 0 {
		for _, f := range m {
			if b, _ := os.ReadFile(f); strings.Contains(string(b), "bad0") {
				t.Errorf("ifupdown state %s says bad0 is up: %q", f, b)
			}
		}
	}
}

// --- the seed's encrypted tunnel stanzas -----------------------------------------------------

// remoteHost is "the remote machine" of the seed's tunnel stanzas: an sshd on 127.0.0.1 of
// the test's network namespace, in a mount namespace of its own with fresh /run and /tmp
// (so its /var/run/vde2/tap0.ctl is not ours), and a second network namespace for the
// remote TAP. Its ifup runs with nsenter into the sshd's mount namespace.
type remoteHost struct {
	Port int
	Key  string
	SSHD *Proc
	NS   string
}

// sshOpts are the ssh options the stanzas add to the seed's `ssh user@host`.
func (r *remoteHost) sshOpts() string {
	return fmt.Sprintf("-i %s -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR", r.Key, r.Port)
}

func startRemoteHost(t *testing.T, w *ifupWorld) *remoteHost {
	t.Helper()
	if _, err := os.Stat(sshdBin); err != nil {
		t.Skipf("needs %s (Debian package openssh-server): %v", sshdBin, err)
	}
	requireTools(t, "ssh", "ssh-keygen", "nsenter")
	// In the private /etc: readable by the unprivileged remote user too.
	dir := "/etc/itest-sshd"
	os.MkdirAll(dir, 0o755)
	hostKey, clientKey := filepath.Join(dir, "host_key"), filepath.Join(dir, "client_key")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "itest-host", "-f", hostKey)
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "itest-client", "-f", clientKey)
	pub, _ := os.ReadFile(clientKey + ".pub")
	authorized := filepath.Join(dir, "authorized_keys")
	os.WriteFile(authorized, pub, 0o644)
	r := &remoteHost{Port: 2222, Key: clientKey, NS: newNetns(t)}
	cfg := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{
		"ListenAddress 127.0.0.1", fmt.Sprintf("Port %d", r.Port), "HostKey " + hostKey,
		"PidFile none", "AuthorizedKeysFile " + authorized, "PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
		"StrictModes no", "UsePAM no", "UseDNS no", "PrintMotd no", "PrintLastLog no", "MaxStartups 100", "",
	}, "\n")
	os.WriteFile(cfg, []byte(conf), 0o600)
	script := `mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/sshd /run/itest/state &&
mount -t tmpfs -o mode=1777 tmpfs /tmp && exec ` + sshdBin + ` -D -e -f "$0"`
	r.SSHD = startProc(t, "ip", "netns", "exec", w.NS, "unshare", "-m", "--propagation", "private", "sh", "-c", script, cfg)
	r.SSHD.Name = "sshd(remote)"
	waitFor(t, startTimeout, "the remote sshd", func() (bool, string) {
		if r.SSHD.Exited() {
			t.Fatalf("sshd exited: %v\n%s", r.SSHD.waitErr, r.SSHD.Stderr.String())
		}
		args := append([]string{"netns", "exec", w.NS, "ssh"}, strings.Fields(r.sshOpts())...)
		out, err := tryRun("ip", append(args, "root@127.0.0.1", "true")...)
		return err == nil, out
	})
	return r
}

// remote returns the ifup world of the remote host: its files in the private /etc, its
// commands run in the sshd's mount namespace and the remote network namespace.
func (r *remoteHost) world(t *testing.T, stanzas string) *ifupWorld {
	t.Helper()
	rw := &ifupWorld{t: t, NS: r.NS, Dir: "/etc/itest-remote"}
	os.MkdirAll(rw.Dir, 0o755)
	rw.File, rw.State = filepath.Join(rw.Dir, "interfaces"), "/run/itest/state"
	os.WriteFile(rw.File, []byte(stanzas), 0o644)
	rw.Prefix = r.enter()
	return rw
}

// enter is the command prefix that runs a command on the remote host.
func (r *remoteHost) enter() []string {
	return []string{"nsenter", "--net=/run/netns/" + r.NS, fmt.Sprintf("--mount=/proc/%d/ns/mnt", r.SSHD.PID())}
}

// remoteFile is a path of the remote host's mount namespace, seen from ours (/var/run is
// an absolute symlink to /run, which would resolve in our namespace).
func (r *remoteHost) remoteFile(p string) string {
	if rest, ok := strings.CutPrefix(p, "/var/run/"); ok {
		p = "/run/" + rest
	}
	return fmt.Sprintf("/proc/%d/root%s", r.SSHD.PID(), p)
}

// TestIfupdownSSHTunnel: the seed's encrypted tunnel. The remote host brings up
// `iface tap0 inet static` 10.0.2.1 + `vde2-switch -`; the local one 10.0.2.2 with
// `vde2-plug ssh ... vde_plug /var/run/vde2/tap0.ctl`; the two TAPs ping each other; ifdown
// on both sides leaves nothing.
func TestIfupdownSSHTunnel(t *testing.T) {
	w := privateSystem(t, "")
	if w == nil {
		return
	}
	r := startRemoteHost(t, w)
	rw := r.world(t, "iface tap0 inet static\n    address 10.0.2.1\n    netmask 255.255.255.0\n    vde2-switch -\n")
	rw.mustIfup("tap0")
	rpid := pidOf(t, r.remoteFile("/var/run/vde2/tap0.pid"))

	local := "iface tap0 inet static\n    address 10.0.2.2\n    netmask 255.255.255.0\n    vde2-switch -\n" +
		"    vde2-plug ssh " + r.sshOpts() + " root@127.0.0.1 vde_plug /var/run/vde2/tap0.ctl\n"
	os.WriteFile(w.File, []byte(local), 0o644)
	w.mustIfup("tap0")
	pid := pidOf(t, "/var/run/vde2/tap0.pid")
	dpipe := pidOf(t, "/var/run/vde2/tap0-plug.pid")
	if got := procArgs(dpipe); !strings.HasPrefix(got, "dpipe ") {
		t.Errorf("plug pid file names %q, want dpipe", got)
	}
	waitPing(t, w.NS, "10.0.2.1")
	waitFor(t, 20*time.Second, "ping 10.0.2.2 from the remote host", func() (bool, string) {
		out, err := tryRun("nsenter", "--net=/run/netns/"+r.NS, "ping", "-n", "-c", "1", "-W", "1", "10.0.2.2")
		return err == nil, out
	})

	w.mustIfdown("tap0")
	w.checkGone("tap0", pid, dpipe)
	rw.mustIfdown("tap0")
	waitFor(t, stopTimeout, "the remote switch to end", func() (bool, string) { return !running(rpid), procArgs(rpid) })
	for _, s := range []string{".pid", ".ctl", ".mgmt"} {
		if _, err := os.Lstat(r.remoteFile("/var/run/vde2/tap0" + s)); err == nil {
			t.Errorf("remote host: /var/run/vde2/tap0%s left after ifdown", s)
		}
	}
}

// TestIfupdownSSHRemoteSlirp: the seed's variant with an unprivileged remote VDE: pre-up
// lines start `vde_switch -s /tmp/vde.ctl ... -d` and `slirpvde -D ...` over ssh as a
// normal user, vde2-plug joins the local tap0 to it and `inet dhcp` gets its lease from the
// remote slirp; the post-down lines and ifdown stop everything.
func TestIfupdownSSHRemoteSlirp(t *testing.T) {
	requireTools(t, "dhclient")
	w := privateSystem(t, "")
	if w == nil {
		return
	}
	r := startRemoteHost(t, w)
	// If ifup fails after the pre-up lines, nothing runs the post-down ones: stop the
	// remote tools by their pid files (before the sshd, whose namespace holds them).
	t.Cleanup(func() {
		for _, f := range []string{"/tmp/vde_switch.pid", "/tmp/slirpvde.pid"} {
			if b, err := os.ReadFile(r.remoteFile(f)); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && running(pid) {
					syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		}
	})
	run(t, "useradd", "-M", "-d", "/tmp", "-s", "/bin/sh", "vderemote")
	run(t, "usermod", "-p", "*", "vderemote") // not locked: sshd refuses locked accounts
	ssh := "ssh " + r.sshOpts() + " vderemote@127.0.0.1"
	stanza := "iface tap0 inet dhcp\n" +
		"    vde2-switch -\n" +
		"    pre-up " + ssh + " vde_switch -s /tmp/vde.ctl -p /tmp/vde_switch.pid -d\n" +
		"    pre-up sleep 1\n" +
		"    pre-up " + ssh + " slirpvde -D -s /tmp/vde.ctl -p /tmp/slirpvde.pid -d\n" +
		"    vde2-plug " + ssh + " vde_plug /tmp/vde.ctl\n" +
		"    post-down " + ssh + " 'test -f /tmp/vde_switch.pid && kill `cat /tmp/vde_switch.pid` || true'\n" +
		"    post-down " + ssh + " 'test -f /tmp/slirpvde.pid && kill `cat /tmp/slirpvde.pid` || true'\n" +
		"    post-down " + ssh + " rm -f /tmp/vde_switch.pid /tmp/slirpvde.pid\n"
	os.WriteFile(w.File, []byte(stanza), 0o644)
	w.mustIfup("tap0")
	pid := pidOf(t, "/var/run/vde2/tap0.pid")
	dpipe := pidOf(t, "/var/run/vde2/tap0-plug.pid")
	rsw := pidOf(t, r.remoteFile("/tmp/vde_switch.pid"))
	rslirp := pidOf(t, r.remoteFile("/tmp/slirpvde.pid"))
	uid := strings.TrimSpace(run(t, "id", "-u", "vderemote"))
	for _, p := range []int{rsw, rslirp} {
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p)); !strings.Contains(string(st), "\nUid:\t"+uid+"\t") {
			t.Errorf("remote %s does not run as vderemote", procArgs(p))
		}
	}
	if out := run(t, "ip", "-n", w.NS, "addr", "show", "tap0"); !strings.Contains(out, "inet 10.0.2.15/24") {
		t.Errorf("tap0 has no lease from the remote slirp (10.0.2.15/24):\n%s", out)
	}
	pingOK(t, w.NS, "10.0.2.2")

	w.mustIfdown("tap0")
	w.checkGone("tap0", pid, dpipe)
	for _, p := range []int{rsw, rslirp} {
		waitFor(t, stopTimeout, "remote "+procArgs(p)+" to end", func() (bool, string) { return !running(p), procArgs(p) })
	}
}

// TestIfupdownUninstall: on a system without vde2-net, make install creates the user and
// group, diverts Debian's hooks and installs ours; make uninstall undoes all of it.
func TestIfupdownUninstall(t *testing.T) {
	// In the private /etc, before make install: a system where vde2-net does not exist.
	w := privateSystemWith(t, "", func() {
		// -f: the other ifupdown tests, in parallel, run switches as vde2-net, and
		// userdel refuses a user with processes (the user goes only from this /etc).
		for _, c := range [][]string{{"userdel", "-f", "vde2-net"}, {"groupdel", "vde2-net"}} {
			if out, err := tryRun(c[0], c[1:]...); err != nil && !strings.Contains(out, "does not exist") {
				t.Fatalf("%v in the private /etc: %v\n%s", c, err, out)
			}
		}
	})
	if w == nil {
		return
	}
	run(t, "getent", "passwd", "vde2-net")
	root, _ := filepath.Abs("..")
	out := run(t, "make", "-C", root, "uninstall")
	for _, d := range []string{"if-pre-up.d", "if-post-down.d"} {
		f := "/etc/network/" + d + "/vde2"
		b, err := os.ReadFile(f)
		debian, _ := exec.Command("dpkg-query", "-S", f).CombinedOutput()
		switch {
		case strings.Contains(string(b), "vde ifup-hook"):
			t.Errorf("%s is still ours", f)
		case strings.Contains(string(debian), "vde2:") && (err != nil || !strings.Contains(string(b), "VDE_SWITCH=")):
			t.Errorf("Debian's %s not restored: %v", f, err)
		}
		if div, _ := exec.Command("dpkg-divert", "--listpackage", f).Output(); len(bytes.TrimSpace(div)) > 0 {
			t.Errorf("%s still diverted by %s", f, div)
		}
	}
	for _, cmd := range [][]string{{"getent", "passwd", "vde2-net"}, {"getent", "group", "vde2-net"}} {
		if _, err := tryRun(cmd[0], cmd[1:]...); err == nil {
			t.Errorf("after uninstall: %v finds it", cmd)
		}
	}
	for _, f := range []string{"/usr/local/bin/vde", "/usr/local/bin/vde_switch"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("after uninstall: %s is left", f)
		}
	}
	if t.Failed() {
		t.Logf("make uninstall:\n%s", out)
	}
}
