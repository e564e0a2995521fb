package tftp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits and defaults.
const (
	// DefaultTimeout is the per-packet retransmit timeout when Config.Timeout is zero.
	DefaultTimeout = time.Second
	// DefaultRetries is how many times a packet is resent when Config.Retries is zero.
	DefaultRetries = 5
	// DefaultMaxBlockSize is the largest block that fits an MTU of 1500 bytes:
	// 1500 - 20 (IPv4) - 8 (UDP) - 4 (TFTP header).
	DefaultMaxBlockSize = 1468
	// BlockSize is the RFC 1350 block size, used when the client negotiates none.
	BlockSize = 512
	// MinBlockSize and MaxBlockSize bound the blksize option (RFC 2348).
	MinBlockSize = 8
	MaxBlockSize = 65464
)

// requestBufSize is the buffer requests are read into. RFC 2347 caps requests at 512
// bytes; boot ROMs stay well under that, and a longer datagram is truncated, which leaves
// its strings unterminated and so refused.
const requestBufSize = 2048

// Config configures a Server.
type Config struct {
	// Root is the directory served, read-only. Names resolve beneath it and never
	// outside it, through ".." or through symbolic links.
	Root string
	// Timeout is how long the server waits for an ACK before resending a packet
	// (default DefaultTimeout). A client's RFC 2349 timeout option overrides it.
	Timeout time.Duration
	// Retries is how many times a packet is resent before the transfer is abandoned
	// (default DefaultRetries).
	Retries int
	// MaxBlockSize caps the blksize a client may negotiate (default DefaultMaxBlockSize,
	// for an MTU of 1500); larger requests are answered with this value.
	MaxBlockSize int
	// Logf, if set, receives one line per transfer and per refused request.
	Logf func(format string, args ...any)
	// MaxTransfers, if above zero, bounds the transfers at once (each holds an open file
	// and a socket); a request over it is answered with ERROR 0 "too many transfers"
	// from port 69 and Refused is called.
	MaxTransfers int
	// Refused, if set, is called for each request refused over MaxTransfers.
	Refused func()
}

// Server answers TFTP read requests from the files under Config.Root. A Server holds no
// open files or sockets between transfers and may serve several connections at once.
type Server struct {
	root     string
	timeout  time.Duration
	retries  int
	maxBlock int
	logf     func(format string, args ...any)
	maxXfers int
	refused  func()
}

