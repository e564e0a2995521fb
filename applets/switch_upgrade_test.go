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
		desc, body, wantErr string
	}{
		{"reads our version", `echo "VDE 9.9"; [ "$VDE_HANDOVER_PROBE" = 1 ] && echo "switch state version 1"; exit 0`, ""},
		{"from before upgrades", `echo "VDE 2.3.2-go"`, "cannot take a running switch over"},
		{"another state version", `echo "VDE 9.9"; echo "switch state version 2"`, "reads switch state version 2"},
		{"not a VDE binary", `echo hello`, `no "VDE " line`},
		{"fails", `exit 1`, "exit status 1"},
	}
	for i, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			err := checkBinary(script(string(rune('a'+i)), c.body+"\n"))
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("got %v, want an error with %q", err, c.wantErr)
			}
		})
	}
	if err := checkBinary(filepath.Join(dir, "missing")); err == nil {
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
	if pe, ok := err.(*parseExit); !ok || !strings.Contains(pe.Stdout, handoverProbeLine+"1\n") {
		t.Fatalf("--version under %s=1: %v", handoverProbeEnv, err)
	}
}
