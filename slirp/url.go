package slirp

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

// slirp:// makes a router an endpoint of its own, so that vde_plug can put it on any
// network: `vde_plug vde:///tmp/sw slirp://`, `vde_plug tap://tap0 slirp:///host=10.1.0.2/24`.
// Options follow vdeplug_slirp's names, "/"-separated (shared/spec/slirpvde.md §7).
func init() {
	wire.RegisterScheme("slirp", openURL)
}

// ParseURLOptions builds a Config from slirp:// options. DHCP is always on, as in
// libslirp. Unlike vdeplug_slirp, IPv6 is off unless v6 (or an IPv6 option) asks for it,
// so that a slirp on a host's TAP never becomes the host's IPv6 default route; v6 alone
// means IPv6 only.
func ParseURLOptions(arg string) (Config, bool, error) {
	c := DefaultConfig()
	c.DHCP = true
	var v4, v6, verbose bool
	var host, dhcpStart, dns, dns6, host6 string
	opts := strings.Split(arg, "/")
	for i := 0; i < len(opts); i++ {
		opt := opts[i]
		if opt == "" {
			continue
		}
		key, val, _ := strings.Cut(opt, "=")
		// "/" separates options and also starts a prefix length: host=10.1.0.0/16.
		if (key == "addr" || key == "host" || key == "addr6" || key == "host6") && i+1 < len(opts) && isNumber(opts[i+1]) {
			val += "/" + opts[i+1]
			i++
		}
		var err error
		switch key {
		case "v4":
			v4 = true
		case "v6":
			v6 = true
		case "addr", "host":
			host = val
		case "addr6", "host6":
			host6 = val
		case "dhcp":
			dhcpStart = val
		case "vnameserver":
			dns = val
		case "vnameserver6":
			dns6 = val
		case "tftp_path":
			c.TFTPDir = val
		case "bootfile":
			c.BootFile = val
		case "hostname", "tftp_server_name", "vdomainname", "mru":
			// Accepted for compatibility; nothing here uses them.
		case "vdnssearch":
			c.DNSSearch = strings.Split(val, ",")
		case "mtu":
			if c.MTU, err = strconv.Atoi(val); err != nil {
				return c, false, fmt.Errorf("slirp: mtu=%s: not a number", val)
			}
		case "disable_host_loopback":
			c.NoHostLoopback = true
		case "restricted":
			c.Restricted = true
		case "tcpfwd", "udpfwd":
			for _, spec := range strings.Split(val, ",") {
				f, err := ParseForward(spec, key == "udpfwd")
				if err != nil {
					return c, false, fmt.Errorf("slirp: %s: %w", key, err)
				}
				c.Forwards = append(c.Forwards, f)
			}
		case "unixfwd":
			for _, spec := range strings.Split(val, ",") {
				u, err := ParseUnixForward(spec)
				if err != nil {
					return c, false, fmt.Errorf("slirp: unixfwd: %w", err)
				}
				c.UnixForwards = append(c.UnixForwards, u)
			}
		case "verbose":
			verbose = true
		default:
			return c, false, fmt.Errorf("slirp: unknown option %q", key)
		}
	}
	if host != "" {
		if err := c.SetHost(host, dns != "", dhcpStart != ""); err != nil {
			return c, false, fmt.Errorf("slirp: host=%w", err)
		}
	}
	for _, a := range []struct {
		val string
		set func(string) error
	}{
		{dhcpStart, func(s string) (err error) { c.DHCPStart, err = ParseAddr(s); return }},
		{dns, func(s string) (err error) { c.DNS, err = ParseAddr(s); return }},
		{host6, c.SetHost6},
		{dns6, func(s string) (err error) { c.DNS6, err = ParseAddr(s); return }},
	} {
		if a.val != "" {
			if err := a.set(a.val); err != nil {
				return c, false, fmt.Errorf("slirp: %w", err)
			}
		}
	}
	c.IPv6 = v6 || host6 != "" || dns6 != ""
	c.NoIPv4 = v6 && !v4
	return c, verbose, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 8)
	return err == nil
}

// openURL starts a router on one end of a socket pair and returns the other end.
func openURL(arg string, o wire.OpenOptions) (wire.Endpoint, error) {
	cfg, verbose, err := ParseURLOptions(arg)
	if err != nil {
		return nil, err
	}
	cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "slirp: "+format+"\n", args...) }
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("slirp: socketpair: %w", err)
	}
	inner, err := wire.NewDatagram(fds[0], "slirp")
	if err != nil {
		unix.Close(fds[1])
		return nil, err
	}
	outer, err := wire.NewDatagram(fds[1], "slirp://")
	if err != nil {
		inner.Close()
		return nil, err
	}
	r, err := New(cfg)
	if err != nil {
		inner.Close()
		outer.Close()
		return nil, err
	}
	_, errs := r.StartForwards()
	for _, err := range errs {
		cfg.Logf("%v", err)
	}
	if verbose {
		cfg.Describe(os.Stderr)
	}
	ep := &urlEndpoint{waiting: newWaiting(outer), r: r}
	go r.Run(newWaiting(inner))
	return ep, nil
}

// urlEndpoint is the plug's side of a slirp:// router; closing it stops the router.
type urlEndpoint struct {
	*waiting
	r *Router
}

func (u *urlEndpoint) Close() error {
	u.r.Close()
	return u.waiting.Close()
}

// waiting is a datagram socket whose writes wait while the peer is full, so that the
// netstack's TCP slows down instead of losing segments between plug and router.
type waiting struct{ *wire.Datagram }

func newWaiting(d *wire.Datagram) *waiting { return &waiting{d} }

func (w *waiting) WriteBatch(frames [][]byte) (int, error) { return w.WriteBatchWait(frames) }

// Describe prints the configuration table (slirp:// verbose).
func (c *Config) Describe(w io.Writer) {
	fmt.Fprintf(w, "slirp: host %s dns %s", c.Host, c.DNS)
	if c.DHCP {
		fmt.Fprintf(w, " dhcp from %s", c.DHCPStart)
	}
	if c.IPv6 {
		fmt.Fprintf(w, " host6 %s dns6 %s", c.Host6, c.DNS6)
	}
	if c.NoIPv4 {
		fmt.Fprint(w, " (IPv6 only)")
	}
	if c.TFTPDir != "" {
		fmt.Fprintf(w, " tftp %s", c.TFTPDir)
	}
	for _, f := range c.Forwards {
		fmt.Fprintf(w, " %sfwd %s", f.proto(), f)
	}
	for _, u := range c.UnixForwards {
		fmt.Fprintf(w, " unixfwd %d:%s", u.Port, u.Path)
	}
	fmt.Fprintln(w)
}
