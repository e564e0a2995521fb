package itest

// Who may plug into a switch and what a client may make it do, tried by real unprivileged
// users. The users and groups exist only in the test's private mount namespace, where /etc
// is an overlay (the same re-run as the ifupdown tests).

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// privateUsers re-runs the calling test in a private mount namespace whose /etc is an
// overlay on a tmpfs, then adds the users (name, or name:group1,group2) there. It returns
// false in the outer run, where the caller just returns.
func privateUsers(t *testing.T, groups []string, users ...string) bool {
	t.Helper()
	requireRoot(t)
	requireTools(t, "unshare", "useradd", "groupadd", "socat", "id")
	if os.Getenv(ifupdownInsideEnv) == "" {
		reRunInside(t)
		return false
	}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	init, _ := os.Readlink("/proc/1/ns/mnt")
	if self == "" || self == init {
		t.Fatalf("not in a private mount namespace (%q); not adding users", self)
	}
	// The upper layer must not be on an overlay itself: a tmpfs of our own.
	base, err := os.MkdirTemp("", "vde-etc-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", base, err)
	}
	t.Cleanup(func() {
		unix.Unmount("/etc", unix.MNT_DETACH)
		unix.Unmount(base, unix.MNT_DETACH)
		os.Remove(base)
	})
	up, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
	os.Mkdir(up, 0o755)
	os.Mkdir(work, 0o755)
	if err := unix.Mount("overlay", "/etc", "overlay", 0, fmt.Sprintf("lowerdir=/etc,upperdir=%s,workdir=%s", up, work)); err != nil {
		t.Fatalf("overlay on /etc: %v", err)
	}
	for _, g := range groups {
		run(t, "groupadd", g)
	}
	for _, u := range users {
		name, gs, _ := strings.Cut(u, ":")
		args := []string{"-M", "-s", "/bin/sh", name}
		if gs != "" {
			args = append([]string{"-G", gs}, args...)
		}
		run(t, "useradd", args...)
	}
	return true
}

// uidOf is a private user's uid.
func uidOf(t *testing.T, name string) int {
	t.Helper()
	uid, err := strconv.Atoi(strings.TrimSpace(run(t, "id", "-u", name)))
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// socatAs runs socat as a user: stdin (in) to the unix stream socket path, and returns what
// came back and socat's error.
func socatAs(t *testing.T, cred *syscall.Credential, path string, in []byte) (string, string, error) {
	t.Helper()
	p := startProcOpts(t, procOptions{Credential: cred}, "socat", "-t", "2", "STDIO", "UNIX-CONNECT:"+path)
	p.Stdin.Write(in)
	p.Stdin.Close()
	err := p.Wait(10 * time.Second)
	return p.Stdout.String(), p.Stderr.String(), err
}

// openSpace makes dir reachable by every user (t.TempDir is 0700).
func openSpace(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if strings.HasPrefix(d, os.TempDir()+"/") || d == dir {
			os.Chmod(d, 0o755)
		}
	}
}

// TestDataSocketHijack: a client names, as its data socket, a datagram socket that is not
// its own (a /dev/log-like socket of root's, directly or through a symlink it owns). The C
// switch, run as root, connects to it and sends it every broadcast; ours refuses the request
// with one log line and the other ports keep forwarding. A client naming its own socket is
// served.
func TestDataSocketHijack(t *testing.T) {
	oursOnly(t, "the C switch connects wherever a client says")
	if !privateUsers(t, nil, "mallory") {
		return
	}
	mallory := asUser(t, "mallory")
	sw := startSwitch(t, implOurs, "-m", "0666", "--dirmode", "0777")
	openSpace(t, sw.Tmp)

	victim, vfd := bindVictim(t, sw.Tmp)
	// A directory of mallory's with a symlink to it.
	mine := filepath.Join(sw.Tmp, "mallory")
	os.Mkdir(mine, 0o755)
	os.Chown(mine, int(mallory.Uid), int(mallory.Gid))
	link := filepath.Join(mine, "sock")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	os.Lchown(link, int(mallory.Uid), int(mallory.Gid))

	a, b := dialPeer(t, sw, 1, wire.DialOptions{}), dialPeer(t, sw, 2, wire.DialOptions{})
	for _, target := range []string{victim, link} {
		out, errOut, err := socatAs(t, mallory, filepath.Join(sw.Dir, "ctl"), v3Request(t, 0, target, "hijack"))
		if out != "" {
			t.Errorf("request naming %s: the switch replied %q; want a refusal", target, out)
		}
		t.Logf("socat as mallory naming %s: %v %s", target, err, strings.TrimSpace(errOut))
		want := fmt.Sprintf("client data socket %s: owned by uid 0, not by the client (uid %d): refused", target, mallory.Uid)
		waitFor(t, 5*time.Second, "the refusal in the switch's log", func() (bool, string) {
			return strings.Contains(sw.Proc.Stderr.String(), want), sw.Proc.Stderr.String()
		})
	}
	// Broadcasts reach the other port, and never the victim.
	exchange(t, a, b, "still-forwarding")
	var buf [2048]byte
	if n, _, err := unix.Recvfrom(vfd, buf[:], unix.MSG_DONTWAIT); err == nil {
		t.Errorf("the victim socket received %d bytes from the switch", n)
	}
	if ports := sw.Cmd(t, "port/allprint"); strings.Contains(ports, "hijack") {
		t.Errorf("a refused request has a port:\n%s", ports)
	}

	// Mallory's own socket, through Debian's library: plugged in.
	requireTools(t, sshDebianPlug)
	plug := startProcOpts(t, procOptions{Credential: mallory}, sshDebianPlug, sw.Dir)
	waitPlugged(t, sw, plug.PID())
	t.Logf("RELIABILITY: data-socket hijack (root's 0666 dgram socket, and a symlink to it): refused, %q; %s", "client data socket ...: owned by uid 0, not by the client", debianHijack(t, mallory))
}

