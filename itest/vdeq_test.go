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

// daemonQEMU starts a frozen (-S) QEMU with one card on sw through vdeq -daemonize and
// returns the daemon's pid; it is killed at cleanup.
func daemonQEMU(t *testing.T, sw *Switch) (pid int) {
	t.Helper()
	requireTools(t, "qemu-system-x86_64")
	pidFile := filepath.Join(t.TempDir(), "qemu.pid")
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
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

func TestVdeqDaemonize(t *testing.T) {
	requireRoot(t)
	sw := startSwitch(t, impl)
	pid := daemonQEMU(t, sw)
	// vdeq has exited; the daemonized QEMU holds the port (its control connection).
	// The pid named is vdeq's, which became QEMU's parent before -daemonize forked.
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
	waitFor(t, 2*time.Second, "the switch to free the port of the daemonized QEMU", func() (bool, string) {
		out := sw.Cmd(t, "port/print")
		return !strings.Contains(out, want), out
	})
}

// fakeQEMU writes a qemu-system-x86_64 script that lists the netdev backends given and
// otherwise records its arguments (and which of its fds are sockets) and exits 3.
func fakeQEMU(t *testing.T, backends string) (bin, record string) {
	t.Helper()
	dir := t.TempDir()
	bin, record = filepath.Join(dir, "qemu-system-x86_64"), filepath.Join(dir, "args")
	script := `#!/bin/sh
if [ "$1" = -netdev ] && [ "$2" = help ]; then printf 'Available netdev backend types:\n` + backends + `'; exit 0; fi
for a in "$@"; do echo "$a"; done > ` + record + `
for fd in /proc/$$/fd/*; do [ -S "$fd" ] && echo "socket ${fd##*/}"; done >> ` + record + `
exit 3
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, record
}

func TestVdeqBackends(t *testing.T) {
	requireRoot(t)
	sw := startSwitch(t, impl)
	args := []string{"-net", "nic,vlan=1,macaddr=52:54:00:12:06:00", "-net", "vde,vlan=1,sock=" + sw.Dir + ",port=4", "-m", "64"}
	t.Run("dgram: the connected socket is inherited", func(t *testing.T) {
		bin, record := fakeQEMU(t, `socket\ndgram\nvde\n`)
		_, errs, code := vdeqRun(t, append([]string{bin}, args...)...)
		if code != 3 {
			t.Fatalf("exit %d (stderr %q), want the fake QEMU's 3", code, errs)
		}
		b, _ := os.ReadFile(record)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) < 6 || lines[0] != "-netdev" || !strings.HasPrefix(lines[1], "dgram,id=vde0,local.type=fd,local.str=") ||
			lines[2] != "-device" || lines[3] != "e1000,mac=52:54:00:12:06:00,netdev=vde0" || lines[4] != "-m" || lines[5] != "64" {
			t.Fatalf("QEMU got %q", lines)
		}
		fd := strings.TrimPrefix(lines[1], "dgram,id=vde0,local.type=fd,local.str=")
		sockets := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "socket ") {
				sockets++
				if l == "socket "+fd {
					sockets += 100
				}
			}
		}
		if sockets < 102 { // the data socket named on the command line, and the control stream
			t.Errorf("QEMU's sockets: %q; want fd %s and the control connection", lines, fd)
		}
	})
	t.Run("no dgram: -netdev vde", func(t *testing.T) {
		bin, record := fakeQEMU(t, `socket\nvde\n`)
		_, errs, code := vdeqRun(t, append([]string{bin}, args...)...)
		if code != 3 {
			t.Fatalf("exit %d (stderr %q), want the fake QEMU's 3", code, errs)
		}
		b, _ := os.ReadFile(record)
		got := strings.Join(strings.Fields(string(b)), " ")
		want := "-netdev vde,id=vde0,sock=" + sw.Dir + ",port=4 -device e1000,mac=52:54:00:12:06:00,netdev=vde0 -m 64"
		if got != want {
			t.Errorf("QEMU got %q, want %q", got, want)
		}
	})
}
