package wire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DialOptions says which port to ask a switch for and how to present the client.
type DialOptions struct {
	// Port is the port asked for; 0 means any free port.
	Port int
	// Port0 asks for the reserved port 0 (REQ_NEW_PORT0, vdeplug4's "[0]").
	Port0 bool
	// Description is the text before " user=NAME pid=PID" (vdeplug4 style); empty means "vdeplug:".
	Description string
	// RawDescription, when set, is sent as is instead of the vdeplug4-style text.
	RawDescription bool
	// Mode of the client data socket; 0 means vdeplug4's default 0700.
	Mode uint32
	// Group owning the client data socket, or -1 (0 is taken as "not set" only via HasGroup).
	Group    int
	HasGroup bool
	// Timeout bounds the handshake (a Debian switch never answers some refusals); 0 means 5s.
	Timeout time.Duration
	// Offload asks for a data channel with offloads (VersionOffload), and if the switch
	// refuses that (not ours), for a plain one: Conn.Offload says which it got. On such a
	// channel the switch sends GSO packets whole: read with ReadOffload.
	Offload bool
	// Logf, if set, hears that a switch refused a channel with offloads.
	Logf func(format string, args ...any)
}

// Conn is a client's attachment to a switch port: the control stream, whose EOF means the
// switch let go of us, and the data socket.
type Conn struct {
	*Datagram
	// off is the data channel with offloads, on the same socket, if the switch took the
	// request for one (DialOptions.Offload); ReadBatch and WriteBatch go through it.
	off *OffloadDatagram
	ctl *net.UnixConn
	// Remote is the switch-side data socket path from the reply.
	Remote string
	// Switch is the switch directory as the caller named it (for messages).
	Switch string

	closedOnce sync.Once
	closed     chan struct{}
}

// WriteBatch implements Endpoint for a client: it waits while the switch's receive queue
// is full, as libvdeplug's blocking send() does. A plug has one destination, so waiting
// holds back only its own source (a TAP, a stream), whose queue then fills and slows TCP
// gently; dropping at the switch's 10-datagram queue instead cost ~100k TCP
// retransmissions in 5 s of iperf3. Closing the connection ends a wait.
// A send that fails because the switch's data socket is gone is a *SwitchGoneError.
func (c *Conn) WriteBatch(frames [][]byte) (int, error) {
	if c.off != nil {
		return c.WriteOffload(frames, nil)
	}
	n, err := c.WriteBatchWait(frames)
	return n, c.sendErr(err)
}

// sendErr makes a send error that means the switch is gone a *SwitchGoneError.
func (c *Conn) sendErr(err error) error {
	if err != nil && !errors.Is(err, os.ErrClosed) && switchGone(err) {
		err = &SwitchGoneError{Switch: c.Switch, Err: err}
	}
	return err
}

// Offload is the data channel with offloads when the switch took the request for one
// (DialOptions.Offload: our switch), else nil (Debian's switch: plain frames). Its
// socket carries a header before every packet: RawConn and SetEmpty, which know plain
// datagrams only, are not for such a Conn.
func (c *Conn) Offload() *OffloadDatagram { return c.off }

// WriteBatchWait sends every frame, waiting while the switch's queue is full (as the
// embedded Datagram's, with the channel's framing when it carries offloads).
func (c *Conn) WriteBatchWait(frames [][]byte) (int, error) {
	if c.off != nil {
		return c.off.WriteOffloadWait(frames, nil)
	}
	return c.Datagram.WriteBatchWait(frames)
}

// ReadBatch implements Endpoint: plain frames (on a channel with offloads, those without).
func (c *Conn) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	if c.off != nil {
		return c.off.ReadBatch(frames, sizes)
	}
	return c.Datagram.ReadBatch(frames, sizes)
}

// ReadOffload implements OffloadEndpoint (buffers of MaxPacket bytes); on a plain channel
// every packet is a plain frame.
func (c *Conn) ReadOffload(frames [][]byte, sizes []int, offl []Offload) (int, error) {
	if c.off != nil {
		return c.off.ReadOffload(frames, sizes, offl)
	}
	n, err := c.Datagram.ReadBatch(frames, sizes)
	for i := 0; i < n && offl != nil; i++ {
		offl[i] = Offload{}
	}
	return n, err
}

