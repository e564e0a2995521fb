package slirp

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// resolver knows the host's first nameserver, from a resolv.conf that it re-reads when
// the file changes (checked at most once a second, as the C slirp caches it).
type resolver struct {
	path string
	port string // "53"; tests point it at a nameserver of their own

	mu      sync.Mutex
	checked time.Time
	stamp   fileStamp
	server  string
}

// fileStamp tells whether a file changed: a new file (inode), size or time.
type fileStamp struct {
	ino, size int64
	mtime     time.Time
}

const resolvRecheck = time.Second

func newResolver(path string) *resolver { return &resolver{path: path, port: "53"} }

// nameserver returns the address DNS queries go to; 127.0.0.1 when the file names none.
func (r *resolver) nameserver() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.server != "" && now.Sub(r.checked) < resolvRecheck {
		return r.server
	}
	r.checked = now
	st, err := os.Stat(r.path)
	var stamp fileStamp
	if err == nil {
		stamp = fileStamp{size: st.Size(), mtime: st.ModTime()}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			stamp.ino = int64(sys.Ino)
		}
	}
	if r.server != "" && stamp == r.stamp {
		return r.server
	}
	r.stamp = stamp
	r.server = "127.0.0.1"
	if data, err := os.ReadFile(r.path); err == nil {
		if ns := firstNameserver(data); ns != "" {
			r.server = ns
		}
	}
	return r.server
}

// firstNameserver returns the address of the first usable "nameserver" line.
func firstNameserver(conf []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			return a.String()
		}
	}
	return ""
}
