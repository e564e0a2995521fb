package wire

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// UDP is a point-to-point cable of one Ethernet frame per UDP datagram, as vdeplug4's
// udp:// module sends them.
type UDP struct {
	conn *net.UDPConn
	dst  *net.UDPAddr
}

// ParseUDPArg parses "[SRCADDR:]SRCPORT->DSTADDR:DSTPORT" (quotes allowed, as in
// udp://"2000->hostb:3000").
func ParseUDPArg(arg string) (src, dst string, err error) {
	arg = Unquote(arg)
	s, d, ok := strings.Cut(arg, "->")
	if !ok {
		return "", "", fmt.Errorf("udp://%s: want [SRCADDR:]SRCPORT->DSTADDR:DSTPORT", arg)
	}
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", "", fmt.Errorf("udp://%s: source %q: %v", arg, s, err)
	}
	if _, _, err := net.SplitHostPort(d); err != nil {
		return "", "", fmt.Errorf("udp://%s: destination %q: %v", arg, d, err)
	}
	return s, d, nil
}

// OpenUDP binds src and sends to dst.
func OpenUDP(src, dst string) (*UDP, error) {
	daddr, err := net.ResolveUDPAddr("udp", dst)
	if err != nil {
		return nil, fmt.Errorf("udp: destination %s: %w", dst, err)
	}
	network := "udp"
	if daddr.IP.To4() != nil {
		network = "udp4"
	}
	saddr, err := net.ResolveUDPAddr(network, src)
	if err != nil {
		return nil, fmt.Errorf("udp: source %s: %w", src, err)
	}
	c, err := net.ListenUDP(network, saddr)
	if err != nil {
		return nil, fmt.Errorf("udp: bind %s: %w", src, err)
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	return &UDP{conn: c, dst: daddr}, nil
}

// ReadBatch implements Endpoint (one datagram per call).
func (u *UDP) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	for {
		n, _, err := u.conn.ReadFromUDP(frames[0])
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && !ne.Timeout() && strings.Contains(err.Error(), "refused") {
				continue // an ICMP error from a peer that is not up yet
			}
			return 0, err
		}
		if n > 0 {
			sizes[0] = n
			return 1, nil
		}
	}
}

// WriteBatch implements Endpoint; a datagram the kernel refuses is dropped.
func (u *UDP) WriteBatch(frames [][]byte) (int, error) {
	for _, f := range frames {
		u.conn.WriteToUDP(f, u.dst)
	}
	return len(frames), nil
}

// Close implements Endpoint.
func (u *UDP) Close() error { return u.conn.Close() }

func init() {
	RegisterScheme("udp", func(arg string, _ OpenOptions) (Endpoint, error) {
		src, dst, err := ParseUDPArg(arg)
		if err != nil {
			return nil, err
		}
		return OpenUDP(src, dst)
	})
}
