package itest

// What `make install` puts beside the binary for users: manual pages, shell completions
// and systemd units, checked with the real man-db, bash, zsh and systemd-analyze. The
// test re-runs itself in a private mount namespace (as the ifupdown tests do), where
// /usr/local, /etc and /var/lib/dpkg are overlays, so the real `make install` and
// `make uninstall` run without reaching the real system.

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// installedNames are vde and every link to it that make install put in /usr/local/bin.
func installedNames(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/usr/local/bin")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"vde"}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/usr/local/bin", e.Name())); err == nil && l == "vde" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names[1:])
	if len(names) < 10 {
		t.Fatalf("make install linked only %v to vde", names)
	}
	return names
}

// userEnv is a user's environment after make install: /usr/local/bin first in PATH, no
// MANPATH (man-db derives it from PATH), plain text from man.
func userEnv() []string {
	return append(os.Environ(), "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "MANPATH=",
		"MANWIDTH=200", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C", "MAN_KEEP_FORMATTING=")
}

func runEnv(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // dpipe -h kills its process group
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// realPath is a path that man printed with its links resolved (Debian's /usr/local/man
// is a link to /usr/local/share/man).
func realPath(s string) string {
	p, err := filepath.EvalSymlinks(strings.TrimSpace(s))
	if err != nil {
		return strings.TrimSpace(s)
	}
	return p
}

// helpOption finds the options a usage text or a page names: -x, --long, -long.
var helpOption = regexp.MustCompile(`(?:^|[\s\[|,(])(--?[A-Za-z0-9][A-Za-z0-9-]*)`)

func TestInstallDocs(t *testing.T) {
	requireRoot(t)
	requireTools(t, "make", "unshare", "man", "useradd")
	if os.Getenv(ifupdownInsideEnv) == "" {
		reRunInside(t)
		return
	}
	setupMounts(t)
	makeInstall(t)
	env := userEnv()
	names := installedNames(t)

	t.Run("man", func(t *testing.T) {
		for _, n := range append(names, "vde_plug_url") {
			where, err := runEnv(env, "man", "-w", n)
			if err != nil || !strings.HasPrefix(realPath(where), "/usr/local/share/man/") {
				t.Errorf("man -w %s = %q, %v; want our page under /usr/local/share/man", n, where, err)
				continue
			}
			page, err := runEnv(env, "man", "-E", "ascii", n)
			if err != nil {
				t.Errorf("man %s: %v\n%s", n, err, page)
				continue
			}
			if n == "vde_plug_url" || strings.HasPrefix(n, "vdeq") && n != "vdeq" {
				continue // no --help of its own (vdeqemu --help is QEMU's)
			}
			help, _ := runEnv(env, n, "--help")
			have := map[string]bool{}
			for _, m := range helpOption.FindAllStringSubmatch(page, -1) {
				have[m[1]] = true
			}
			for _, m := range helpOption.FindAllStringSubmatch(help, -1) {
				if o := m[1]; !have[o] && !have["-"+o] {
					t.Errorf("man %s does not name %s, which %s --help names", n, o, n)
				}
			}
		}
		if where, _ := runEnv(env, "man", "-w", "vde_switch"); realPath(where) != "/usr/local/share/man/man1/vde_switch.1" {
			t.Errorf("man -w vde_switch = %q; want ours", where)
		}
	})

	t.Run("bash", func(t *testing.T) {
		const lib = "/usr/share/bash-completion/bash_completion"
		if _, err := os.Stat(lib); err != nil {
			t.Skip("bash-completion is not installed (Debian: bash-completion)")
		}
		// bash-completion loads completions/vde_switch (a link to our vde) on demand.
		script := `source ` + lib + `
__load_completion vde_switch || { echo "no completion loaded for vde_switch"; exit 1; }
fn=$(complete -p vde_switch | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
c() { COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); $fn; echo "${COMPREPLY[*]}"; }
c vde_switch --numpo
c vde_plug vx
c vde sw
`
		out, err := runEnv(env, "bash", "--norc", "-c", script)
		if want := "--numports\nvxlan:// vxvde://\nswitch\n"; err != nil || out != want {
			t.Errorf("bash completion: %v\n%q\nwant %q", err, out, want)
		}
	})

	t.Run("zsh", func(t *testing.T) {
		requireTools(t, "zsh")
		// An interactive zsh on a pseudo-terminal (zpty), with only the default fpath,
		// where compinit finds _vde; Tab after "vde_switch --numpo" completes the option.
		script := `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='%% '; autoload -Uz compinit; compinit -u -D; print comp=\${_comps[vde_switch]}; print rea''dy"
zpty -r -m z out '*ready*' || { print "zsh did not start"; exit 1 }
print -r -- "$out"
zpty -w -n z $'vde_switch --numpo\t'
sleep 1
out=
while zpty -r -t z chunk; do out+=$chunk; done
print -r -- "$out"
zpty -d z
`
		out, err := runEnv(env, "zsh", "-f", "-c", script)
		if err != nil || !strings.Contains(out, "comp=_vde") || !strings.Contains(out, "vde_switch --numports") {
			t.Errorf("zsh completion: %v\n%s", err, out)
		}
		if out, err := runEnv(env, "zsh", "-n", "/usr/local/share/zsh/site-functions/_vde"); err != nil {
			t.Errorf("zsh -n _vde: %v\n%s", err, out)
		}
	})

	t.Run("systemd", func(t *testing.T) {
		requireTools(t, "systemd-analyze")
		// verify works without systemd as PID 1; it loads the instances from the unit
		// search path, where make install put the templates, and checks ExecStart's
		// program, the dependencies and every directive.
		paths, _ := runEnv(env, "systemd-analyze", "unit-paths")
		if !strings.Contains(paths, "/usr/local/lib/systemd/system\n") {
			t.Fatalf("systemd does not read /usr/local/lib/systemd/system:\n%s", paths)
		}
		out, err := runEnv(env, "systemd-analyze", "verify", "vde-switch@lan.service", "slirpvde@lan.service")
		if err != nil || strings.Contains(out, "vde") {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		unit, _ := os.ReadFile("/usr/local/lib/systemd/system/vde-switch@.service")
		if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/vde_switch ") {
			t.Errorf("vde-switch@.service does not run /usr/local/bin/vde_switch:\n%s", unit)
		}
	})

	t.Run("units-run", func(t *testing.T) {
		// What systemd would run (it is not PID 1 here), run by hand with %i = itest: the
		// switch's ExecStart as root in /run/vde2 (RuntimeDirectory=), slirpvde's as the
		// unit's User=; the router must get a port of the switch.
		execStart := func(unit string) []string {
			b, err := os.ReadFile("/usr/local/lib/systemd/system/" + unit)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
					return strings.Fields(strings.ReplaceAll(v, "%i", "itest"))
				}
			}
			t.Fatalf("%s has no ExecStart", unit)
			return nil
		}
		if err := os.MkdirAll("/run/vde2", 0o755); err != nil {
			t.Fatal(err)
		}
		sw := execStart("vde-switch@.service")
		if out, err := runEnv(env, sw[0], sw[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(sw, " "), err, out)
		}
		t.Cleanup(func() {
			if b, err := os.ReadFile("/run/vde2/itest.pid"); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					syscall.Kill(pid, syscall.SIGTERM)
				}
			}
		})
		for _, f := range []string{"/run/vde2/itest.ctl/ctl", "/run/vde2/itest.mgmt"} {
			var st syscall.Stat_t
			if err := syscall.Stat(f, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK || st.Mode&0o777 != 0o660 {
				t.Errorf("%s: %v, mode %o; want a socket of mode 0660", f, err, st.Mode)
			} else if g, err := user.LookupGroupId(strconv.Itoa(int(st.Gid))); err != nil || g.Name != "vde2-net" {
				t.Errorf("%s: group %d, not vde2-net", f, st.Gid)
			}
		}
		u, err := user.Lookup("vde2-net")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		slirp := execStart("slirpvde@.service")
		startProcOpts(t, procOptions{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, slirp[0], slirp[1:]...)
		waitFor(t, 10*time.Second, "slirpvde (as vde2-net) on the switch's port/print", func() (bool, string) {
			out, _ := runEnv(env, "vdecmd", "-s", "/run/vde2/itest.mgmt", "port/print")
			return strings.Contains(out, "slirpvde: user=vde2-net"), out
		})
	})

	t.Run("uninstall", func(t *testing.T) {
		root, _ := filepath.Abs("..")
		if out, err := runEnv(os.Environ(), "make", "-C", root, "uninstall"); err != nil {
			t.Fatalf("make uninstall: %v\n%s", err, out)
		}
		for _, n := range names {
			if where, err := runEnv(env, "man", "-w", n); err == nil && strings.HasPrefix(where, "/usr/local/") {
				t.Errorf("after make uninstall, man -w %s = %s", n, where)
			}
		}
		left, _ := runEnv(env, "find", "/usr/local/share", "/usr/local/lib", "-type", "f")
		if strings.Contains(left, "vde") {
			t.Errorf("after make uninstall, files are left:\n%s", left)
		}
	})
}
