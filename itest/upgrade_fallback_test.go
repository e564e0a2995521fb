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

// buildSwitchVariant builds our binary from the source tree src (".." is this one) with
// version string version and the extra -ldflags (-X seams), with a vde_switch symlink
// beside it, and returns the symlink's path.
func buildSwitchVariant(t *testing.T, src, version string, ldflags ...string) string {
	t.Helper()
	dir := testDir(t)
	bin := filepath.Join(dir, "vde")
	flags := strings.Join(append([]string{"-X github.com/vde-go/vde/applets.Version=" + version}, ldflags...), " ")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", flags, "-o", bin, ".")
	build.Dir = src
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

// wayBack upgrades r's switch from the console to bin (version newVersion), which passes
// the check but cannot restore the state, and checks that the switch went back to the
// binary it ran: the asker got its answer and the goodbye, the log says why (want), the
// pid and showinfo's version are the old ones, port/print shows the same endpoints, a and b
// exchange frames both ways without reconnecting, the plugins answer as before and go on
// with the same files, and the process holds no descriptor more than before.
func wayBack(t *testing.T, r *pluginRig, bin, newVersion, want string) {
	t.Helper()
	sw := r.sw
	pid := sw.Proc.PID()
	both := func(tag string) {
		t.Helper()
		for _, p := range [][2]*peer{{r.a, r.b}, {r.b, r.a}} {
			tg := fmt.Sprintf("%s %s->%s", tag, p[0].Name, p[1].Name)
			p[0].send(t, ethFrame(p[1].MAC, p[0].MAC, tg))
			p[1].recv(t, tg)
		}
	}
	both("first")
	r.send(t, "10.0.22.1", "before")
	oldVersion := switchVersion(t, sw)
	ports, fds, views := portsWithoutCounters(t, sw), procFDs(t, pid), r.views(t)

	m := dialMgmt(t, sw.Mgmt)
	// The exec happens: the asker gets its answer, then the goodbye, then EOF.
	raw, _ := m.DoRaw([]byte("upgrade " + bin + "\n"))
	if want := "1000 Success\n" + endOfSession + "\n"; raw != want {
		sw.Proc.log(t)
		t.Fatalf("upgrade %s: %q, want %q", bin, raw, want)
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
	why := "upgrade: version " + newVersion + " cannot restore the switch: " + want + "; going back to the previous binary"
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
	r.check(t, "after going back", views, "10.0.22.2", "back from "+newVersion)
	waitFor(t, startTimeout, fmt.Sprintf("at most %d descriptors", fds), func() (bool, string) {
		n := procFDs(t, pid)
		return n <= fds, fmt.Sprintf("%d open: %s", n, fdList(pid))
	})
	t.Logf("the switch's log:\n%s", sw.Proc.Stderr.String())
}

// upgradeBySignal sends the switch SIGUSR2 and waits until its log says that an image
// served the handed-over switch for the n-th time; the exec ended the shared mgmt
// session, which is forgotten.
func upgradeBySignal(t *testing.T, sw *Switch, n int) {
	t.Helper()
	if err := syscall.Kill(sw.Proc.PID(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, startTimeout, fmt.Sprintf("upgrade %d served", n), func() (bool, string) {
		if sw.Proc.Exited() {
			sw.Proc.log(t)
			t.Fatalf("the switch exited: %v", sw.Proc.waitErr)
		}
		log := sw.Proc.Stderr.String()
		return strings.Count(log, "serves the handed-over switch") >= n, log
	})
	forgetSession(sw)
}

// TestUpgradeFallBack: the console's upgrade goes to a binary that passes the check (its
// --version says it reads this switch's state version) but whose Restore refuses the
// state (built with the switchcore.refuseRestore seam, as a real binary that fails there
// would): the exec has happened, so the new image goes back to the previous binary
// (VDE_HANDOVER_PREV) with the same state and descriptors, and the switch serves on as
// before (wayBack). A plain SIGUSR2 upgrade then still works: the switch that came back
// can be upgraded again.
func TestUpgradeFallBack(t *testing.T) {
	oursOnly(t, "Debian's switch has no upgrade command")
	const reason = "TestUpgradeFallBack wants the way back"
	refusing := buildSwitchVariant(t, "..", "9.9.9-refuses", "-X 'github.com/vde-go/vde/switchcore.refuseRestore="+reason+"'")
	r := startPluginRig(t)
	wayBack(t, r, refusing, "9.9.9-refuses", "restore: this build refuses every handed-over state (test seam switchcore.refuseRestore): "+reason)

	sw, pid, ports := r.sw, r.sw.Proc.PID(), portsWithoutCounters(t, r.sw)
	upgradeBySignal(t, sw, 2) // the first served on the way back
	if got := portsWithoutCounters(t, sw); got != ports {
		t.Fatalf("port/print after the next upgrade:\n%s\nbefore:\n%s", got, ports)
	}
	if sw.Proc.PID() != pid {
		t.Fatalf("pid %d after the next upgrade, was %d", sw.Proc.PID(), pid)
	}
	tag := "upgraded after going back"
	r.a.send(t, ethFrame(r.b.MAC, r.a.MAC, tag))
	r.b.recv(t, tag)
}

// TestUpgradeFallBackOlderDecoder: a downgrade, with plugins loaded, to a vde_switch built
// from the commit before plugins could cross an upgrade. It reads the same state version,
// so it passes the check, but its decoder does not know the plugins' field and refuses
// the state rather than drop them: the switch goes back to the running binary and serves
// on as before (wayBack).
func TestUpgradeFallBackOlderDecoder(t *testing.T) {
	oursOnly(t, "Debian's switch has no upgrade command")
	requireTools(t, "git", "tar")
	// The commit that added the plugins to the state; its parent's decoder lacks them.
	out, err := exec.Command("git", "-C", "..", "log", "--diff-filter=A", "--format=%H", "--", "switchcore/handover/plugins.go").Output()
	added := strings.Fields(string(out))
	if err != nil || len(added) == 0 {
		t.Skipf("no git history to build the binary from before plugins crossed upgrades (git log: %v)", err)
	}
	src := testDir(t)
	archive := exec.Command("sh", "-c", `git -C .. archive "$1" | tar -x -C "$2"`, "sh", added[len(added)-1]+"^", src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("extracting %s^ into %s: %v\n%s", added[len(added)-1], src, err, out)
	}
	older := buildSwitchVariant(t, src, "0.0.1-no-plugins")
	r := startPluginRig(t)
	wayBack(t, r, older, "0.0.1-no-plugins", `restore: inconsistent switch state: json: unknown field "plugins"`)
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
