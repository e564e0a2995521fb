package itest

// The harness: which switch to run, processes, switches, management sessions, network
// namespaces with TAPs, and in-process wire clients ("peers") that send and receive raw
// Ethernet frames.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// Switch implementations a test can run against.
const (
	implOurs   = "ours"
	implDebian = "debian"

	debianSwitch = "/usr/bin/vde_switch"
)

// Generous limits for waiting; no test asserts on speed.
const (
	startTimeout = 10 * time.Second // a switch or plug comes up
	stopTimeout  = 10 * time.Second // a process exits after SIGTERM
	recvTimeout  = 5 * time.Second  // a frame arrives
	mgmtTimeout  = 10 * time.Second // a management response completes
	closeTimeout = 10 * time.Second // the switch closes a refused control connection
	// quietPeriod is how long a peer must stay silent for "did not receive". It bounds
	// nothing about speed: a frame that should not arrive must not arrive at all.
	quietPeriod = 300 * time.Millisecond
)

// impl is the implementation under test (VDE_ITEST_IMPL, default ours).
var impl string

var ours struct {
	once sync.Once
	dir  string // holds vde and the vde_switch symlink
	bin  string // <dir>/vde_switch
	err  error
}

func TestMain(m *testing.M) {
	impl = os.Getenv("VDE_ITEST_IMPL")
	if impl == "" {
		impl = implOurs
	}
	if impl != implOurs && impl != implDebian {
		fmt.Fprintf(os.Stderr, "itest: VDE_ITEST_IMPL=%q: want %q or %q\n", impl, implOurs, implDebian)
		os.Exit(2)
	}
	if impl == implOurs {
		buildOurs()
	}
	code := m.Run()
	if ours.dir != "" {
		os.RemoveAll(ours.dir)
	}
	os.Exit(code)
}

// buildOurs builds the multicall binary once: go build -o <tmp>/vde <repo root>, plus a
// symlink <tmp>/vde_switch so that it dispatches on argv[0].
func buildOurs() {
	ours.once.Do(func() {
		root, err := filepath.Abs("..")
		if err != nil {
			ours.err = err
			return
		}
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
			ours.err = fmt.Errorf("repo root %s: %w", root, err)
			return
		}
		dir, err := os.MkdirTemp("", "vde-itest-bin-")
		if err != nil {
			ours.err = err
			return
		}
		os.Chmod(dir, 0755) // unprivileged helpers may run it
		ours.dir = dir
		gobin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(gobin, "build", "-o", filepath.Join(dir, "vde"), root)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			ours.err = fmt.Errorf("go build -o %s/vde %s: %v\n%s", dir, root, err, out)
			return
		}
		ours.bin = filepath.Join(dir, "vde_switch")
		ours.err = os.Symlink("vde", ours.bin)
	})
}

// switchBin is the vde_switch to run for an implementation. A failed build of ours fails
// the test: an unfinished switch must show up as failures, not skips.
func switchBin(t testing.TB, which string) string {
	t.Helper()
	switch which {
	case implDebian:
		requireTools(t, debianSwitch)
		return debianSwitch
	case implOurs:
		buildOurs()
		if ours.err != nil {
			t.Fatalf("our vde binary is not available: %v", ours.err)
		}
		return ours.bin
	}
	t.Fatalf("unknown switch implementation %q", which)
	return ""
}

// oursOnly skips a test (or subtest) whose assertion is about where our switch
// deliberately differs from Debian's.
func oursOnly(t testing.TB, why string) {
	t.Helper()
	if impl != implOurs {
		t.Skipf("ours-only (VDE_ITEST_IMPL=%s): %s", impl, why)
	}
}

// referenceImpl is what the implementation under test is compared with: Debian's switch.
// In debian mode both sides are Debian's, which checks the comparison itself.
const referenceImpl = implDebian

// --- machine requirements ---------------------------------------------------------------

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, TAP devices and switch-side chown")
	}
}

func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian packages vde2, vdeplug, qemu-system-x86, iperf3, socat, iproute2): %v", tool, err)
		}
	}
}

func requireTun(t testing.TB) {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs /dev/net/tun: %v", err)
	}
}

// --- names -------------------------------------------------------------------------------

var nameSeq atomic.Uint32

