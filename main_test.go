package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vde-go/vde/applets"
)

func runArgs(argv ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), argv, applets.Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestDispatchSwitchNames(t *testing.T) {
	for _, argv := range [][]string{
		{"vde_switch", "-v"},
		{"vde-switch", "-v"},
		{"vdeswitch", "-v"},
		{"/usr/local/bin/vde_switch", "-v"},
		{"vde", "switch", "-v"},
		{"vde", "vde_switch", "-v"},
		{"/usr/local/bin/vde", "switch", "--version"},
	} {
		code, out, errs := runArgs(argv...)
		if code != 0 || !strings.HasPrefix(out, "VDE "+applets.Version+"\n") || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want the switch's version banner", argv, code, out, errs)
		}
	}
}

func TestDispatchSwitchUsageExitsOne(t *testing.T) {
	code, out, _ := runArgs("vde", "switch", "-h")
	if code != 1 || !strings.HasPrefix(out, "Usage: vde_switch [OPTIONS]\n") {
		t.Errorf("vde switch -h: exit %d, stdout %q", code, out)
	}
	code, _, errs := runArgs("vde_switch", "--bogus")
	if code != 1 || errs != "vde_switch: unrecognized option '--bogus'\n" {
		t.Errorf("vde_switch --bogus: exit %d, stderr %q", code, errs)
	}
}

func TestDispatchSlirpvde(t *testing.T) {
	for _, argv := range [][]string{{"slirpvde", "-P"}, {"vde", "slirpvde", "-P"}, {"vde", "slirp", "-P"}} {
		code, _, errs := runArgs(argv...)
		if code != 255 || !strings.HasPrefix(errs, "slirpvde: unrecognized option '-P'\nUsage:\n") {
			t.Errorf("%q: exit %d, stderr %q; want 255 and the C tool's message and usage", argv, code, errs)
		}
	}
}

func TestDispatchUnixterm(t *testing.T) {
	for _, argv := range [][]string{{"unixterm", "-h"}, {"vdeterm", "-h"}, {"vde", "unixterm", "-h"}, {"vde", "vdeterm", "-h"}} {
		code, out, errs := runArgs(argv...)
		name := argv[len(argv)-2] // unixterm and vdeterm are two applets
		if code != 0 || !strings.HasPrefix(out, "Usage: "+name+" SOCKET\n") || errs != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and %s's usage", argv, code, out, errs, name)
		}
	}
	for _, argv := range [][]string{{"vdecmd"}, {"unixcmd"}, {"vde", "vdecmd"}, {"vde", "unixcmd"}} {
		code, out, errs := runArgs(argv...)
		if code != 255 || out != "" || !strings.HasPrefix(errs, "Usage: ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 255 and the usage", argv, code, out, errs)
		}
	}
}

func TestDispatchVdeq(t *testing.T) {
	for _, argv := range [][]string{{"vdeq", "-h"}, {"vde", "vdeq"}} {
		code, _, errs := runArgs(argv...)
		if code != 0 || !strings.HasPrefix(errs, "Usage: vdeq [-h]\n") {
			t.Errorf("%q: exit %d, stderr %q; want 0 and the usage", argv, code, errs)
		}
	}
}

// TestDispatchIfupHook: outside ifupdown (no vde2-* options in the environment) the hook
// does nothing and says nothing; -h gives its usage.
func TestDispatchIfupHook(t *testing.T) {
	t.Setenv("IF_VDE2_SWITCH", "")
	t.Setenv("IF_VDE2_SLIRP", "")
	t.Setenv("IF_VDE2_PLUG", "")
	if code, out, errs := runArgs("vde", "ifup-hook"); code != 0 || out != "" || errs != "" {
		t.Errorf("vde ifup-hook: exit %d, stdout %q, stderr %q; want 0 and nothing", code, out, errs)
	}
	if code, out, _ := runArgs("vde", "ifup-hook", "-h"); code != 0 || !strings.HasPrefix(out, "Usage: vde ifup-hook\n") {
		t.Errorf("vde ifup-hook -h: exit %d, stdout %q; want 0 and the usage", code, out)
	}
}