// bindVictim binds the victim in dir: root's datagram socket, writable by all, like
// /dev/log. Reads from the descriptor wait at most 2 s; it is closed at cleanup.
func bindVictim(t *testing.T, dir string) (path string, fd int) {
	t.Helper()
	path = filepath.Join(dir, "log")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	tv := unix.Timeval{Sec: 2}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return path, fd
}

// debianHijack tries the same request on Debian's switch, for the record: whether it
// connects to root's socket and sends it a broadcast.
func debianHijack(t *testing.T, mallory *syscall.Credential) string {
	if _, err := os.Stat(debianSwitch); err != nil {
		return "Debian's switch not installed"
	}
	sw := startSwitch(t, implDebian, "-m", "0666", "--dirmode", "0777")
	openSpace(t, sw.Tmp)
	victim, vfd := bindVictim(t, sw.Tmp)
	// socat keeps the control connection open while its stdin is.
	p := startProcOpts(t, procOptions{Credential: mallory}, "socat", "STDIO", "UNIX-CONNECT:"+filepath.Join(sw.Dir, "ctl"))
	p.Stdin.Write(v3Request(t, 0, victim, "hijack"))
	defer p.Stdin.Close()
	replied := false
	for i := 0; i < 50 && !replied; i++ {
		replied = len(p.Stdout.String()) >= 110
		time.Sleep(20 * time.Millisecond)
	}
	a := dialPeer(t, sw, 1, wire.DialOptions{})
	a.send(t, ethFrame(broadcast, a.MAC, "to-the-victim"))
	var buf [2048]byte
	n, _, err := unix.Recvfrom(vfd, buf[:], 0)
	if err != nil {
		return fmt.Sprintf("Debian's vde_switch: replied %v, the victim received nothing (%v)", replied, err)
	}
	return fmt.Sprintf("Debian's vde_switch: replied %v and sent the victim a %d-byte frame", replied, n)
}

// TestSwitchAccessControl: the control directory's mode and group (-m, --dirmode, -g) and
// the port ACLs (port/setuser, port/setgroup) hold against real users: outsiders of the
// group cannot plug in, members can; a port set to a user or group serves only them.
func TestSwitchAccessControl(t *testing.T) {
	oursOnly(t, "the C switch leaves refused clients hanging")
	if !privateUsers(t, []string{"vdelan", "vdeops"}, "alice:vdelan,vdeops", "bob:vdelan", "eve") {
		return
	}
	alice, bob, eve := asUser(t, "alice"), asUser(t, "bob"), asUser(t, "eve")
	sw := startSwitch(t, implOurs, "-m", "0660", "-g", "vdelan", "--dirmode", "02770")
	openSpace(t, sw.Tmp)
	plugBin := appletPath(t, "vde_plug")

	mode, gid := fileMode(t, sw.Dir)
	if want := uint32(02770); mode != want || int(gid) != groupID(t, "vdelan") {
		t.Errorf("%s: mode %04o group %d; want %04o vdelan", sw.Dir, mode, gid, want)
	}
	outsider := startProcOpts(t, procOptions{Credential: eve}, plugBin, sw.Dir)
	if err := outsider.Wait(startTimeout); err == nil || !strings.Contains(outsider.Stderr.String(), "ermission denied") {
		t.Errorf("vde_plug of eve (not in vdelan): %v, stderr %q; want permission denied", err, outsider.Stderr.String())
	}
	member := startProcOpts(t, procOptions{Credential: bob}, plugBin, sw.Dir)
	waitPlugged(t, sw, member.PID())

	sw.MustCmd(t, "port/create 5")
	sw.MustCmd(t, "port/setuser 5 alice")
	sw.MustCmd(t, "port/create 6")
	sw.MustCmd(t, "port/setgroup 6 vdeops")
	for _, c := range []struct {
		who  *syscall.Credential
		name string
		port int
		ok   bool
	}{
		{bob, "bob", 5, false}, {bob, "bob", 6, false}, {alice, "alice", 5, true}, {alice, "alice", 6, true},
	} {
		p := startProcOpts(t, procOptions{Credential: c.who}, plugBin, fmt.Sprintf("vde://%s[%d]", sw.Dir, c.port))
		if c.ok {
			waitPlugged(t, sw, p.PID())
			continue
		}
		if err := p.Wait(startTimeout); err == nil {
			t.Errorf("%s on port %d: plugged in; want a refusal", c.name, c.port)
		}
		want := fmt.Sprintf("port %d refused: access control denies uid %d", c.port, c.who.Uid)
		waitFor(t, 5*time.Second, fmt.Sprintf("%q in the switch's log", want), func() (bool, string) {
			return strings.Contains(sw.Proc.Stderr.String(), want), sw.Proc.Stderr.String()
		})
	}
	t.Logf("RELIABILITY: ctl dir 02770 group vdelan, socket 0660: outsider refused (EACCES), member plugged; port/setuser, port/setgroup: others refused")
}