// uniqueSuffix is unique within this machine while the test binary runs: pid plus counter.
func uniqueSuffix() string {
	return fmt.Sprintf("%04x%02x", os.Getpid()&0xffff, nameSeq.Add(1)&0xff)
}

// tapName is a TAP name of 8 characters, so that "name.4094" still fits IFNAMSIZ.
func tapName() string { return "vt" + uniqueSuffix() }

// testDir is a private directory for sockets: t.TempDir, unless its path would leave too
// little of sun_path's 108 bytes for "<dir>/sw/.PPPPP-SSSSS".
func testDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if len(d) <= 70 {
		return d
	}
	d, err := os.MkdirTemp("", "vdeit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// --- processes ---------------------------------------------------------------------------

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proc is a process a test started. Its stdin is a pipe the test keeps open until Stop
// (Debian's vde_switch and vde_plug exit at stdin EOF); stdout and stderr are collected and
// logged if the test fails.
type Proc struct {
	Name   string
	Cmd    *exec.Cmd
	Stdin  *os.File // write end of the child's stdin
	Stdout syncBuffer
	Stderr syncBuffer

	done    chan struct{}
	waitErr error
}

// procOptions are the rarely needed knobs of startProcOpts.
type procOptions struct {
	// Credential runs the process as another user.
	Credential *syscall.Credential
	// Env is added to the test's environment.
	Env []string
}

// startProc starts name with args; the process is stopped (SIGTERM, then SIGKILL) by PID at
// cleanup.
func startProc(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return startProcOpts(t, procOptions{}, name, args...)
}

func startProcOpts(t testing.TB, o procOptions, name string, args ...string) *Proc {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{Name: filepath.Base(name), Stdin: pw, done: make(chan struct{})}
	cmd := exec.Command(name, args...)
	cmd.Stdin = pr
	cmd.Stdout = &p.Stdout
	cmd.Stderr = &p.Stderr
	cmd.WaitDelay = 2 * time.Second
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	if o.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Credential}
	}
	p.Cmd = cmd
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatalf("start %s: %v", cmd, err)
	}
	pr.Close()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			p.log(t)
		}
	})
	return p
}

// PID is the process id (for `ip netns exec`, the command's: ip execs it).
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit by itself and returns its exit error
// (nil for status 0), or an error if it is still running.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running after %v", p.Name, p.PID(), timeout)
	}
}

// ExitCode is the exit status after the process ended, -1 if killed by a signal.
func (p *Proc) ExitCode() int {
	<-p.done
	return p.Cmd.ProcessState.ExitCode()
}

// Stop ends the process by PID: SIGTERM, then SIGKILL if it ignores that; it closes stdin
// and waits. Safe to call more than once.
func (p *Proc) Stop() {
	if !p.Exited() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			p.Cmd.Process.Kill()
			<-p.done
		}
	}
	p.Stdin.Close()
}

func (p *Proc) log(t testing.TB) {
	t.Helper()
	state := "running"
	if p.Exited() {
		state = fmt.Sprintf("exited: %v", p.waitErr)
	}
	t.Logf("process %s (pid %d, %s): %s", p.Name, p.PID(), state, strings.Join(p.Cmd.Args, " "))
	if s := p.Stdout.String(); s != "" {
		t.Logf("%s stdout:\n%s", p.Name, truncate(s, 4000))
	}
	if s := p.Stderr.String(); s != "" {
		t.Logf("%s stderr:\n%s", p.Name, truncate(s, 4000))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d more bytes)", len(s)-n)
}

// run runs a command to completion and returns its combined output; it fails the test on
// a non-zero exit.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := tryRun(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// tryRun runs a command to completion (stdin /dev/null, 60 s limit) and returns its
// combined output and exit error.
func tryRun(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("killed after 60s")
	}
}

// waitFor polls cond every 20 ms until it returns true or timeout passes; then it fails
// the test with what describes the last state.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// --- switches ----------------------------------------------------------------------------

// Switch is a running vde_switch (ours or Debian's) in the foreground, its console stdin a
// pipe held open by the test.
type Switch struct {
	Impl string
	Dir  string // control directory (-s)
	Mgmt string // management socket (-M); empty if none
	Tmp  string // the test's private directory holding Dir and Mgmt
	Proc *Proc

	mu      sync.Mutex
	session *Mgmt
}

