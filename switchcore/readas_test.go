package switchcore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadFileAs: a root switch reads a mgmt user's script with that user's rights: not
// root's 0600 or 0640 files, but files the user may read; and the switch's own threads keep
// root's rights afterwards.
func TestReadFileAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it takes on another user's identity")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes both 0700
	files := map[string]os.FileMode{"secret": 0o600, "group": 0o640, "public": 0o644}
	for name, mode := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	const nobody = 65534
	for name, want := range map[string]error{"secret": unix.EACCES, "group": unix.EACCES, "public": nil} {
		data, err := readFileAs(filepath.Join(dir, name), nobody, nobody)
		switch {
		case want == nil && (err != nil || string(data) != "public\n"):
			t.Errorf("%s as nobody: %q, %v", name, data, err)
		case want != nil && !errors.Is(err, want):
			t.Errorf("%s as nobody: %q, %v; want %v", name, data, err, want)
		}
	}
	for i := 0; i < 20; i++ { // whatever thread runs this, it is still root's
		if _, err := os.ReadFile(filepath.Join(dir, "secret")); err != nil {
			t.Fatalf("the switch's own read after readFileAs: %v", err)
		}
	}
}
