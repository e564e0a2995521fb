package switchcore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConnectClientOwnership: the switch connects only to a data socket its client owns
// (root's clients may name any), to a socket and nothing else, through symlinks too.
func TestConnectClientOwnership(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "client")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(sock, link)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o666)
	me := os.Geteuid()
	other := me + 1000

	for _, c := range []struct {
		path string
		peer int
		want string // "" for connected
	}{
		{sock, me, ""},
		{link, me, ""},
		{sock, 0, ""},
		{sock, other, "not by the client"},
		{link, other, "not by the client"},
		{plain, me, "not a socket"},
		{filepath.Join(dir, "none"), me, "No such file or directory"},
	} {
		got, uid, err := connectClient(c.path, c.peer)
		if got >= 0 {
			unix.Close(got)
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s as uid %d: %v", c.path, c.peer, err)
		case c.want == "" && uid != me:
			t.Errorf("%s as uid %d: owner uid %d, want %d", c.path, c.peer, uid, me)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s as uid %d: %v; want an error with %q", c.path, c.peer, err, c.want)
		}
	}
	// The connected socket reaches the checked one.
	got, _, err := connectClient(link, me)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(got)
	if _, err := unix.Write(got, []byte("frame")); err != nil {
		t.Fatal(err)
	}
	var b [16]byte
	if n, _, err := unix.Recvfrom(fd, b[:], 0); err != nil || string(b[:n]) != "frame" {
		t.Errorf("client socket got %q, %v", b[:n], err)
	}
}