// WriteOffload implements OffloadEndpoint, waiting as WriteBatch does; on a plain
// channel only plain frames may be given (TakesOffload).
func (c *Conn) WriteOffload(frames [][]byte, offl []Offload) (int, error) {
	if c.off == nil {
		return c.WriteBatch(frames)
	}
	n, err := c.off.WriteOffloadWait(frames, offl)
	return n, c.sendErr(err)
}

// TakesOffload implements OffloadEndpoint: the switch took a channel with offloads.
func (c *Conn) TakesOffload() bool { return c.off != nil }

// switchGone tells the send errors that mean the switch's side of the data socket is
// gone from the others (a frame too big, a kernel short of memory).
func switchGone(err error) bool {
	for _, e := range []unix.Errno{unix.ECONNREFUSED, unix.ECONNRESET, unix.ENOTCONN, unix.EPIPE, unix.ENOENT} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// CloseReason is why the connection ended when Closed fired: the switch closed it.
func (c *Conn) CloseReason() error { return &SwitchGoneError{Switch: c.Switch} }

// SwitchGoneError reports that a switch let go of a client: it closed the control
// stream (Err is nil: a shutdown, port/epclose, or the switch died), or the data socket
// failed (Err says how). It matches ErrPeerClosed with errors.Is.
type SwitchGoneError struct {
	// Switch is the switch directory as the client named it.
	Switch string
	// Err is the data socket's error, or nil for an EOF on the control stream.
	Err error
}

func (e *SwitchGoneError) Error() string {
	if e.Err == nil {
		return "switch " + e.Switch + " closed the connection"
	}
	return "switch " + e.Switch + ": data socket: " + e.Err.Error()
}

// Is makes errors.Is(err, ErrPeerClosed) true.
func (e *SwitchGoneError) Is(target error) bool { return target == ErrPeerClosed }

// Unwrap returns the data socket's error, if any.
func (e *SwitchGoneError) Unwrap() error { return e.Err }

// Closed is closed when the switch ends the connection (EOF or anything on the control
// stream, as vde_plug reads it) or Close is called.
func (c *Conn) Closed() <-chan struct{} {
	c.closedOnce.Do(func() {
		c.closed = make(chan struct{})
		go func() {
			c.WaitClosed()
			close(c.closed)
		}()
	})
	return c.closed
}

// Dial attaches to the switch whose control directory is dir, as libvdeplug's vde:// does
// (shared/spec/wire-protocol.md §5.1).
func Dial(dir string, o DialOptions) (*Conn, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("vde switch %s: %w", dir, err)
	}
	real, _ = filepath.Abs(real)
	ctlPath := filepath.Join(real, "ctl")
	for {
		ctl, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ctlPath, Net: "unix"})
		if err != nil {
			return nil, fmt.Errorf("vde switch %s: %w", dir, unwrapOp(err))
		}
		c, err := handshake(ctl, real, ctlPath, o)
		if err != nil {
			ctl.Close()
			if o.Offload && errors.Is(err, errNoReply) {
				// Not our switch: it refused version 4 (and logged it). Ask for plain
				// frames; if that is refused too, the refusal was not about offloads.
				if o.Logf != nil {
					o.Logf("vde switch %s refused a data channel with offloads (request version 4): asking for plain frames", dir)
				}
				o.Offload = false
				continue
			}
			return nil, fmt.Errorf("vde switch %s: %w", dir, err)
		}
		c.Switch = dir
		return c, nil
	}
}

// errNoReply is a switch that closed the control connection instead of answering.
var errNoReply = errors.New("switch refused the connection (closed without reply)")

