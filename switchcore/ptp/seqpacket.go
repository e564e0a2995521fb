package ptp

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

func init() {
	wire.RegisterScheme("seqpacket", OpenSeqpacket)
}

// ParseFD reads seqpacket://'s argument: a descriptor number, in C's notation (0x1f,
// 017 or 15). vdeplug4 reads it with strtol and takes a string with no number as 0 (the
// plug's stdin): that is an error here.
func ParseFD(arg string) (int, error) {
	s := strings.TrimSpace(arg)
	base := 10
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		s, base = s[2:], 16
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 31)
	if err != nil {
		return -1, fmt.Errorf("seqpacket: %q is not a descriptor number", arg)
	}
	return int(n), nil
}

// OpenSeqpacket opens seqpacket://FD: FD is a connected SOCK_SEQPACKET socket (one end of
// a socketpair, say) the plug inherited; each message is a frame. A zero-length message
// is the peer's end (vdeplug4 never sends one). The endpoint owns FD and closes it.
func OpenSeqpacket(arg string, o wire.OpenOptions) (wire.Endpoint, error) {
	fd, err := ParseFD(arg)
	if err != nil {
		return nil, err
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("seqpacket: descriptor %d: %w", fd, err)
	}
	if typ != unix.SOCK_SEQPACKET && typ != unix.SOCK_DGRAM {
		return nil, fmt.Errorf("seqpacket: descriptor %d is not a seqpacket (nor a datagram) socket", fd)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("seqpacket: descriptor %d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	m, err := newMsgSocket(fd, "seqpacket:"+strconv.Itoa(fd))
	if err != nil {
		return nil, err
	}
	m.SetEmpty(func() error { return io.EOF })
	return m, nil
}