// TestMgmtAccess: the management socket's mode and group hold; a member of its group may
// configure the switch but not shut it down (only root and the switch's own user may);
// root may.
func TestMgmtAccess(t *testing.T) {
	oursOnly(t, "the C switch lets anyone with the mgmt socket shut it down")
	if !privateUsers(t, []string{"vdeops"}, "alice:vdeops", "eve") {
		return
	}
	alice, eve := asUser(t, "alice"), asUser(t, "eve")
	sw := startSwitch(t, implOurs, "--mgmtmode", "0660", "--mgmtgroup", "vdeops")
	openSpace(t, sw.Tmp)
	if mode, gid := fileMode(t, sw.Mgmt); mode != 0o660 || int(gid) != groupID(t, "vdeops") {
		t.Errorf("%s: mode %04o group %d; want 0660 vdeops", sw.Mgmt, mode, gid)
	}
	if out, errOut, err := socatAs(t, eve, sw.Mgmt, []byte("showinfo\n")); err == nil || !strings.Contains(errOut, "ermission denied") {
		t.Errorf("eve on the mgmt socket: %v, %q %q; want permission denied", err, out, errOut)
	}
	out, _, err := socatAs(t, alice, sw.Mgmt, []byte("port/create 9\nshutdown\nlogout\n"))
	if err != nil {
		t.Errorf("alice on the mgmt socket: %v", err)
	}
	if !strings.Contains(out, "1000 Success") || !strings.Contains(out, "1001 Operation not permitted") {
		t.Errorf("alice's port/create then shutdown: %q; want 1000 Success, then 1001 Operation not permitted", out)
	}
	if sw.Proc.Exited() {
		t.Fatalf("the switch exited after alice's shutdown")
	}
	// load reads a script with alice's rights, not the root switch's: not root's 0600 file.
	secret, script := filepath.Join(sw.Tmp, "secret"), filepath.Join(sw.Tmp, "ok.rc")
	os.WriteFile(secret, []byte("root-only-line\n"), 0o600)
	os.WriteFile(script, []byte("port/create 12\n"), 0o644)
	out, _, err = socatAs(t, alice, sw.Mgmt, []byte("load "+secret+"\nload "+script+"\nlogout\n"))
	if err != nil {
		t.Errorf("alice's load: %v", err)
	}
	if strings.Contains(out, "root-only-line") || !strings.Contains(out, "1013 Permission denied") {
		t.Errorf("alice's load of root's 0600 file: %q; want 1013 Permission denied and none of its lines", out)
	}
	if !strings.Contains(out, "vde["+script+"]: port/create 12") {
		t.Errorf("alice's load of a script she may read: %q", out)
	}
	if !strings.Contains(sw.Cmd(t, "port/allprint"), "Port 0012") {
		t.Errorf("alice's script did not run")
	}
	waitFor(t, 5*time.Second, "a log line for the refused shutdown", func() (bool, string) {
		return strings.Contains(sw.Proc.Stderr.String(), fmt.Sprintf("shutdown from uid %d refused", alice.Uid)), sw.Proc.Stderr.String()
	})
	sw.Cmd(t, "shutdown")
	if err := sw.Proc.Wait(10 * time.Second); err != nil && sw.Proc.ExitCode() != 0 {
		t.Errorf("root's shutdown: %v", err)
	}
	if !sw.Proc.Exited() {
		t.Errorf("the switch is still running after root's shutdown")
	}
	t.Logf("RELIABILITY: mgmt 0660 group vdeops: outsider refused (EACCES); member's shutdown -> 1001 Operation not permitted, switch runs on; member's load of root's 0600 file -> 1013 Permission denied (the C switch echoes it), of her own script -> runs; root's shutdown stops it")
}

// groupID is a private group's gid.
func groupID(t *testing.T, name string) int {
	t.Helper()
	f := strings.Split(strings.TrimSpace(run(t, "getent", "group", name)), ":")
	gid, err := strconv.Atoi(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return gid
}
