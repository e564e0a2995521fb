package applets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore"
	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
)

// fakeCoreEnv selects the fake core of a re-executed daemon: "ok" or "fail".
const fakeCoreEnv = "VDE_TEST_FAKE_CORE"

// TestMain turns the test binary into the daemon when SwitchMain re-executes it for -d,
// with a fake core so that no sockets are needed.
func TestMain(m *testing.M) {
	if _, ok := os.LookupEnv(daemonReadyEnv); ok {
		os.Exit(runFakeDaemon())
	}
	os.Exit(m.Run())
}

func runFakeDaemon() int {
	newSwitch = func(cfg switchcore.Config) (switchCore, error) {
		if os.Getenv(fakeCoreEnv) == "fail" {
			return nil, fmt.Errorf("Could not bind to socket '%s/ctl': Address already in use", cfg.CtlDir)
		}
		return newFakeSwitch(), nil
	}
	err := SwitchMain(context.Background(), os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

// fakeSwitch records what the applet asks of the core.
type fakeSwitch struct {
	mu         sync.Mutex
	rc         []string
	consoles   int
	closed     bool
	consoleErr []error // returned by successive Console calls; io.EOF when used up
	done       chan struct{}
	onConsole  func()
	attached   []string // "module descr id" of each AttachEndpoint
	freePorts  int      // AttachEndpoint fails when none are left
}

func newFakeSwitch() *fakeSwitch { return &fakeSwitch{done: make(chan struct{}), freePorts: 31} }

func (f *fakeSwitch) AttachEndpoint(e wire.Endpoint, id int, module, descr string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.freePorts == 0 {
		return 0, errors.New("no free port")
	}
	f.freePorts--
	f.attached = append(f.attached, fmt.Sprintf("%s %s %d", module, descr, id))
	return len(f.attached), nil
}

func (f *fakeSwitch) RunRC(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rc = append(f.rc, path)
	return nil
}

func (f *fakeSwitch) Console(in io.Reader, out, prompt io.Writer) error {
	f.mu.Lock()
	n := f.consoles
	f.consoles++
	hook := f.onConsole
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	io.Copy(io.Discard, in)
	if n < len(f.consoleErr) {
		return f.consoleErr[n]
	}
	return io.EOF
}

func (f *fakeSwitch) Done() <-chan struct{} { return f.done }

func (f *fakeSwitch) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// withFakeCore makes newSwitch return sw (or fail with err) for one test; started is
// closed when the applet has called it, i.e. after its signal handlers are in place.
func withFakeCore(t *testing.T, sw *fakeSwitch, err error) (cfgs *[]switchcore.Config, started chan struct{}) {
	t.Helper()
	old := newSwitch
	t.Cleanup(func() { newSwitch = old })
	cfgs = new([]switchcore.Config)
	started = make(chan struct{})
	var once sync.Once
	newSwitch = func(cfg switchcore.Config) (switchCore, error) {
		*cfgs = append(*cfgs, cfg)
		once.Do(func() { close(started) })
		if err != nil {
			return nil, err
		}
		return sw, nil
	}
	t.Setenv("HOME", t.TempDir()) // no ~/.vde2/vde_switch.rc
	oldRC := systemRCFile
	systemRCFile = filepath.Join(t.TempDir(), "none.rc")
	t.Cleanup(func() { systemRCFile = oldRC })
	return cfgs, started
}

type runResult struct {
	err            error
	stdout, stderr string
}

func runSwitchMain(ctx context.Context, args []string, stdin io.Reader) runResult {
	var out bytes.Buffer
	errb := &lockedBuffer{}
	err := SwitchMain(ctx, args, Stdio{In: stdin, Out: &out, Err: errb})
	return runResult{err, out.String(), errb.String()}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func exitCodeOf(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return -1
}

func TestSwitchConsoleEOF(t *testing.T) {
	sw := newFakeSwitch()
	pid := filepath.Join(t.TempDir(), "sw.pid")
	var pidDuringRun string
	sw.onConsole = func() { b, _ := os.ReadFile(pid); pidDuringRun = string(b) }
	cfgs, _ := withFakeCore(t, sw, nil)

	r := runSwitchMain(context.Background(), []string{"-s", "/x", "-p", pid, "--hashsize", "100"}, strings.NewReader("showinfo\n"))
	if r.err != nil {
		t.Fatalf("SwitchMain: %v (stderr %q)", r.err, r.stderr)
	}
	want := "vde_switch: Hash size must be a power of 2. 100 rounded to 128\n" +
		"vde_switch: EOF on stdin, cleaning up and exiting\n"
	if r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if pidDuringRun != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("pid file held %q while running, want our pid", pidDuringRun)
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	if !sw.closed {
		t.Error("switch not closed")
	}
	cfg := (*cfgs)[0]
	if cfg.CtlDir != "/x" || cfg.HashSize != 128 || cfg.Version != Version || cfg.Log == nil {
		t.Errorf("config %+v", cfg)
	}
}

func TestSwitchConsoleShutdownAndLogout(t *testing.T) {
	sw := newFakeSwitch()
	// logout does nothing on the console: a new session starts; shutdown ends.
	sw.consoleErr = []error{nil, switchcore.ErrShutdown}
	withFakeCore(t, sw, nil)
	r := runSwitchMain(context.Background(), nil, strings.NewReader(""))
	if r.err != nil {
		t.Fatalf("SwitchMain: %v", r.err)
	}
	if sw.consoles != 2 {
		t.Errorf("%d console sessions, want 2", sw.consoles)
	}
	if r.stderr != "vde_switch: Shutdown from mgmt command\n" {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestSwitchNoStdinWaitsForContext(t *testing.T) {
	sw := newFakeSwitch()
	withFakeCore(t, sw, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := runSwitchMain(ctx, []string{"--nostdin"}, strings.NewReader(""))
	if r.err != nil || sw.consoles != 0 || !sw.closed {
		t.Errorf("err %v, %d console sessions, closed %v; want nil, 0, true", r.err, sw.consoles, sw.closed)
	}
}

func TestSwitchDoneEndsRun(t *testing.T) {
	sw := newFakeSwitch()
	withFakeCore(t, sw, nil)
	close(sw.done)
	r := runSwitchMain(context.Background(), []string{"-nostdin"}, strings.NewReader(""))
	if r.err != nil || !sw.closed {
		t.Errorf("err %v, closed %v", r.err, sw.closed)
	}
}

func TestSwitchSignals(t *testing.T) {
	sw := newFakeSwitch()
	_, started := withFakeCore(t, sw, nil)
	res := make(chan runResult, 1)
	go func() { res <- runSwitchMain(context.Background(), []string{"--nostdin"}, strings.NewReader("")) }()
	<-started
	// SIGHUP, SIGUSR1 and SIGPIPE must not end the switch.
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGPIPE} {
		syscall.Kill(os.Getpid(), sig)
	}
	select {
	case r := <-res:
		t.Fatalf("switch ended after SIGHUP/SIGUSR1/SIGPIPE: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	r := <-res
	if r.err != nil {
		t.Fatalf("SwitchMain after SIGTERM: %v", r.err)
	}
	if r.stderr != "vde_switch: Caught signal 15, cleaning up and exiting\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	if !sw.closed {
		t.Error("switch not closed")
	}
}

func TestSwitchStartFailure(t *testing.T) {
	withFakeCore(t, nil, errors.New("Could not bind to socket '/x/ctl': Address already in use"))
	pid := filepath.Join(t.TempDir(), "sw.pid")
	r := runSwitchMain(context.Background(), []string{"-p", pid}, strings.NewReader(""))
	if code := exitCodeOf(r.err); code != 255 {
		t.Errorf("exit status %d, want 255", code)
	}
	if r.stderr != "vde_switch: Could not bind to socket '/x/ctl': Address already in use\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Errorf("pid file written for a switch that did not start")
	}
}

func TestSwitchPidFileOfLiveProcess(t *testing.T) {
	sw := newFakeSwitch()
	withFakeCore(t, sw, nil)
	pid := filepath.Join(t.TempDir(), "sw.pid")
	other := fmt.Sprintf("%d\n", os.Getppid()) // alive: it runs us
	os.WriteFile(pid, []byte(other), 0o644)
	r := runSwitchMain(context.Background(), []string{"-p", pid}, strings.NewReader(""))
	wantPidFileRefused(t, r, pid, other)
	if !sw.closed {
		t.Error("switch left running")
	}
}

func TestSwitchRCFile(t *testing.T) {
	sw := newFakeSwitch()
	withFakeCore(t, sw, nil)
	r := runSwitchMain(context.Background(), []string{"-f", "my.rc"}, strings.NewReader(""))
	if r.err != nil || len(sw.rc) != 1 || sw.rc[0] != "my.rc" {
		t.Errorf("err %v, rc files run %q; want my.rc", r.err, sw.rc)
	}
}

func TestRCFilePath(t *testing.T) {
	home := t.TempDir()
	sys := filepath.Join(t.TempDir(), "vde_switch.rc")
	old := systemRCFile
	systemRCFile = sys
	t.Cleanup(func() { systemRCFile = old })
	userRC := filepath.Join(home, ".vde2", "vde_switch.rc")

	if got := rcFilePath("", home); got != "" {
		t.Errorf("no rc files: got %q", got)
	}
	os.WriteFile(sys, nil, 0o644)
	if got := rcFilePath("", home); got != sys {
		t.Errorf("system rc only: got %q, want %q", got, sys)
	}
	os.MkdirAll(filepath.Dir(userRC), 0o755)
	os.WriteFile(userRC, nil, 0o644)
	if got := rcFilePath("", home); got != userRC {
		t.Errorf("user rc present: got %q, want %q", got, userRC)
	}
	if got := rcFilePath("x.rc", home); got != "x.rc" {
		t.Errorf("-f given: got %q", got)
	}
}

func TestWritePidFileReplacesStale(t *testing.T) {
	pid := filepath.Join(t.TempDir(), "sw.pid")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	os.WriteFile(pid, []byte(fmt.Sprintf("%d\n", dead.Process.Pid)), 0o644)
	if err := writePidFile(pid); err != nil {
		t.Fatalf("stale pid file not replaced: %v", err)
	}
	if b, _ := os.ReadFile(pid); string(b) != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("pid file holds %q", b)
	}
	for _, bad := range []string{"", "garbage\n"} {
		os.WriteFile(pid, []byte(bad), 0o644)
		if err := writePidFile(pid); !errors.Is(err, os.ErrExist) {
			t.Errorf("pid file %q: err %v, want it kept (File exists)", bad, err)
		}
	}
	os.WriteFile(pid, []byte("1\n"), 0o644)
	if err := removePidFile(pid); err == nil {
		t.Error("removed a pid file that is not ours")
	}
}

// The daemon tests re-execute the test binary (see TestMain) through the real -d path.

func TestSwitchDaemon(t *testing.T) {
	t.Setenv(fakeCoreEnv, "ok")
	dir := t.TempDir()
	pid := filepath.Join(dir, "sw.pid")
	r := runSwitchMain(context.Background(), []string{"-d", "-s", filepath.Join(dir, "ctl"), "-p", pid, "--hashsize", "100"}, strings.NewReader(""))
	if r.err != nil {
		t.Fatalf("SwitchMain -d: %v (stderr %q)", r.err, r.stderr)
	}
	// Warnings of the daemon's start reach the starting process's stderr.
	if r.stderr != "vde_switch: Hash size must be a power of 2. 100 rounded to 128\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	// The pid file exists when -d returns: it is written before the daemon is ready.
	p, err := readPidFile(pid)
	if err != nil {
		t.Fatal(err)
	}
	if p == os.Getpid() {
		t.Fatal("pid file holds the starting process's pid, not the daemon's")
	}
	if pgid, _ := syscall.Getpgid(p); pgid != p {
		t.Errorf("daemon %d is not the leader of its own session (pgid %d)", p, pgid)
	}
	if err := syscall.Kill(p, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(p, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("daemon ended with %v, want exit status 0", ws)
	}
	if _, err := os.Stat(pid); !os.IsNotExist(err) {
		t.Error("daemon left its pid file behind")
	}
}

func TestSwitchDaemonStartFailure(t *testing.T) {
	t.Setenv(fakeCoreEnv, "fail")
	r := runSwitchMain(context.Background(), []string{"-d", "-s", "/nonexistent/x"}, strings.NewReader(""))
	if code := exitCodeOf(r.err); code != 255 {
		t.Errorf("exit status %d, want 255 (stderr %q)", code, r.stderr)
	}
	if r.stderr != "vde_switch: Could not bind to socket '/nonexistent/x/ctl': Address already in use\n" {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestSwitchDaemonPidFileExists(t *testing.T) {
	t.Setenv(fakeCoreEnv, "ok")
	pid := filepath.Join(t.TempDir(), "sw.pid")
	mine := fmt.Sprintf("%d\n", os.Getpid())
	os.WriteFile(pid, []byte(mine), 0o644)
	r := runSwitchMain(context.Background(), []string{"-d", "-p", pid}, strings.NewReader(""))
	wantPidFileRefused(t, r, pid, mine)
}

// wantPidFileRefused checks how a switch ends when its pid file names a live process, in
// the foreground or with -d: status 1, the C switch's message, and the file untouched
// (still holding was).
func wantPidFileRefused(t *testing.T, r runResult, pid, was string) {
	t.Helper()
	if code := exitCodeOf(r.err); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if r.stderr != "vde_switch: Error in pidfile creation: File exists\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	if b, _ := os.ReadFile(pid); string(b) != was {
		t.Errorf("pid file of a live process now holds %q, was %q", b, was)
	}
}

func TestSwitchDaemonParseErrorsStayInFront(t *testing.T) {
	// Option errors are reported by the starting process; no daemon is started.
	r := runSwitchMain(context.Background(), []string{"-d", "-g", "nosuch"}, strings.NewReader(""))
	if code := exitCodeOf(r.err); code != 1 || r.stderr != "No such group 'nosuch'\n" {
		t.Errorf("exit status %d, stderr %q", code, r.stderr)
	}
}

// fakeTap is a TAP for the -t tests: no device, just a name and a descriptor number.
type fakeTap struct {
	fd     int
	closed bool
}

func (f *fakeTap) ReadBatch([][]byte, []int) (int, error) { return 0, errors.New("fake") }
func (f *fakeTap) WriteBatch(fr [][]byte) (int, error)    { return len(fr), nil }
func (f *fakeTap) Close() error                           { f.closed = true; return nil }
func (f *fakeTap) FD() int                                { return f.fd }

func TestSwitchTaps(t *testing.T) {
	sw := newFakeSwitch()
	sw.freePorts = 2
	withFakeCore(t, sw, nil)
	opened := map[string]*fakeTap{}
	old := openTap
	t.Cleanup(func() { openTap = old })
	openTap = func(name string) (tapPort, error) {
		switch name {
		case "busy0":
			return nil, &tap.Error{Name: name, Op: "TUNSETIFF", Err: syscall.EBUSY}
		case "nodev":
			return nil, &tap.Error{Name: name, Op: "open /dev/net/tun", Err: syscall.ENOENT}
		}
		f := &fakeTap{fd: 10 + len(opened)}
		opened[name] = f
		return f, nil
	}
	r := runSwitchMain(context.Background(), []string{"-t", "tap1", "-t", "busy0", "-t", "nodev", "--tap", "tap0,x", "-t", "tap2"}, strings.NewReader(""))
	if r.err != nil {
		t.Fatalf("SwitchMain: %v (stderr %q)", r.err, r.stderr)
	}
	// One port per -t, in order; failures are logged and skipped, as in C.
	if want := []string{"tuntap tap1 10", "tuntap tap0,x 11"}; fmt.Sprint(sw.attached) != fmt.Sprint(want) {
		t.Errorf("attached %q, want %q", sw.attached, want)
	}
	want := "vde_switch: TUNSETIFF failed Device or resource busy\n" +
		"vde_switch: ERROR OPENING tap interface: busy0\n" +
		"vde_switch: Failed to open /dev/net/tun No such file or directory\n" +
		"vde_switch: ERROR OPENING tap interface: nodev\n" +
		"vde_switch: no free port\n" +
		"vde_switch: ERROR OPENING tap interface: tap2\n" +
		"vde_switch: EOF on stdin, cleaning up and exiting\n"
	if r.stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
	}
	if f := opened["tap2"]; f == nil || !f.closed {
		t.Error("a TAP that found no port was not closed")
	}
	if opened["tap1"].closed {
		t.Error("the switch's TAP was closed by the applet")
	}
}