// New checks c and returns a Server for it. Root must be an existing directory; it is
// made absolute here, so a later change of working directory (daemonizing) does not move
// it.
func New(c Config) (*Server, error) {
	if c.Root == "" {
		return nil, errors.New("tftp: no root directory")
	}
	root, err := filepath.Abs(c.Root)
	if err != nil {
		return nil, fmt.Errorf("tftp: root %s: %w", c.Root, err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("tftp: root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("tftp: root %s: not a directory", c.Root)
	}
	s := &Server{
		root:     root,
		timeout:  c.Timeout,
		retries:  c.Retries,
		maxBlock: c.MaxBlockSize,
		logf:     c.Logf,
		maxXfers: c.MaxTransfers,
		refused:  c.Refused,
	}
	switch {
	case s.timeout == 0:
		s.timeout = DefaultTimeout
	case s.timeout < 0:
		return nil, fmt.Errorf("tftp: negative timeout %v", c.Timeout)
	}
	switch {
	case s.retries == 0:
		s.retries = DefaultRetries
	case s.retries < 0:
		return nil, fmt.Errorf("tftp: negative retries %d", c.Retries)
	}
	switch {
	case s.maxBlock == 0:
		s.maxBlock = DefaultMaxBlockSize
	case s.maxBlock < MinBlockSize || s.maxBlock > MaxBlockSize:
		return nil, fmt.Errorf("tftp: max block size %d out of range %d..%d",
			c.MaxBlockSize, MinBlockSize, MaxBlockSize)
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.refused == nil {
		s.refused = func() {}
	}
	return s, nil
}

// Serve reads requests from conn, the socket bound to port 69, until reading fails; it
// returns that error, wrapped (errors.Is(err, net.ErrClosed) after conn is closed).
//
// Each read request is served in its own goroutine from a transfer socket that dial opens:
// a UDP socket on a fresh local port, connected to peer, as the TFTP transfer-ID rule
// wants. Because it is connected, packets from other ports never reach the transfer.
// Refusals of well-formed requests (WRQ, bad mode, bad name, missing file) are sent from
// a transfer socket as well; malformed requests get ERROR 4 from conn itself, and stray
// DATA, ACK, ERROR and OACK packets sent to port 69 are ignored.
//
// A request the client repeats (because our first packet was lost) starts a second
// transfer, as in tftp-hpa: the client follows whichever transfer ID answers first, and
// the other transfer ends on the client's ERROR 5 or after its retries.
//
// Before it returns, Serve closes the transfer sockets it opened and waits for their
// goroutines to finish.
func (s *Server) Serve(conn net.PacketConn, dial func(peer net.Addr) (net.Conn, error)) error {
	var (
		mu      sync.Mutex
		active  = make(map[net.Conn]struct{})
		closed  bool
		wg      sync.WaitGroup
		running atomic.Int64 // transfers
	)
	defer func() {
		mu.Lock()
		closed = true
		for c := range active {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()

	buf := make([]byte, requestBufSize)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("tftp: read request: %w", err)
		}
		req, err := ParseRequest(buf[:n])
		if err != nil {
			if op, _ := OpcodeOf(buf[:n]); n < 2 || (op >= OpDATA && op <= OpOACK) {
				continue // noise, or a packet of some transfer that went astray
			}
			s.logf("tftp: %s: bad request: %v", peer, err)
			conn.WriteTo(AppendError(nil, CodeIllegalOperation, "Illegal TFTP operation"), peer)
			continue
		}
		if s.maxXfers > 0 && running.Load() >= int64(s.maxXfers) {
			s.refused()
			s.logf("tftp: %s: %q refused: %d transfers running already", peer, req.Filename, s.maxXfers)
			conn.WriteTo(AppendError(nil, CodeNotDefined, "too many transfers"), peer)
			continue
		}
		running.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			tc, err := dial(peer)
			if err != nil {
				s.logf("tftp: %s: open transfer socket: %v", peer, err)
				return
			}
			defer tc.Close()
			mu.Lock()
			if closed {
				mu.Unlock()
				return
			}
			active[tc] = struct{}{}
			mu.Unlock()
			defer func() {
				mu.Lock()
				delete(active, tc)
				mu.Unlock()
			}()
			s.serveRequest(tc, peer, req)
		}()
	}
}

// serveRequest answers one request over the transfer socket tc.
func (s *Server) serveRequest(tc net.Conn, peer net.Addr, req Request) {
	refuse := func(code ErrorCode, msg, why string) {
		s.logf("tftp: %s: %q refused: %s", peer, req.Filename, why)
		tc.Write(AppendError(nil, code, msg))
	}
	if req.Op != OpRRQ {
		refuse(CodeAccessViolation, "Access violation", "write request to a read-only server")
		return
	}
	// libslirp, and the slirp in VDE2 before it, serve octet mode only.
	if !strings.EqualFold(req.Mode, "octet") {
		refuse(CodeIllegalOperation, "Unsupported transfer mode", "mode "+req.Mode)
		return
	}
	name, ok := cleanName(req.Filename)
	if !ok {
		refuse(CodeAccessViolation, "Access violation", "name with .. or naming a directory")
		return
	}
	f, size, err := s.open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
			refuse(CodeFileNotFound, "File not found", err.Error())
		} else {
			refuse(CodeAccessViolation, "Access violation", err.Error())
		}
		return
	}
	defer f.Close()

	t := &transfer{
		conn:    tc,
		timeout: s.timeout,
		retries: s.retries,
		blksize: BlockSize,
		rbuf:    make([]byte, 4+BlockSize),
	}
	oack := s.negotiate(req, size, t)
	start := time.Now()
	if len(oack) > 0 {
		// RFC 2347: the client answers an OACK with ACK 0, or ERROR to turn it down (PXE
		// ROMs ask for tsize alone that way, then request again).
		if err := t.exchange(AppendOACK(nil, oack), 0); err != nil {
			s.logf("tftp: %s: %q: after OACK: %v", peer, req.Filename, err)
			return
		}
	}
	blocks, err := t.send(f)
	if err != nil {
		s.logf("tftp: %s: %q: block %d: %v", peer, req.Filename, blocks, err)
		return
	}
	s.logf("tftp: %s: sent %q (%d bytes, %d blocks of %d) in %v",
		peer, req.Filename, size, blocks, t.blksize, time.Since(start).Round(time.Millisecond))
}

// cleanName applies the C slirp's checks to a requested name (no leading "../", no
// "/../" inside) and the obvious completions of them (no bare ".." or trailing "/.."),
// then strips leading slashes: "/pxelinux.0" is "pxelinux.0" under the root. A name that
// is empty afterwards, or ends with a slash, names a directory and is refused too.
// os.Root then keeps symbolic links from leading outside the root.
func cleanName(name string) (string, bool) {
	bad := func(n string) bool {
		return n == ".." || strings.HasPrefix(n, "../") || strings.Contains(n, "/../") ||
			strings.HasSuffix(n, "/..")
	}
	if bad(name) {
		return "", false
	}
	name = strings.TrimLeft(name, "/")
	if name == "" || bad(name) || strings.HasSuffix(name, "/") {
		return "", false
	}
	return name, true
}

