package applets

import (
	"encoding/binary"
	"net/netip"
	"os/user"
	"strconv"
	"sync"

	"github.com/vde-go/vde/switchcore/wire"
)

// ipLogger passes frames through and logs, once each, the IPv4 and IPv6 source addresses
// they carry: vde_plug -L, so that an administrator can tell which tunnel user had which
// address.
type ipLogger struct {
	wire.Endpoint
	logf func(format string, args ...any)
	user string

	mu   sync.Mutex
	seen map[netip.Addr]bool
}

func newIPLogger(e wire.Endpoint, logf func(string, ...any), user string) *ipLogger {
	return &ipLogger{Endpoint: e, logf: logf, user: user, seen: map[netip.Addr]bool{}}
}

// ReadBatch implements wire.Endpoint.
func (l *ipLogger) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	n, err := l.Endpoint.ReadBatch(frames, sizes)
	for i := 0; i < n; i++ {
		if a, ok := sourceIP(frames[i][:sizes[i]]); ok {
			l.note(a)
		}
	}
	return n, err
}

func (l *ipLogger) note(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[a] || len(l.seen) >= 1024 {
		return
	}
	l.seen[a] = true
	l.logf("user %s IP %s", l.user, a)
}

// sourceIP returns the source address of an IPv4 or IPv6 frame (802.1Q tags skipped).
func sourceIP(f []byte) (netip.Addr, bool) {
	if len(f) < 14 {
		return netip.Addr{}, false
	}
	et, p := binary.BigEndian.Uint16(f[12:14]), f[14:]
	if et == 0x8100 && len(p) >= 4 {
		et, p = binary.BigEndian.Uint16(p[2:4]), p[4:]
	}
	switch {
	case et == 0x0800 && len(p) >= 20 && p[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(p[12:16])), true
	case et == 0x86dd && len(p) >= 40 && p[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(p[8:24])), true
	}
	return netip.Addr{}, false
}

// inGroup reports whether the current user belongs to the named group (vdeplug4 logs IP
// addresses of login-shell users in group vdeplug_iplog).
func inGroup(name string) bool {
	g, err := user.LookupGroup(name)
	if err != nil {
		return false
	}
	u, err := user.Current()
	if err != nil {
		return false
	}
	ids, _ := u.GroupIds()
	for _, id := range append(ids, u.Gid) {
		if id == g.Gid {
			return true
		}
	}
	return false
}

func currentUserName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(-1)
}
