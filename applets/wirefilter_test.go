package applets

import (
	"errors"
	"strings"
	"testing"

	"github.com/vde-go/vde/switchcore/impair"
)

func TestWirefilterArgs(t *testing.T) {
	o, err := parseWirefilterArgs([]string{"-v", "/a:b:c", "-l", "LR10+2N", "-d100", "--band=128K", "-N", "--mgmtmode", "660", "--seed", "42", "--pidfile", "p"}, "/cwd")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Plugs) != 2 || o.Plugs[0] != "/a" || o.Plugs[1] != "b:c" {
		t.Fatalf("plugs %q: -v splits at the first colon", o.Plugs)
	}
	if len(o.Values) != 3 || o.Values[0].param != impair.Loss || !o.Values[0].set.LR || o.Values[0].set.RL ||
		o.Values[0].set.V != (impair.Value{Value: 10, Plus: 2, Alg: impair.Normal}) {
		t.Fatalf("values %+v", o.Values)
	}
	if o.Values[2].set.V.Value != 128*1024 || !o.NoFIFO || o.MgmtMode != 0o660 || !o.HasSeed || o.Seed != 42 || o.PidFile != "/cwd/p" {
		t.Fatalf("options %+v", o)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-v", "nocolon"}, "Bad vde_plugs specification.\nUsage: wirefilter OPTIONS\n"},
		{[]string{"-l", "abc"}, "wirefilter: --loss abc: not a value"},
		{[]string{"-d", "10[1]"}, "wirefilter: --delay 10[1]: the command line sets Markov node 0 only"},
		{[]string{"--seed", "x"}, "wirefilter: --seed x: not a number"},
		{[]string{"-x"}, "wirefilter: unrecognized option '-x'\nUsage: wirefilter OPTIONS\n"},
		{[]string{"operand"}, "Usage: wirefilter OPTIONS\n"},
		{[]string{"-h"}, "Usage: wirefilter OPTIONS\n"},
	} {
		_, err := parseWirefilterArgs(c.args, "/")
		var pe *parseExit
		if !errors.As(err, &pe) || pe.Code != 1 || !strings.HasPrefix(pe.Stderr, c.msg) {
			t.Errorf("%q: %v, want exit 1 with %q", c.args, err, c.msg)
		}
	}
}

func TestWirefilterRCFileMissing(t *testing.T) {
	_, err := parseWirefilterArgs([]string{"-f", "/nonexistent/rc"}, "/")
	var pe *parseExit
	if !errors.As(err, &pe) || pe.Code != 1 || pe.Stderr != "wirefilter: rc file /nonexistent/rc: No such file or directory\n" {
		t.Fatalf("%v", err)
	}
}
