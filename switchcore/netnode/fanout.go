package netnode

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

func init() {
	wire.RegisterScheme("multi", func(arg string, o wire.OpenOptions) (wire.Endpoint, error) {
		return openFanout(arg, false)
	})
	wire.RegisterScheme("bonding", func(arg string, o wire.OpenOptions) (wire.Endpoint, error) {
		return openFanout(arg, true)
	})
}

// handshakeTimeout bounds how long a joining client may take to send its request.
const handshakeTimeout = 5 * time.Second

// fanout is multi:// or bonding://: a control directory that clients join as they join a
// switch, whose links never reach each other. Every frame a link sends goes to the plug;
// every frame the plug sends goes to every link (multi) or to the next link in turn
// (bonding). Link readers hand their frames to the plug through a socketpair, so the
// plug reads them in batches from one socket.
type fanout struct {
	dir     string
	opts    Options
	bonding bool
	ln      *net.UnixListener

	mine, theirs *wire.Datagram // the plug's end of the socketpair, and the links' end

	mu     sync.Mutex
	links  atomic.Pointer[[]*link] // read by the plug's writer, replaced under mu
	closed bool
	next   atomic.Uint64 // bonding's turn
	wg     sync.WaitGroup
	once   sync.Once
}

// link is one joined client.
type link struct {
	ctl  *net.UnixConn
	data *wire.Datagram
	path string // our data socket's name, removed when the link goes
}

func openFanout(arg string, bonding bool) (wire.Endpoint, error) {
	o, err := ParseArg(arg)
	if err != nil {
		return nil, err
	}
	n := &fanout{dir: o.Dir(), opts: o, bonding: bonding}
	n.links.Store(&[]*link{})
	if err := n.listen(); err != nil {
		return nil, err
	}
	if n.mine, n.theirs, err = datagramPair("fanout"); err != nil {
		n.ln.Close()
		n.removeDir()
		return nil, err
	}
	n.wg.Add(1)
	go n.accept()
	return n, nil
}

// listen makes the directory and its ctl socket with the node's modes and group, taking
// over what a killed node left.
func (n *fanout) listen() error {
	if err := checkFree(n.dir); err != nil {
		return err
	}
	if err := os.Mkdir(n.dir, 0700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if n.opts.Group >= 0 {
		if err := os.Chown(n.dir, -1, n.opts.Group); err != nil {
			return err
		}
	}
	if err := unix.Chmod(n.dir, n.opts.DirMode); err != nil {
		return fmt.Errorf("chmod %s: %w", n.dir, err)
	}
	ctl := filepath.Join(n.dir, "ctl")
	if _, err := os.Lstat(ctl); err == nil {
		// Not listening (checkFree), but maybe in another network namespace.
		if c, err := net.DialTimeout("unix", ctl, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("%s: %w (a node is running there)", ctl, unix.EADDRINUSE)
		}
		os.Remove(ctl)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl, Net: "unix"})
	if err != nil {
		return err
	}
	ln.SetUnlinkOnClose(false)
	if n.opts.Group >= 0 {
		os.Chown(ctl, -1, n.opts.Group)
	}
	unix.Chmod(ctl, n.opts.Mode)
	n.ln = ln
	return nil
}

func (n *fanout) accept() {
	defer n.wg.Done()
	for {
		c, err := n.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // out of descriptors, say: try again
			continue
		}
		n.wg.Add(1)
		go n.serve(c)
	}
}

// serve runs one client: the handshake, then its link until either side ends it.
func (n *fanout) serve(c *net.UnixConn) {
	defer n.wg.Done()
	l, reply, err := n.handshake(c)
	if err != nil {
		c.Close()
		return
	}
	// The link takes frames before the client hears the reply: clients send at once.
	if !n.add(l) {
		l.close()
		return
	}
	n.wg.Add(1)
	go n.readLink(l)
	c.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	_, err = c.Write(reply)
	c.SetWriteDeadline(time.Time{})
	if err != nil {
		n.remove(l)
		l.close()
		return
	}
	var b [64]byte
	c.Read(b[:]) // EOF, or anything at all, ends the link (as in vdeplug4)
	n.remove(l)
	l.close()
}

