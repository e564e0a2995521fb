package ifupdown

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeVdeEnv makes the test binary a fake vde: as vde_switch it records its arguments in
// the file the variable names, says why it fails and exits 1.
const fakeVdeEnv = "IFUPDOWN_TEST_FAKE_VDE"

func TestMain(m *testing.M) {
	if log := os.Getenv(fakeVdeEnv); log != "" {
		f, _ := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		fmt.Fprintln(f, strings.Join(os.Args, " "))
		f.Close()
		fmt.Fprintf(os.Stderr, "%s: unrecognized option '--bad'\n", filepath.Base(os.Args[0]))
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// named starts sleep with argv[0] name: a stand-in for a daemon of ours.
func named(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	cmd := &exec.Cmd{Path: sleep, Args: []string{name, "60"}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	// Until the child has exec'd, /proc shows the test binary's name.
	for deadline := time.Now().Add(5 * time.Second); procName(cmd.Process.Pid) != name; {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) never showed its name", name, cmd.Process.Pid)
		}
		time.Sleep(time.Millisecond)
	}
	return cmd
}

func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

func TestIfupPidFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.pid")
	live := named(t, "dpipe")
	writePid(p, live.Process.Pid)
	if pid, ok := livePid(p, dpipeNames); !ok || pid != live.Process.Pid {
		t.Errorf("livePid of a running dpipe = %d, %v; want %d, true", pid, ok, live.Process.Pid)
	}
	if _, ok := livePid(p, switchNames); ok {
		t.Error("a dpipe passed for a vde_switch (pid reused by another program)")
	}
	if removeStale(p, dpipeNames) {
		t.Error("removeStale removed the pid file of a live process")
	}
	if !removeStale(p, switchNames) {
		t.Error("removeStale kept a pid file naming another program")
	}
	for _, content := range []string{"999999999\n", "", "garbage"} {
		os.WriteFile(p, []byte(content), 0o644)
		if !removeStale(p, switchNames) || exists(p) {
			t.Errorf("pid file %q: not removed as stale", content)
		}
	}
}

func TestIfupStopByPidFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sw.pid")
	if existed, err := stopByPidFile(p, switchNames, time.Second); existed || err != nil {
		t.Errorf("no pid file: %v, %v; want false, nil", existed, err)
	}
	sw := named(t, "vde_switch")
	writePid(p, sw.Process.Pid)
	existed, err := stopByPidFile(p, switchNames, 5*time.Second)
	if !existed || err != nil {
		t.Errorf("stopByPidFile = %v, %v; want true, nil", existed, err)
	}
	if !gone(sw.Process.Pid) {
		t.Errorf("pid %d still runs", sw.Process.Pid)
	}
	if exists(p) {
		t.Error("pid file left")
	}
}

// TestIfupDown: ifdown stops the three tools by their pid files and removes the pid
// files, the control directory with what is next to it, and the management socket.
func TestIfupDown(t *testing.T) {
	dir := t.TempDir()
	p := PathsFor(dir, "vde0")
	procs := map[string]*exec.Cmd{
		p.SwitchPid: named(t, "vde_switch"),
		p.SlirpPid:  named(t, "slirpvde"),
		p.PlugPid:   named(t, "dpipe"),
	}
	for f, c := range procs {
		writePid(f, c.Process.Pid)
	}
	os.Mkdir(p.Ctl, 0o770)
	os.WriteFile(filepath.Join(p.Ctl, "ctl"), nil, 0o660)
	os.WriteFile(p.Ctl+".old", nil, 0o660)
	ln, err := net.Listen("unix", p.Mgmt)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	other := filepath.Join(dir, "vde1.ctl")
	os.Mkdir(other, 0o770)

	e := Env{Iface: "vde0", Mode: "stop", Phase: "post-down", Switch: "-"}
	if err := Run(e, Config{RunDir: dir}); err != nil {
		t.Fatalf("Run(down): %v", err)
	}
	for f, c := range procs {
		if !gone(c.Process.Pid) {
			t.Errorf("%s: pid %d still runs", f, c.Process.Pid)
		}
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 || left[0].Name() != "vde1.ctl" {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("run dir after down: %q, want only vde1.ctl (another interface's)", names)
	}
}

// TestIfupSwitchFails: a switch that does not start makes the hook fail with the
// switch's words on stderr, and leaves no file behind.
func TestIfupSwitchFails(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "calls")
	t.Setenv(fakeVdeEnv, log)
	// A pid file left by a crash, naming a process that is gone.
	p := PathsFor(dir, "bad0")
	writePid(p.SwitchPid, 999999999)
	var stderr bytes.Buffer
	e := Env{Iface: "bad0", Method: "manual", Mode: "start", Phase: "pre-up", Switch: "--bad", Slirp: "-dhcp"}
	err = Run(e, Config{RunDir: dir, Vde: exe, Stderr: &stderr})
	if err == nil || !strings.Contains(err.Error(), "vde2-switch") {
		t.Errorf("Run(up) = %v, want a vde2-switch failure", err)
	}
	if !strings.Contains(stderr.String(), "vde_switch: unrecognized option '--bad'") {
		t.Errorf("stderr %q lacks the switch's message", stderr.String())
	}
	calls, _ := os.ReadFile(log)
	if want := "vde_switch " + strings.Join(SwitchArgs(e, Config{RunDir: dir}), " ") + "\n"; string(calls) != want {
		t.Errorf("calls:\n%s\nwant only the switch:\n%s", calls, want)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("run dir not empty after a failed start: %v", left)
	}
}

// TestIfupAlreadyUp: a second ifup of a running interface starts nothing.
func TestIfupAlreadyUp(t *testing.T) {
	dir := t.TempDir()
	exe, _ := os.Executable()
	log := filepath.Join(t.TempDir(), "calls")
	t.Setenv(fakeVdeEnv, log)
	p := PathsFor(dir, "vde0")
	writePid(p.SwitchPid, named(t, "vde_switch").Process.Pid)
	writePid(p.SlirpPid, named(t, "slirpvde").Process.Pid)
	writePid(p.PlugPid, named(t, "dpipe").Process.Pid)
	e := Env{Iface: "vde0", Method: "manual", Mode: "start", Phase: "pre-up", Switch: "-", Slirp: "-dhcp", Plug: "vde_plug /x"}
	if err := Run(e, Config{RunDir: dir, Vde: exe}); err != nil {
		t.Errorf("Run(up) again: %v", err)
	}
	if calls, err := os.ReadFile(log); err == nil {
		t.Errorf("tools started although all run:\n%s", calls)
	}
}

func TestIfupBadIface(t *testing.T) {
	for _, a := range []string{"pre-up", "post-down"} {
		mode := map[string]string{"pre-up": "start", "post-down": "stop"}[a]
		e := Env{Iface: "../../etc", Mode: mode, Phase: a, Switch: "-"}
		if err := Run(e, Config{RunDir: t.TempDir(), Vde: "/nonexistent"}); err == nil {
			t.Errorf("%s with IFACE %q: no error", a, e.Iface)
		}
	}
}
