package wire

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// OpenOptions are what vde_plug's options and URL keys give an endpoint constructor.
type OpenOptions struct {
	// Description is the text before " user=NAME pid=PID"; empty means "vdeplug:".
	Description string
	// Port is the switch port asked for when the URL names none (vde_plug --port).
	Port int
	// Mode of a client data socket; 0 means the scheme's default.
	Mode uint32
	// Group owning a client data socket, when HasGroup.
	Group    int
	HasGroup bool
	// Reconnect makes a vde:// endpoint a Redial: when the switch lets go, it dials
	// again (with backoff) instead of ending. Other schemes ignore it.
	Reconnect bool
	// Logf gets a Redial's lost and reconnected lines; nil means silence.
	Logf func(format string, args ...any)
	// Offload asks a vde:// switch for a data channel with offloads (DialOptions.Offload),
	// for a reader that takes them (Conn.Offload). Not with Reconnect: a Redial passes
	// plain frames only.
	Offload bool
}

// Opener makes an endpoint from the part of a URL after "scheme://".
type Opener func(arg string, o OpenOptions) (Endpoint, error)

// ClosedNotifier is implemented by endpoints that can be ended from the far side (a switch
// closing the control stream): Closed is closed when that happens.
type ClosedNotifier interface {
	Closed() <-chan struct{}
}

var (
	schemesMu sync.RWMutex
	schemes   = map[string]Opener{}
)

// RegisterScheme makes scheme:// URLs open with open. Packages call it from init().
func RegisterScheme(scheme string, open Opener) {
	schemesMu.Lock()
	defer schemesMu.Unlock()
	if _, dup := schemes[scheme]; dup {
		panic("wire: scheme registered twice: " + scheme)
	}
	schemes[scheme] = open
}

// Schemes lists the registered schemes.
func Schemes() []string {
	schemesMu.RLock()
	defer schemesMu.RUnlock()
	var out []string
	for s := range schemes {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens a VDE URL as libvdeplug does: "scheme://arg" goes to that scheme, anything
// without "://" (a plain path, possibly with "[...]" parameters, or empty for the default
// switch) to vde://.
func Open(url string, o OpenOptions) (Endpoint, error) {
	scheme, arg := "vde", url
	if i := strings.Index(url, "://"); i >= 0 {
		scheme, arg = url[:i], url[i+3:]
	}
	schemesMu.RLock()
	open := schemes[scheme]
	schemesMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("%s: unknown scheme %q (known: %s)", url, scheme, strings.Join(Schemes(), ", "))
	}
	return open(arg, o)
}