// startSwitch runs a switch of implementation which with -s <tmp>/sw -M <tmp>/mgmt and
// extra arguments, and waits until both sockets accept connections.
func startSwitch(t testing.TB, which string, extra ...string) *Switch {
	t.Helper()
	tmp := testDir(t)
	dir, mgmt := filepath.Join(tmp, "sw"), filepath.Join(tmp, "mgmt")
	args := append([]string{"-s", dir, "-M", mgmt}, extra...)
	return startSwitchArgs(t, which, tmp, dir, mgmt, args)
}

// startSwitchArgs runs a switch with exactly args; dir and mgmt (may be empty) say which
// sockets to wait for.
func startSwitchArgs(t testing.TB, which, tmp, dir, mgmt string, args []string) *Switch {
	t.Helper()
	requireRoot(t)
	return runSwitch(t, which, tmp, dir, mgmt, switchBin(t, which), args)
}

// runSwitch starts `name args...` as a switch of implementation which, waits for its
// sockets as startSwitchArgs says, and closes its management session at cleanup. name is
// the switch binary, or a wrapper such as ip for startSwitchInNetns: both share the
// start-up checks.
func runSwitch(t testing.TB, which, tmp, dir, mgmt, name string, args []string) *Switch {
	t.Helper()
	sw := &Switch{Impl: which, Dir: dir, Mgmt: mgmt, Tmp: tmp}
	sw.Proc = startProc(t, name, args...)
	sw.Proc.Name = "vde_switch(" + which + ")"
	waitFor(t, startTimeout, sw.Proc.Name+" to accept connections", func() (bool, string) {
		if sw.Proc.Exited() {
			sw.Proc.log(t)
			t.Fatalf("%s exited during start-up: %v", sw.Proc.Name, sw.Proc.waitErr)
		}
		if err := probeSocket(filepath.Join(dir, "ctl")); err != nil {
			return false, err.Error()
		}
		if mgmt != "" {
			if err := probeSocket(mgmt); err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	})
	t.Cleanup(func() {
		sw.mu.Lock()
		if sw.session != nil {
			sw.session.Close()
		}
		sw.mu.Unlock()
	})
	return sw
}

// probeSocket connects to a stream socket and hangs up.
func probeSocket(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// Cmd runs one management command on the switch's shared session and returns the raw
// response (up to and including the prompt).
func (sw *Switch) Cmd(t testing.TB, cmd string) string {
	t.Helper()
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.session == nil {
		sw.session = dialMgmt(t, sw.Mgmt)
	}
	return sw.session.Do(t, cmd)
}

// MustCmd runs cmd and fails the test unless it ends in 1000 Success; it returns the data
// lines.
func (sw *Switch) MustCmd(t testing.TB, cmd string) []string {
	t.Helper()
	raw := sw.Cmd(t, cmd)
	r := parseResponse(raw)
	if r.Code != 1000 {
		t.Fatalf("%s: %q: want 1000 Success, got %q", sw.Proc.Name, cmd, raw)
	}
	return r.Data
}

// WaitCmd polls cmd until its raw response contains want.
func (sw *Switch) WaitCmd(t testing.TB, cmd, want string) string {
	t.Helper()
	var raw string
	waitFor(t, startTimeout, fmt.Sprintf("%q to show %q", cmd, want), func() (bool, string) {
		raw = sw.Cmd(t, cmd)
		return strings.Contains(raw, want), raw
	})
	return raw
}

// --- management sessions -----------------------------------------------------------------

// prompt ends every management response.
const prompt = "\nvde$ "

// endOfSession is what logout and shutdown answer (no newline, no prompt).
const endOfSession = "9999 END OF SESSION"

// Mgmt is one session on a switch's -M socket.
type Mgmt struct {
	conn *net.UnixConn
	// Banner is everything the switch sent before its first prompt.
	Banner string
	buf    []byte
	eof    bool
}

// dialMgmt connects to a management socket and reads the banner up to the first prompt.
func dialMgmt(t testing.TB, path string) *Mgmt {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("mgmt %s: %v", path, err)
	}
	m := &Mgmt{conn: c}
	t.Cleanup(func() { c.Close() })
	raw, err := m.read(func(b []byte) bool { return bytes.Contains(b, []byte(prompt)) })
	if err != nil {
		t.Fatalf("mgmt %s: banner: %v (got %q)", path, err, raw)
	}
	m.Banner = strings.TrimSuffix(raw, prompt)
	return m
}

// Do sends cmd plus "\n" in one write and returns the raw response: an optional data
// block, a status line and the prompt, or just the prompt for empty and comment lines.
func (m *Mgmt) Do(t testing.TB, cmd string) string {
	t.Helper()
	raw, err := m.DoRaw([]byte(cmd + "\n"))
	if err != nil {
		t.Fatalf("mgmt %q: %v (got %q)", cmd, err, raw)
	}
	return raw
}

// DoRaw writes b as is and reads one response.
func (m *Mgmt) DoRaw(b []byte) (string, error) {
	if _, err := m.conn.Write(b); err != nil {
		return "", err
	}
	return m.read(responseComplete)
}

// Close ends the session without logout.
func (m *Mgmt) Close() error { return m.conn.Close() }

// read reads until done(buffered bytes) or EOF, and consumes what it returns.
func (m *Mgmt) read(done func([]byte) bool) (string, error) {
	m.conn.SetReadDeadline(time.Now().Add(mgmtTimeout))
	var chunk [4096]byte
	for {
		if n := completeLen(m.buf, done); n > 0 {
			out := string(m.buf[:n])
			m.buf = m.buf[n:]
			return out, nil
		}
		if m.eof {
			out := string(m.buf)
			m.buf = nil
			if out == "" {
				return "", io.EOF
			}
			return out, nil
		}
		n, err := m.conn.Read(chunk[:])
		m.buf = append(m.buf, chunk[:n]...)
		if errors.Is(err, io.EOF) {
			m.eof = true
		} else if err != nil {
			return string(m.buf), err
		}
	}
}

// completeLen finds the shortest prefix of b up to a prompt for which done holds.
func completeLen(b []byte, done func([]byte) bool) int {
	off := 0
	for {
		i := bytes.Index(b[off:], []byte(prompt))
		if i < 0 {
			return 0
		}
		end := off + i + len(prompt)
		if done(b[:end]) {
			return end
		}
		off = end
	}
}

var statusLine = regexp.MustCompile(`(?m)^1\d{3} [^\n]*\n$`)

// responseComplete: b ends in the prompt and is either only the prompt, or has a status
// line right before it.
func responseComplete(b []byte) bool {
	if !bytes.HasSuffix(b, []byte(prompt)) {
		return false
	}
	body := b[:len(b)-len(prompt)]
	if len(body) == 0 {
		return true
	}
	i := bytes.LastIndexByte(body[:len(body)-1], '\n')
	return statusLine.Match(body[i+1:])
}

// response is a parsed management response.
type response struct {
	HasData bool     // the "0000 DATA END WITH '.'" block was there
	Data    []string // its lines, without the final "."
	Code    int      // 1000 for success, 1000+errno on failure, 9999 at end of session, 0 if none
	Status  string   // the status line without its newline
}

func parseResponse(raw string) response {
	var r response
	body := strings.TrimSuffix(raw, prompt)
	if strings.HasPrefix(body, endOfSession) {
		r.Code, r.Status = 9999, endOfSession
		return r
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) > 0 && lines[0] == "0000 DATA END WITH '.'" {
		r.HasData = true
		lines = lines[1:]
		for len(lines) > 0 && lines[0] != "." {
			r.Data = append(r.Data, lines[0])
			lines = lines[1:]
		}
		if len(lines) > 0 {
			lines = lines[1:]
		}
	}
	if len(lines) > 0 {
		r.Status = lines[len(lines)-1]
		if len(r.Status) >= 4 {
			r.Code, _ = strconv.Atoi(r.Status[:4])
		}
	}
	return r
}

// --- network namespaces and TAPs ---------------------------------------------------------

// newNetns creates a network namespace with lo up; it is deleted at cleanup (register it
// before the processes that run inside, so they are stopped first).
func newNetns(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	requireTools(t, "ip")
	name := "vdeitest-" + uniqueSuffix()
	if out, err := tryRun("ip", "netns", "add", name); err != nil {
		t.Skipf("needs network namespaces: ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := tryRun("ip", "netns", "del", name); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// nsRun runs a command inside a namespace and fails the test on error.
func nsRun(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// tapHost is a TAP device in its own namespace, joined to a switch port by Debian's
// `vde_plug vde://CTL[port] tap://TAP`.
type tapHost struct {
	NS   string
	Tap  string
	Addr string // IPv4 address without prefix, if one was set
	Plug *Proc
}

// plugTap creates a namespace, runs vde_plug there joining the switch (on port, or any port
// if 0) to a new TAP, waits for the TAP and the switch endpoint, and if cidr is not empty
// sets it on the TAP and brings the link up.
func plugTap(t testing.TB, sw *Switch, port int, cidr string) *tapHost {
	t.Helper()
	requireTools(t, "vde_plug")
	return plugTapWith(t, "vde_plug", sw, port, cidr)
}

// plugTapWith is plugTap with another vde_plug binary (ours, say).
func plugTapWith(t testing.TB, plug string, sw *Switch, port int, cidr string) *tapHost {
	t.Helper()
	url := "vde://" + sw.Dir
	if port > 0 {
		url += fmt.Sprintf("[%d]", port)
	}
	return plugTapURL(t, plug, nil, sw, url, cidr)
}

// plugTapURL is plugTapWith with the plug's options (before the URLs) and its switch URL.
func plugTapURL(t testing.TB, plug string, opts []string, sw *Switch, url, cidr string) *tapHost {
	t.Helper()
	requireTun(t)
	h := &tapHost{NS: newNetns(t), Tap: tapName()}
	argv := append(append([]string{"netns", "exec", h.NS, plug}, opts...), url, "tap://"+h.Tap)
	h.Plug = startProc(t, "ip", argv...)
	h.Plug.Name = "vde_plug(" + h.Tap + ")"
	waitFor(t, startTimeout, "TAP "+h.Tap+" in "+h.NS, func() (bool, string) {
		if h.Plug.Exited() {
			h.Plug.log(t)
			t.Fatalf("%s exited: %v", h.Plug.Name, h.Plug.waitErr)
		}
		out, err := tryRun("ip", "-n", h.NS, "link", "show", h.Tap)
		return err == nil, out
	})
	waitPlugged(t, sw, h.Plug.PID())
	if cidr != "" {
		h.Addr, _, _ = strings.Cut(cidr, "/")
		run(t, "ip", "-n", h.NS, "addr", "add", cidr, "dev", h.Tap)
		run(t, "ip", "-n", h.NS, "link", "set", h.Tap, "up")
	}
	return h
}

// waitPlugged waits until the vdeplug4 client with this pid (vde_plug, QEMU) is attached:
// the switch lists it, and the client has finished its handshake, which it shows by
// removing its socket name <ctldir>/.PPPPP-SSSSS. (The switch lists the endpoint before it
// writes the reply; closing the port earlier makes the client fail.)
func waitPlugged(t testing.TB, sw *Switch, pid int) string {
	t.Helper()
	raw := sw.WaitCmd(t, "port/print", fmt.Sprintf(" pid=%d\n", pid))
	waitFor(t, startTimeout, fmt.Sprintf("client %d to finish its handshake", pid), func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(sw.Dir, fmt.Sprintf(".%05d-*", pid)))
		return len(m) == 0, fmt.Sprint(m)
	})
	return raw
}

// waitPing pings addr from ns, one packet at a time, until one answer comes back.
func waitPing(t testing.TB, ns, addr string) {
	t.Helper()
	waitFor(t, 20*time.Second, "ping "+addr+" from "+ns, func() (bool, string) {
		out, err := tryRun("ip", "netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "1", addr)
		return err == nil, out
	})
}

// noPing checks that addr does not answer from ns (the ping runs for about 2 s).
func noPing(t testing.TB, ns, addr string) {
	t.Helper()
	out, err := tryRun("ip", "netns", "exec", ns, "ping", "-n", "-c", "2", "-i", "0.5", "-W", "1", addr)
	if err == nil {
		t.Errorf("ping %s from %s answered, want no answer:\n%s", addr, ns, out)
	}
}

// transferTCP copies file src over one TCP connection from host from to host to, where
// it is written to dst (socat on both sides; the listener runs in to's namespace).
func transferTCP(t testing.TB, from, to *tapHost, src, dst string) {
	t.Helper()
	port := fmt.Sprint(20000 + rand.IntN(20000))
	server := startProc(t, "ip", "netns", "exec", to.NS, "socat", "-u",
		"TCP-LISTEN:"+port+",bind="+to.Addr+",reuseaddr", "OPEN:"+dst+",creat,trunc")
	server.Name = "socat-server"
	waitFor(t, 20*time.Second, "socat to connect and send", func() (bool, string) {
		if server.Exited() {
			t.Fatalf("socat server exited early: %v\n%s", server.waitErr, server.Stderr.String())
		}
		out, err := tryRun("ip", "netns", "exec", from.NS, "socat", "-u", "OPEN:"+src, "TCP:"+to.Addr+":"+port)
		if err != nil && strings.Contains(out, "Connection refused") {
			return false, out // not listening yet
		}
		if err != nil {
			t.Fatalf("socat client: %v\n%s", err, out)
		}
		return true, ""
	})
	if err := server.Wait(60 * time.Second); err != nil {
		t.Fatalf("socat server: %v\n%s", err, server.Stderr.String())
	}
}

// iperf3Result is the part of `iperf3 -J` output the tests look at.
type iperf3Result struct {
	End struct {
		SumSent struct {
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
	Raw   string `json:"-"`
}

// runIperf3 runs a one-off iperf3 server on srv and a client with args (e.g. "-n", "20M"
// or "-t", "5") on cli, and returns the client's JSON result. With -n, the receiver's
// byte count may be short of the sender's: iperf3 ends the test when the sender has
// written everything.
func runIperf3(t testing.TB, srv, cli *tapHost, args ...string) iperf3Result {
	t.Helper()
	port := fmt.Sprint(20000 + rand.IntN(20000))
	server := startProc(t, "ip", "netns", "exec", srv.NS, "iperf3", "-s", "-1", "-B", srv.Addr, "-p", port)
	server.Name = "iperf3-server"
	var res iperf3Result
	waitFor(t, 20*time.Second, "iperf3 client to connect", func() (bool, string) {
		if server.Exited() {
			t.Fatalf("iperf3 server exited: %v\n%s", server.waitErr, server.Stdout.String()+server.Stderr.String())
		}
		cargs := append([]string{"netns", "exec", cli.NS, "iperf3", "-c", srv.Addr, "-p", port, "-J", "--connect-timeout", "2000"}, args...)
		out, err := tryRun("ip", cargs...)
		res = iperf3Result{Raw: out}
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil && err == nil {
			t.Fatalf("iperf3 -J output: %v\n%s", jerr, out)
		}
		// iperf3 3.12 -J may exit 0 and report the failure in "error".
		if strings.Contains(res.Error, "unable to connect") || strings.Contains(out, "Connection refused") {
			return false, out // server not listening yet
		}
		if err != nil || res.Error != "" {
			t.Fatalf("iperf3 client: %v %s\n%s", err, res.Error, out)
		}
		return true, ""
	})
	if err := server.Wait(20 * time.Second); err != nil {
		t.Errorf("iperf3 server: %v", err)
	}
	return res
}

// --- wire peers --------------------------------------------------------------------------

// testEtherType marks the frames the tests send (IEEE 802 local experimental).
const testEtherType = 0x88b5

// peer is an in-process switch client (switchcore/wire) with a reader goroutine.
type peer struct {
	Name string
	Conn *wire.Conn
	MAC  net.HardwareAddr
	rx   chan []byte
	ep   wire.Endpoint // what readLoop and send use instead of Conn (newPeer)
}

// newPeer is a peer on any endpoint (a plug's stdio stream, say); ep is closed at cleanup.
func newPeer(t testing.TB, name string, n int, ep wire.Endpoint) *peer {
	p := &peer{Name: name, MAC: peerMAC(n), rx: make(chan []byte, 1024), ep: ep}
	t.Cleanup(func() { ep.Close() })
	go p.readLoop()
	return p
}

// dialPeer connects to sw with o and starts reading; n numbers the peer and picks its
// MAC 02:00:00:00:00:n. The connection is closed at cleanup.
func dialPeer(t testing.TB, sw *Switch, n int, o wire.DialOptions) *peer {
	t.Helper()
	if o.Description == "" {
		o.Description = fmt.Sprintf("itest-peer-%d", n)
		o.RawDescription = true
	}
	c, err := wire.Dial(sw.Dir, o)
	if err != nil {
		t.Fatalf("peer %d: %v", n, err)
	}
	p := &peer{Name: fmt.Sprintf("peer%d", n), Conn: c, MAC: peerMAC(n), rx: make(chan []byte, 1024)}
	t.Cleanup(func() { c.Close() })
	go p.readLoop()
	return p
}

func (p *peer) endpoint() wire.Endpoint {
	if p.ep != nil {
		return p.ep
	}
	return p.Conn
}

func peerMAC(n int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, byte(n)} }

func (p *peer) readLoop() {
	frames := make([][]byte, 8)
	for i := range frames {
		frames[i] = make([]byte, wire.MaxFrame)
	}
	sizes := make([]int, len(frames))
	defer close(p.rx)
	for {
		n, err := p.endpoint().ReadBatch(frames, sizes)
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			select {
			case p.rx <- bytes.Clone(frames[i][:sizes[i]]):
			default: // the test is not reading; drop like a full socket would
			}
		}
	}
}

// send sends frames, retrying briefly if the switch's queue is full.
func (p *peer) send(t testing.TB, frames ...[]byte) {
	t.Helper()
	deadline := time.Now().Add(recvTimeout)
	for len(frames) > 0 {
		n, err := p.endpoint().WriteBatch(frames)
		if err != nil {
			t.Fatalf("%s: send: %v", p.Name, err)
		}
		frames = frames[n:]
		if n == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: switch does not take frames", p.Name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// recv waits for a frame containing tag and returns it, discarding frames without it.
func (p *peer) recv(t testing.TB, tag string) []byte {
	t.Helper()
	f, ok := p.tryRecv(tag, recvTimeout)
	if !ok {
		t.Fatalf("%s: no frame with %q within %v", p.Name, tag, recvTimeout)
	}
	return f
}

func (p *peer) tryRecv(tag string, timeout time.Duration) ([]byte, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-p.rx:
			if !ok {
				return nil, false
			}
			if bytes.Contains(f, []byte(tag)) {
				return f, true
			}
		case <-timer.C:
			return nil, false
		}
	}
}

// recvAll waits for one frame with each tag, in any order: frames from different source
// ports may overtake each other (each port has its own reader), even a reply its cause.
func (p *peer) recvAll(t testing.TB, tags ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, tag := range tags {
		want[tag] = true
	}
	timer := time.NewTimer(recvTimeout)
	defer timer.Stop()
	for len(want) > 0 {
		select {
		case f, ok := <-p.rx:
			if !ok {
				t.Fatalf("%s: connection closed, still waiting for %q", p.Name, slices.Collect(maps.Keys(want)))
			}
			for tag := range want {
				if bytes.Contains(f, []byte(tag)) {
					delete(want, tag)
				}
			}
		case <-timer.C:
			t.Fatalf("%s: no frames with %q within %v", p.Name, slices.Collect(maps.Keys(want)), recvTimeout)
		}
	}
}

// recvNone checks that no frame containing tag arrives within the quiet period.
func (p *peer) recvNone(t testing.TB, tag string) {
	t.Helper()
	if f, ok := p.tryRecv(tag, quietPeriod); ok {
		t.Errorf("%s received a frame with %q it should not have: % x", p.Name, tag, f)
	}
}

// ethFrame is an untagged test frame from src to dst carrying payload.
func ethFrame(dst, src net.HardwareAddr, payload string) []byte {
	f := make([]byte, 0, 14+len(payload))
	f = append(f, dst...)
	f = append(f, src...)
	f = append(f, testEtherType>>8, testEtherType&0xff)
	return append(f, payload...)
}

// vlanFrame is an 802.1Q-tagged test frame (priority 0) on vid.
func vlanFrame(dst, src net.HardwareAddr, vid int, payload string) []byte {
	f := make([]byte, 0, 18+len(payload))
	f = append(f, dst...)
	f = append(f, src...)
	f = append(f, 0x81, 0x00, byte(vid>>8)&0x0f, byte(vid))
	f = append(f, testEtherType>>8, testEtherType&0xff)
	return append(f, payload...)
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// exchange checks that a and b still reach each other: a broadcast each way.
func exchange(t testing.TB, a, b *peer, tag string) {
	t.Helper()
	a.send(t, ethFrame(broadcast, a.MAC, tag+"-a2b"))
	b.recv(t, tag+"-a2b")
	b.send(t, ethFrame(broadcast, b.MAC, tag+"-b2a"))
	a.recv(t, tag+"-b2a")
}

// --- raw control requests ----------------------------------------------------------------

// clientSocket binds a unix datagram socket under dir, as a real client would, and returns
// its path; it is closed and removed at cleanup.
func clientSocket(t testing.TB, dir string) string {
	t.Helper()
	fd, err := wire.SocketDatagram()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf(".itest-%s", uniqueSuffix()))
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		syscall.Close(fd)
		t.Fatalf("bind %s: %v", path, err)
	}
	t.Cleanup(func() {
		syscall.Close(fd)
		os.Remove(path)
	})
	return path
}

// v3Request encodes a request_v3 for the given port, client socket path and description.
func v3Request(t testing.TB, port int, path, descr string) []byte {
	t.Helper()
	b, err := wire.AppendRequest(nil, wire.Request{Type: wire.ReqNewControl, Port: port, Path: path, Description: descr})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawControl connects to <dir>/ctl, writes req in one write (half-closing afterwards if
// halfClose) and reads until the switch closes the stream or wait passes. It returns what
// the switch sent and whether it closed.
func rawControl(t testing.TB, dir string, req []byte, halfClose bool, wait time.Duration) (reply []byte, closed bool) {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: filepath.Join(dir, "ctl"), Net: "unix"})
	if err != nil {
		t.Fatalf("connect %s/ctl: %v", dir, err)
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		// The switch may already have closed; reading tells.
		t.Logf("write request: %v", err)
	}
	if halfClose {
		c.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(wait))
	var buf [512]byte
	for {
		n, err := c.Read(buf[:])
		reply = append(reply, buf[:n]...)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			return reply, false
		default: // EOF, or ECONNRESET if the switch closed with our bytes unread
			return reply, true
		}
	}
}

// --- normalisation of management output --------------------------------------------------

var normalizers = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`V\.[0-9][0-9A-Za-z.+~-]*`), "V.<VERSION>"},
	// The copyright line of the banner is ours to word (a rewrite cannot claim the
	// original authors' notice); tools only need the banner to end before "\nvde$ ".
	{regexp.MustCompile(`(?m)^\(C\) [^\n]*$`), "(C) <COPYRIGHT>"},
	{regexp.MustCompile(`pid[ =]\d+`), "pid <PID>"},
	{regexp.MustCompile(`MAC [0-9a-f]{2}(:[0-9a-f]{2}){5}`), "MAC <MAC>"},
	{regexp.MustCompile(`uptime \d+`), "uptime <N>"},
	{regexp.MustCompile(`age \d+ secs`), "age <N> secs"},
	{regexp.MustCompile(`endpoint ID \d+`), "endpoint ID <FD>"},
}

