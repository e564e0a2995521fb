package tftp

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRealClients fetches files with the TFTP clients Debian ships: busybox tftp (which
// asks for tsize, and blksize with -b) and tftp-hpa (plain RFC 1350).
func TestRealClients(t *testing.T) {
	root, files := testRoot(t)
	srv := startServer(t, Config{Root: root})
	port := strconv.Itoa(srv.Port)

	type client struct {
		desc string
		bin  string
		args func(name, out string) []string
	}
	clients := []client{
		{"busybox", "busybox", func(name, out string) []string {
			return []string{"tftp", "-g", "-r", name, "-l", out, "127.0.0.1", port}
		}},
		{"busybox -b 1468", "busybox", func(name, out string) []string {
			return []string{"tftp", "-b", "1468", "-g", "-r", name, "-l", out, "127.0.0.1", port}
		}},
		{"busybox -b 8192 (clamped)", "busybox", func(name, out string) []string {
			return []string{"tftp", "-b", "8192", "-g", "-r", name, "-l", out, "127.0.0.1", port}
		}},
		{"tftp-hpa", "/usr/bin/tftp", func(name, out string) []string {
			return []string{"-m", "binary", "127.0.0.1", port, "-c", "get", name, out}
		}},
	}
	names := []string{"small.txt", "empty", "exact1536", "exact2936", "boot/kernel", "/vmlinuz"}
	for _, cl := range clients {
		t.Run(cl.desc, func(t *testing.T) {
			bin, err := exec.LookPath(cl.bin)
			if err != nil {
				t.Skipf("%s not installed: %v", cl.bin, err)
			}
			for _, name := range names {
				out := filepath.Join(t.TempDir(), "out")
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				msg, err := exec.CommandContext(ctx, bin, cl.args(name, out)...).CombinedOutput()
				cancel()
				if err != nil {
					t.Errorf("%s: %v: %s", name, err, msg)
					continue
				}
				got, err := os.ReadFile(out)
				if err != nil {
					t.Errorf("%s: %v (client said %q)", name, err, msg)
					continue
				}
				if want := files[strings.TrimPrefix(name, "/")]; !bytes.Equal(got, want) {
					t.Errorf("%s: got %d bytes, want %d (client said %q)", name, len(got), len(want), msg)
				}
			}
			// A refusal reaches the user as the server's message.
			out := filepath.Join(t.TempDir(), "out")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			msg, _ := exec.CommandContext(ctx, bin, cl.args("../etc/passwd", out)...).CombinedOutput()
			if !bytes.Contains(msg, []byte("Access violation")) {
				t.Errorf("../etc/passwd: client said %q, want Access violation", msg)
			}
		})
	}
}