func handshake(ctl *net.UnixConn, dir, ctlPath string, o DialOptions) (*Conn, error) {
	fd, err := SocketDatagram()
	if err != nil {
		return nil, err
	}
	local, err := bindClient(fd, dir)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	defer os.Remove(local) // connected sockets need no names (vdeplug4 unlinks too)
	if err := clientPerms(local, ctlPath, o); err != nil {
		unix.Close(fd)
		return nil, err
	}
	req := Request{Type: ReqNewControl, Port: o.Port, Path: local, Description: describe(o), Offload: o.Offload}
	if o.Port0 {
		req.Type, req.Port = ReqNewPort0, 0
	}
	buf, err := AppendRequest(make([]byte, 0, MaxRequestSize), req)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctl.SetDeadline(time.Now().Add(timeout))
	if _, err := ctl.Write(buf); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("send request: %w", unwrapOp(err))
	}
	reply := make([]byte, SockaddrSize)
	if _, err := io.ReadFull(ctl, reply); err != nil {
		unix.Close(fd)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errNoReply
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("switch did not answer within %v (port refused?)", timeout)
		}
		return nil, fmt.Errorf("read reply: %w", unwrapOp(err))
	}
	ctl.SetDeadline(time.Time{})
	remote, err := ParseReply(reply)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: remote}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect data socket %s: %w", remote, err)
	}
	if o.Offload {
		od, err := NewOffloadDatagram(fd, local, nil)
		if err != nil {
			return nil, err
		}
		return &Conn{Datagram: od.Datagram, off: od, ctl: ctl, Remote: remote}, nil
	}
	d, err := NewDatagram(fd, local)
	if err != nil {
		return nil, err
	}
	return &Conn{Datagram: d, ctl: ctl, Remote: remote}, nil
}

// bindClient binds fd to <dir>/.PPPPP-SSSSS, falling back to the directories vdeplug4 tries.
func bindClient(fd int, dir string) (string, error) {
	pid := os.Getpid()
	var lastErr error
	for _, base := range []string{dir + "/.", "/var/run/vde.", "/var/tmp/vde.", "/tmp/vde."} {
		for seq := 0; seq < 100000; seq++ {
			p := fmt.Sprintf("%s%05d-%05d", base, pid, seq)
			err := unix.Bind(fd, &unix.SockaddrUnix{Name: p})
			if err == nil {
				return p, nil
			}
			lastErr = err
			if err != unix.EADDRINUSE {
				break
			}
		}
	}
	return "", fmt.Errorf("bind client data socket: %w", lastErr)
}

// clientPerms applies vdeplug4's rule so that the switch can connect back to us.
func clientPerms(local, ctlPath string, o DialOptions) error {
	mode := o.Mode
	if mode == 0 {
		mode = 0700
	}
	if o.HasGroup {
		if err := os.Chown(local, -1, o.Group); err != nil {
			return fmt.Errorf("chown %s group %d: %w", local, o.Group, err)
		}
	} else if mode&077 == 0 {
		var st unix.Stat_t
		if unix.Stat(ctlPath, &st) == nil && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
			if os.Chown(local, -1, int(st.Gid)) == nil {
				mode |= 070
			} else {
				mode |= 077
			}
		}
	}
	if err := os.Chmod(local, os.FileMode(mode)); err != nil {
		return fmt.Errorf("chmod %s: %w", local, err)
	}
	return nil
}

func describe(o DialOptions) string {
	if o.RawDescription {
		return o.Description
	}
	d := o.Description
	if d == "" {
		d = "vdeplug:"
	}
	name := strconv.Itoa(os.Geteuid())
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	s := fmt.Sprintf("%s user=%s pid=%d", d, name, os.Getpid())
	if ssh := os.Getenv("SSH_CLIENT"); ssh != "" {
		if i := indexSpace(ssh); i >= 0 {
			ssh = ssh[:i]
		}
		s += " SSH=" + ssh
	}
	if len(s) > MaxDescription {
		s = s[:MaxDescription]
	}
	return s
}

func indexSpace(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return i
		}
	}
	return -1
}

// Ctl is the control stream; it reads EOF when the switch drops the endpoint.
func (c *Conn) Ctl() *net.UnixConn { return c.ctl }

// WaitClosed blocks until the switch closes the control stream (or it fails).
func (c *Conn) WaitClosed() error {
	var b [64]byte
	_, err := c.ctl.Read(b[:]) // the switch sends nothing after the reply: any event ends us
	if err == nil {
		err = ErrPeerClosed
	}
	return err
}

// Close detaches from the switch.
func (c *Conn) Close() error {
	err := c.Datagram.Close()
	if cerr := c.ctl.Close(); err == nil {
		err = cerr
	}
	return err
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		var se *os.SyscallError
		if errors.As(op.Err, &se) {
			return se.Err
		}
		return op.Err
	}
	return err
}
