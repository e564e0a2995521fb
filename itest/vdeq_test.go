package itest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// vdeq's own behaviour around QEMU: errors before QEMU starts, QEMU's exit status as its
// own, and -daemonize (the guests' traffic is in qemu_guest_test.go).

// vdeqRun runs vdeq with args to completion and returns stdout, stderr and the status.
func vdeqRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(appletPath(t, "vdeq"), args...)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("vdeq %q still running after 60 s", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func TestVdeqErrors(t *testing.T) {
	requireRoot(t)
	requireTools(t, "qemu-system-x86_64")
	sw := startSwitch(t, impl)
	t.Run("unknown -net vde parameter", func(t *testing.T) {
		out, _, code := vdeqRun(t, "qemu-system-x86_64", "-net", "nic", "-net", "vde,sock="+sw.Dir+",frob=1")
		if code != 255 || out != "WARNING: unknown parameter in argument vde,sock="+sw.Dir+",frob=1\n" {
			t.Errorf("exit %d, stdout %q; want 255 and the C tool's warning", code, out)
		}
	})
	t.Run("no switch", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		_, errs, code := vdeqRun(t, "qemu-system-x86_64", "-net", "nic", "-net", "vde,sock="+missing)
		if code != 1 || !strings.HasPrefix(errs, "vdeq: vde switch "+missing+": ") || strings.Count(errs, "\n") != 1 {
			t.Errorf("exit %d, stderr %q; want 1 and one line naming the switch", code, errs)
		}
	})
	t.Run("QEMU's exit status", func(t *testing.T) {
		before := switchPorts(t, sw)
		_, errs, code := vdeqRun(t, "qemu-system-x86_64", "-net", "nic", "-net", "vde,sock="+sw.Dir, "-no-such-option")
		if code != 1 || !strings.Contains(errs, "-no-such-option") {
			t.Errorf("exit %d, stderr %q; want QEMU's 1 and its message", code, errs)
		}
		waitFor(t, 2*time.Second, "the switch to free the port of a QEMU that failed", func() (bool, string) {
			now := switchPorts(t, sw)
			return countEndpoints(now) == countEndpoints(before), sw.Cmd(t, "port/print")
		})
	})
}

func countEndpoints(ports map[int]string) int {
	n := 0
	for _, p := range ports {
		n += strings.Count(p, "-- endpoint")
	}
	return n
}

func TestVdeqDaemonize(t *testing.T) {
	requireRoot(t)
	requireTools(t, "qemu-system-x86_64")
	sw := startSwitch(t, impl)
	pidFile := filepath.Join(t.TempDir(), "qemu.pid")
	// -S: the guest CPU never runs; the machine only has to exist.
	_, errs, code := vdeqRun(t, "qemu", "-machine", "pc,accel=tcg", "-m", "32", "-S", "-display", "none",
		"-nodefaults", "-net", "nic,vlan=1,macaddr=52:54:00:12:05:00,model=e1000", "-net", "vde,vlan=1,sock="+sw.Dir,
		"-daemonize", "-pidfile", pidFile)
	if code != 0 {
		t.Fatalf("vdeq -daemonize: exit %d, stderr %q", code, errs)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// vdeq has exited; the daemonized QEMU holds the port (its control connection).
	want := "vdeqemu user=root pid="
	waitFor(t, startTimeout, "the daemonized QEMU's endpoint", func() (bool, string) {
		out := sw.Cmd(t, "port/print")
		return strings.Contains(out, want), out
	})
	time.Sleep(quietPeriod)
	if out := sw.Cmd(t, "port/print"); !strings.Contains(out, want) {
		t.Fatalf("the port went away while QEMU runs:\n%s", out)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	killed = true
	waitFor(t, 2*time.Second, "the switch to free the port of the daemonized QEMU", func() (bool, string) {
		out := sw.Cmd(t, "port/print")
		return !strings.Contains(out, want), out
	})
}
