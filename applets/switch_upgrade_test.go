package applets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An upgrade goes only to a binary that says it reads this switch's state version: one from
// before upgrades in place would start afresh, find the sockets taken and exit.
func TestUpgradeCheckBinary(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		desc, body string
		vhost      bool
		wantErr    string
	}{
		{"reads our version", `echo "VDE 9.9"; [ "$VDE_HANDOVER_PROBE" = 1 ] && echo "switch state version 1"; exit 0`, false, ""},
		{"from before upgrades", `echo "VDE 2.3.2-go"`, false, "cannot take a running switch over"},
		{"another state version", `echo "VDE 9.9"; echo "switch state version 2"`, false, "reads switch state version 2"},
		{"not a VDE binary", `echo hello`, false, `no "VDE " line`},
		{"fails", `exit 1`, false, "exit status 1"},
		{"vhost-user: reads ours", `echo "VDE 9.9"; echo "switch state version 1"; echo "vhost-user state version 1"`, true, ""},
		{"vhost-user: from before", `echo "VDE 9.9"; echo "switch state version 1"`, true, "cannot take vhost-user ports over"},
		{"vhost-user: another version", `echo "VDE 9.9"; echo "switch state version 1"; echo "vhost-user state version 7"`, true, "reads vhost-user state version 7"},
		{"vhost-user: not needed", `echo "VDE 9.9"; echo "switch state version 1"; echo "vhost-user state version 7"`, false, ""},
	}
	for i, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			err := checkBinary(script(string(rune('a'+i)), c.body+"\n"), c.vhost)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("got %v, want an error with %q", err, c.wantErr)
			}
		})
	}
	if err := checkBinary(filepath.Join(dir, "missing"), false); err == nil {
		t.Fatal("a missing binary passed")
	}
}

// --version says which state version it reads only when asked.
func TestVersionHandoverProbe(t *testing.T) {
	t.Setenv(handoverProbeEnv, "")
	_, err := parseSwitchArgs([]string{"-v"}, switchEnv{Cwd: "/"})
	if pe, ok := err.(*parseExit); !ok || strings.Contains(pe.Stdout, handoverProbeLine) {
		t.Fatalf("plain --version: %v", err)
	}
	t.Setenv(handoverProbeEnv, "1")
	_, err = parseSwitchArgs([]string{"-v"}, switchEnv{Cwd: "/"})
	if pe, ok := err.(*parseExit); !ok || !strings.Contains(pe.Stdout, handoverProbeLine+"1\n"+vhostProbeLine+"1\n") {
		t.Fatalf("--version under %s=1: %v", handoverProbeEnv, err)
	}
}