var errNotRegular = errors.New("not a regular file")

// open opens name beneath the root for reading and returns it with its size. The root is
// opened anew for each request, as the C slirp builds a path for each, so a replaced
// directory is served as it is now. O_NONBLOCK keeps a FIFO from blocking the open; it
// makes no difference to regular files, the only kind served.
func (s *Server) open(name string) (*os.File, int64, error) {
	root, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, 0, err
	}
	defer root.Close()
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", name, errNotRegular)
	}
	return f, fi.Size(), nil
}

// negotiate applies the options of req to t and returns those to acknowledge, in the
// order the client sent them, spelt as it spelt them. Unknown options, repeated options
// and values out of range are ignored (RFC 2347).
func (s *Server) negotiate(req Request, size int64, t *transfer) []Option {
	var oack []Option
	seen := make(map[string]bool)
	for _, o := range req.Options {
		name := strings.ToLower(o.Name)
		if seen[name] {
			continue
		}
		seen[name] = true
		v, err := strconv.ParseUint(o.Value, 10, 32)
		if err != nil {
			continue
		}
		switch name {
		case "blksize": // RFC 2348
			if v < MinBlockSize {
				continue
			}
			t.blksize = int(min(v, uint64(s.maxBlock)))
			oack = append(oack, Option{o.Name, strconv.Itoa(t.blksize)})
		case "tsize": // RFC 2349: the client sends 0 and learns the size
			oack = append(oack, Option{o.Name, strconv.FormatInt(size, 10)})
		case "timeout": // RFC 2349: seconds, 1..255
			if v < 1 || v > 255 {
				continue
			}
			t.timeout = time.Duration(v) * time.Second
			oack = append(oack, Option{o.Name, strconv.FormatUint(v, 10)})
		}
	}
	return oack
}

// transfer is the sending side of one read request.
type transfer struct {
	conn    net.Conn // connected to the client's transfer ID
	timeout time.Duration
	retries int
	blksize int
	rbuf    []byte // for ACKs, and ERRORs with their messages (longer ones are cut)
}

// errTimeout ends a transfer whose client stopped answering.
var errTimeout = errors.New("no ACK, giving up")

// peerError is an ERROR packet the client sent us.
type peerError struct {
	code ErrorCode
	msg  string
}

func (e peerError) Error() string {
	return fmt.Sprintf("client sent ERROR %d %q", e.code, e.msg)
}

// send sends r in DATA blocks, each after the previous one was acknowledged, and returns
// how many blocks went. The last block is shorter than blksize, empty if the size is a
// multiple of it. Block numbers wrap from 65535 to 0, as tftp-hpa, iPXE and most ROMs
// expect for files beyond 65535 blocks.
func (t *transfer) send(r io.Reader) (blocks uint64, err error) {
	br := bufio.NewReaderSize(r, max(64<<10, t.blksize))
	pkt := make([]byte, 4+t.blksize)
	for block := uint16(1); ; block++ {
		n, err := io.ReadFull(br, pkt[4:])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			t.conn.Write(AppendError(nil, CodeNotDefined, "Read error"))
			return blocks, err
		}
		AppendData(pkt[:0], block, nil) // header only; the data is already in place
		blocks++
		if err := t.exchange(pkt[:4+n], block); err != nil {
			return blocks, err
		}
		if n < t.blksize {
			return blocks, nil
		}
	}
}

// exchange sends pkt and waits for the ACK of block, resending pkt each time the timeout
// passes without it, up to retries times. Other ACKs (duplicates of earlier blocks) are
// ignored rather than answered, so a delayed ACK cannot double the traffic (the
// "Sorcerer's Apprentice" bug of RFC 1350). An ERROR from the client ends the transfer.
func (t *transfer) exchange(pkt []byte, block uint16) error {
	for try := 0; ; try++ {
		if _, err := t.conn.Write(pkt); err != nil {
			return err
		}
		if err := t.conn.SetReadDeadline(time.Now().Add(t.timeout)); err != nil {
			return err
		}
		for {
			n, err := t.conn.Read(t.rbuf)
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					return err
				}
				if try >= t.retries {
					return errTimeout
				}
				break // resend
			}
			b := t.rbuf[:n]
			op, _ := OpcodeOf(b)
			switch op {
			case OpACK:
				if got, err := ParseAck(b); err == nil && got == block {
					return nil
				}
			case OpERROR:
				if code, msg, err := ParseError(b); err == nil {
					return peerError{code, msg}
				}
			}
		}
	}
}
