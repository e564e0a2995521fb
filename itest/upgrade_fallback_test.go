package itest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// buildSwitchVariant builds our binary with version string version and the extra
// -ldflags (-X seams), with a vde_switch symlink beside it, and returns the symlink's path.
func buildSwitchVariant(t *testing.T, version string, ldflags ...string) string {
	t.Helper()
	dir := testDir(t)
	bin := filepath.Join(dir, "vde")
	flags := strings.Join(append([]string{"-X github.com/vde-go/vde/applets.Version=" + version}, ldflags...), " ")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", flags, "-o", bin, ".")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the %s binary: %v\n%s", version, err, out)
	}
	link := filepath.Join(dir, "vde_switch")
	if err := os.Symlink("vde", link); err != nil {
		t.Fatal(err)
	}
	return link
}

var showinfoVersion = regexp.MustCompile(`VDE switch V\.(\S+)`)

// switchVersion is the version showinfo shows.
func switchVersion(t *testing.T, sw *Switch) string {
	t.Helper()
	info := sw.Cmd(t, "showinfo")
	m := showinfoVersion.FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("showinfo shows no version:\n%s", info)
	}
	return m[1]
}

// forgetSession closes the switch's shared mgmt session (an exec ended it): the next
// command dials afresh.
func forgetSession(sw *Switch) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.session != nil {
		sw.session.Close()
		sw.session = nil
	}
}

// TestUpgradeFallBack: the console's upgrade goes to a binary that passes the check (its
// --version says it reads this switch's state version) but whose Restore refuses the
// state (built with the switchcore.refuseRestore seam, as a real binary that fails there
// would): the exec has happened, so the new image goes back to the previous binary
// (VDE_HANDOVER_PREV) with the same state and descriptors. Afterwards the pid is the
// same, showinfo shows the old version, port/print the same endpoints, two clients that
// never reconnect exchange frames both ways, the log says why it went back, the plugins
// (pdump, iplog, dump) answer as before and go on with the same files, and the process
// holds no descriptor more than before. A plain SIGUSR2 upgrade then still works:
// the switch that came back can be upgraded again.
func TestUpgradeFallBack(t *testing.T) {
	oursOnly(t, "Debian's switch has no upgrade command")
	r := startPluginRig(t)
	sw, a, b := r.sw, r.a, r.b
	pid := sw.Proc.PID()
	both := func(tag string) {
		t.Helper()
		for _, p := range [][2]*peer{{a, b}, {b, a}} {
			tg := fmt.Sprintf("%s %s->%s", tag, p[0].Name, p[1].Name)
			p[0].send(t, ethFrame(p[1].MAC, p[0].MAC, tg))
			p[1].recv(t, tg)
		}
	}
	both("first")
	r.send(t, "10.0.22.1", "before")
	oldVersion := switchVersion(t, sw)
	ports, fds, views := portsWithoutCounters(t, sw), procFDs(t, pid), r.views(t)
	const reason = "TestUpgradeFallBack wants the way back"
	refusing := buildSwitchVariant(t, "9.9.9-refuses", "-X 'github.com/vde-go/vde/switchcore.refuseRestore="+reason+"'")

	m := dialMgmt(t, sw.Mgmt)
	// The exec happens: the asker gets its answer, then the goodbye, then EOF.
	raw, _ := m.DoRaw([]byte("upgrade " + refusing + "\n"))
	if want := "1000 Success\n" + endOfSession + "\n"; raw != want {
		sw.Proc.log(t)
		t.Fatalf("upgrade %s: %q, want %q", refusing, raw, want)
	}
	forgetSession(sw)
	back := fmt.Sprintf("upgrade: version %s serves the handed-over switch", oldVersion)
	waitFor(t, startTimeout, "the previous binary serving again", func() (bool, string) {
		if sw.Proc.Exited() {
			sw.Proc.log(t)
			t.Fatalf("the switch exited: %v", sw.Proc.waitErr)
		}
		log := sw.Proc.Stderr.String()
		_, after, ok := strings.Cut(log, "going back to the previous binary")
		return ok && strings.Contains(after, back), log
	})
	log := sw.Proc.Stderr.String()
	why := "upgrade: version 9.9.9-refuses cannot restore the switch: restore: this build refuses every handed-over state (test seam switchcore.refuseRestore): " + reason + "; going back to the previous binary"
	if !strings.Contains(log, why) {
		t.Fatalf("the log does not say why the switch went back (%q):\n%s", why, log)
	}
	if sw.Proc.PID() != pid {
		t.Fatalf("pid %d, was %d", sw.Proc.PID(), pid)
	}
	if v := switchVersion(t, sw); v != oldVersion {
		t.Fatalf("showinfo shows version %s after going back, want the old %s", v, oldVersion)
	}
	if got := portsWithoutCounters(t, sw); got != ports {
		t.Fatalf("port/print after going back:\n%s\nbefore:\n%s", got, ports)
	}
	both("back")
	r.check(t, "after going back", views, "10.0.22.2", "back from 9.9.9")
	waitFor(t, startTimeout, fmt.Sprintf("at most %d descriptors", fds), func() (bool, string) {
		n := procFDs(t, pid)
		return n <= fds, fmt.Sprintf("%d open: %s", n, fdList(pid))
	})

	// The switch that came back upgrades again.
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, startTimeout, "the upgrade after going back", func() (bool, string) {
		log := sw.Proc.Stderr.String()
		return strings.Count(log, "serves the handed-over switch") == 2, log
	})
	forgetSession(sw)
	both("upgraded after going back")
	if got := portsWithoutCounters(t, sw); got != ports {
		t.Fatalf("port/print after the next upgrade:\n%s\nbefore:\n%s", got, ports)
	}
	if sw.Proc.PID() != pid {
		t.Fatalf("pid %d after the next upgrade, was %d", sw.Proc.PID(), pid)
	}
	t.Logf("the switch's log:\n%s", sw.Proc.Stderr.String())
}

// fdList is what a process's descriptors point to, for a failure message.
func fdList(pid int) string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+"->"+l)
	}
	return strings.Join(out, " ")
}

// TestUpgradeRefusedKeepsSessions: an upgrade refused before the exec (here: the binary
// fails the check) leaves every mgmt session working, the asker's and a bystander's: the
// sessions are ended only when the exec is imminent.
func TestUpgradeRefusedKeepsSessions(t *testing.T) {
	oursOnly(t, "Debian's switch has no upgrade command")
	sw := startSwitch(t, implOurs)
	failing := filepath.Join(testDir(t), "fails")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bystander := dialMgmt(t, sw.Mgmt)
	raw := sw.Cmd(t, "upgrade "+failing)
	if r := parseResponse(raw); r.Code == 1000 || strings.Contains(raw, endOfSession) {
		t.Fatalf("upgrade %s: %q, want a refusal and the session on", failing, raw)
	}
	for _, tc := range []struct {
		desc string
		do   func(cmd string) string
	}{{"asker", func(cmd string) string { return sw.Cmd(t, cmd) }}, {"bystander", func(cmd string) string { return bystander.Do(t, cmd) }}} {
		if raw := tc.do("port/showinfo"); parseResponse(raw).Code != 1000 {
			t.Errorf("%s: port/showinfo after the refused upgrade: %q", tc.desc, raw)
		}
	}
}