func TestMulticallFrontEnd(t *testing.T) {
	code, out, _ := runArgs("vde", "--list")
	want := "capture\ndpipe\nifup-hook\npcapplug\nplug\nplug2tap\nslirpvde\nswitch\ntunctl\nunixterm\nvdecmd\nvdeq\nvdeterm\nwirefilter\n"
	if code != 0 || out != want {
		t.Errorf("vde --list: exit %d, stdout %q; want %q", code, out, want)
	}

	code, out, _ = runArgs("vde", "--version")
	if code != 0 || out != "vde "+applets.Version+"\n" {
		t.Errorf("vde --version: exit %d, stdout %q", code, out)
	}

	code, out, errs := runArgs("vde")
	if code != 2 || out != "" || !strings.HasPrefix(errs, "usage: vde APPLET") {
		t.Errorf("vde: exit %d, stdout %q, stderr %q; want 2 and the usage", code, out, errs)
	}

	code, out, errs = runArgs("vde", "bogus", "-x")
	if code != 2 || out != "" || !strings.HasPrefix(errs, "vde: unknown applet 'bogus'\nusage: vde APPLET") {
		t.Errorf("vde bogus: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// A name the table does not know behaves as vde itself.
	code, out, _ = runArgs("vde.renamed", "--version")
	if code != 0 || out != "vde "+applets.Version+"\n" {
		t.Errorf("vde.renamed --version: exit %d, stdout %q", code, out)
	}

	code, out, _ = runArgs("vde", "--help")
	if code != 0 || !strings.HasPrefix(out, "usage: vde APPLET") {
		t.Errorf("vde --help: exit %d, stdout %q", code, out)
	}
}

func TestExitStatus(t *testing.T) {
	var errb bytes.Buffer
	cases := []struct {
		err    error
		code   int
		stderr string
	}{
		{nil, 0, ""},
		{&applets.ExitError{Code: 255}, 255, ""},
		{&applets.ExitError{Code: 2, Err: errors.New("x is not implemented yet")}, 2, "vde: x is not implemented yet\n"},
		{errors.New("boom"), 1, "vde: boom\n"},
	}
	for _, c := range cases {
		errb.Reset()
		if code := exitStatus(c.err, &errb); code != c.code || errb.String() != c.stderr {
			t.Errorf("exitStatus(%v) = %d, stderr %q; want %d, %q", c.err, code, errb.String(), c.code, c.stderr)
		}
	}
}

func TestDispatchPlug(t *testing.T) {
	for _, argv := range [][]string{{"vde_plug", "-h"}, {"vde-plug", "--help"}, {"vdeplug", "-h"}, {"vde", "plug", "-h"}} {
		code, out, errs := runArgs(argv...)
		if code != 255 || out != "" || !strings.HasPrefix(errs, "Usage:\n  vde_plug [ OPTIONS ] \n") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", argv, code, out, errs)
		}
	}
}

func TestDispatchPlug2Tap(t *testing.T) {
	// -h only: a real run would create a TAP in the test's network namespace.
	for _, argv := range [][]string{{"vde_plug2tap", "-h"}, {"vde", "plug2tap", "-h"}, {"vde-plug2tap", "--help"}} {
		code, out, errs := runArgs(argv...)
		if code != 255 || out != "" || !strings.HasPrefix(errs, "Usage: vde_plug2tap [OPTION]... tap_name\n") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 255 and the usage", argv, code, out, errs)
		}
	}
}

// The switch runs Go code on half the processors unless GOMAXPROCS says otherwise; other
// applets keep the runtime's default.
func TestSwitchProcessors(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range []struct{ def, want int }{{1, 1}, {2, 1}, {3, 1}, {8, 4}} {
		if got := applets.SwitchProcessors(c.def); got != c.want {
			t.Errorf("switch with %d processors by default: runs on %d, want %d", c.def, got, c.want)
		}
	}
	t.Setenv("GOMAXPROCS", "") // restored after the test
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	want := applets.SwitchProcessors(def)
	for i := 0; i < 3; i++ { // halved from the default each time, not from the last value
		for _, env := range []string{"", "0", "abc"} { // values the runtime ignores
			os.Setenv("GOMAXPROCS", env)
			if code, _, errs := runArgs("vde_switch", "-v"); code != 0 {
				t.Fatalf("vde_switch -v: exit %d: %s", code, errs)
			}
			if got := runtime.GOMAXPROCS(0); got != want {
				t.Fatalf("switch (GOMAXPROCS=%q, default %d, call %d): runs on %d processors, want %d", env, def, i+1, got, want)
			}
		}
	}
	runtime.GOMAXPROCS(8)
	os.Unsetenv("GOMAXPROCS")
	runArgs("vde", "dpipe", "--version")
	if got := runtime.GOMAXPROCS(0); got != 8 {
		t.Errorf("dpipe: runs on %d processors, want them left at 8", got)
	}
	os.Setenv("GOMAXPROCS", "8")
	runArgs("vde", "switch", "-v")
	if got := runtime.GOMAXPROCS(0); got != 8 {
		t.Errorf("switch with GOMAXPROCS=8 in the environment: runs on %d", got)
	}
}

// slirpvde halves its processors only as the daemon that -d re-executes.
func TestSlirpvdeProcessors(t *testing.T) {
	if got := applets.SlirpvdeProcessors(8); got != 8 {
		t.Errorf("slirpvde in the foreground with 8 processors: runs on %d, want 8", got)
	}
	t.Setenv("_VDE_SLIRPVDE_DAEMON_READY_FD", "3")
	for _, c := range []struct{ def, want int }{{1, 1}, {2, 1}, {8, 4}} {
		if got := applets.SlirpvdeProcessors(c.def); got != c.want {
			t.Errorf("slirpvde daemon with %d processors by default: runs on %d, want %d", c.def, got, c.want)
		}
	}
}