// normalize removes from management output what legitimately differs between two
// switches: their paths (given as literal replacements), pids, the switch MAC, times,
// version numbers, the banner's copyright line and fd-based endpoint ids.
func normalize(s string, paths map[string]string) string {
	// Longest path first, so that a directory does not eat a path inside it.
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if len(keys[j]) > len(keys[i]) {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	for _, k := range keys {
		if k != "" {
			s = strings.ReplaceAll(s, k, paths[k])
		}
	}
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return s
}

// pathNames maps a switch's paths to placeholders for normalize.
func (sw *Switch) pathNames() map[string]string {
	m := map[string]string{sw.Dir: "<CTLDIR>", sw.Tmp: "<TMP>"}
	if real, err := filepath.EvalSymlinks(sw.Dir); err == nil {
		m[real] = "<CTLDIR>"
	}
	if sw.Mgmt != "" {
		m[sw.Mgmt] = "<MGMT>"
	}
	return m
}

// fileMode stats path and returns its permission bits including setuid/setgid/sticky
// (as chmod(2) takes them) and its group.
func fileMode(t testing.TB, path string) (mode uint32, gid uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Mode & 07777, st.Gid
}

// appletPath is our binary under the name of one of its applets (vde_plug, dpipe, ...):
// a symlink next to the built vde, so that it dispatches on argv[0].
func appletPath(t testing.TB, name string) string {
	t.Helper()
	switchBin(t, implOurs)
	p := filepath.Join(ours.dir, name)
	if err := os.Symlink("vde", p); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatalf("link %s: %v", p, err)
	}
	return p
}