// handshake is the node's side of the vde handshake (shared/spec/wire-protocol.md §5.2)
// up to the reply, which it returns: vdeplug4's node takes new-control requests only and
// ignores a port number.
func (n *fanout) handshake(c *net.UnixConn) (*link, []byte, error) {
	buf := make([]byte, wire.MaxRequestSize)
	c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	k, err := c.Read(buf)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, nil, err
	}
	req, err := wire.ParseRequest(buf[:k])
	if err != nil {
		return nil, nil, err
	}
	if req.Type != wire.ReqNewControl || req.Path == "" {
		return nil, nil, errors.New("not a new-control request")
	}
	if err := clientOwns(c, req.Path); err != nil {
		return nil, nil, err
	}
	fd, err := wire.SocketDatagram()
	if err != nil {
		return nil, nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: req.Path}); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	path := filepath.Join(n.dir, "fd"+strconv.Itoa(connFD(c)))
	os.Remove(path)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	unix.Chmod(path, n.opts.Mode)
	d, err := wire.NewDatagram(fd, path)
	if err != nil {
		os.Remove(path)
		return nil, nil, err
	}
	l := &link{ctl: c, data: d, path: path}
	reply, err := wire.AppendReply(nil, path)
	if err != nil {
		l.close()
		return nil, nil, err
	}
	return l, reply, nil
}

// clientOwns refuses a data socket the client on c does not own (unless it is root): the
// node would otherwise send frames to any socket a client names.
func clientOwns(c *net.UnixConn, path string) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return cerr
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s: not a socket", path)
	}
	if cred.Uid != 0 && cred.Uid != st.Uid {
		return fmt.Errorf("%s: owned by uid %d, not by the client (uid %d)", path, st.Uid, cred.Uid)
	}
	return nil
}

func connFD(c *net.UnixConn) int {
	id := -1
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { id = int(fd) })
	}
	return id
}

// close ends l. The name goes first: it carries the control descriptor's number, which a
// new client may get (and bind the same name with) once the descriptor is closed.
func (l *link) close() {
	os.Remove(l.path)
	l.ctl.Close()
	l.data.Close()
}

// add publishes l; false if the node is closing.
func (n *fanout) add(l *link) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	old := *n.links.Load()
	links := append(old[:len(old):len(old)], l)
	n.links.Store(&links)
	return true
}

func (n *fanout) remove(l *link) {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := *n.links.Load()
	links := make([]*link, 0, len(old))
	for _, x := range old {
		if x != l {
			links = append(links, x)
		}
	}
	n.links.Store(&links)
}

// readLink moves l's frames to the plug until l closes.
func (n *fanout) readLink(l *link) {
	defer n.wg.Done()
	bufs := make([][]byte, wire.BatchSize)
	for i := range bufs {
		bufs[i] = make([]byte, wire.MaxFrame)
	}
	sizes := make([]int, wire.BatchSize)
	out := make([][]byte, 0, wire.BatchSize)
	for {
		k, err := l.data.ReadBatch(bufs, sizes)
		if err != nil {
			return
		}
		out = out[:0]
		for i := 0; i < k; i++ {
			if sizes[i] >= wire.MinFrame {
				out = append(out, bufs[i][:sizes[i]])
			}
		}
		n.theirs.WriteBatch(out) // what the plug has no room for is lost, as in C
	}
}

// ReadBatch implements wire.Endpoint: the frames the links sent.
func (n *fanout) ReadBatch(frames [][]byte, sizes []int) (int, error) {
	return n.mine.ReadBatch(frames, sizes)
}

// WriteBatch implements wire.Endpoint: multi sends every frame on every link, bonding
// each frame on the next link in turn. A link that cannot take a frame loses it.
func (n *fanout) WriteBatch(frames [][]byte) (int, error) {
	links := *n.links.Load()
	if len(links) == 0 {
		return len(frames), nil
	}
	if !n.bonding {
		for _, l := range links {
			l.data.WriteBatch(frames)
		}
		return len(frames), nil
	}
	for i := range frames {
		l := links[n.next.Add(1)%uint64(len(links))]
		l.data.WriteBatch(frames[i : i+1])
	}
	return len(frames), nil
}

// Close implements wire.Endpoint: the links' control connections close (their plugs see
// the node go) and the directory is removed.
func (n *fanout) Close() error {
	n.once.Do(func() {
		n.mu.Lock()
		n.closed = true
		links := *n.links.Load()
		n.links.Store(&[]*link{})
		n.mu.Unlock()
		n.ln.Close()
		for _, l := range links {
			l.close()
		}
		n.mine.Close()
		n.theirs.Close()
		n.wg.Wait()
		n.removeDir()
	})
	return nil
}

func (n *fanout) removeDir() {
	os.Remove(filepath.Join(n.dir, "ctl"))
	os.Remove(n.dir)
}
