package switchcore

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// handshakeTimeout bounds how long a client may take to send its request.
const handshakeTimeout = 5 * time.Second

func (s *Switch) acceptCtl() {
	s.acceptLoop(s.ctlLn, s.ctlPath(), false, s.serveCtl)
}

func (s *Switch) ctlPath() string { return s.ctlDir + "/ctl" }

// serveCtl runs one control connection: the request, the reply, then waiting for EOF,
// which ends the endpoint. Every refusal closes the connection and logs one line.
func (s *Switch) serveCtl(c *net.UnixConn) {
	id := connFD(c)
	raw, err := readRequest(c)
	if err != nil && len(raw) == 0 && errors.Is(err, io.EOF) {
		c.Close() // a liveness probe (connect, close): nothing to report
		return
	}
	if err != nil {
		s.logf("control connection %d: %v", id, err)
		c.Close()
		return
	}
	req, err := wire.ParseRequest(raw)
	if err != nil {
		s.logf("control connection %d: %v", id, err)
		c.Close()
		return
	}
	ep, err := s.attach(c, id, req)
	if err != nil {
		s.logf("control connection %d: %v", id, err)
		s.refusedForWant(err)
		c.Close()
		return
	}
	s.endSpell(s.ctlPath())
	s.waitCtl(ep)
}

// waitCtl waits for the end of ep's control connection (EOF, or anything written on it),
// which ends the endpoint. A hand-over stops it with a read deadline and no end
// (handover.go); startEndpointLocked counted it.
func (s *Switch) waitCtl(ep *endpoint) {
	defer s.ho.wg.Done()
	var b [256]byte
	n, err := ep.ctl.Read(b[:])
	if s.ho.paused.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	if err == nil && n > 0 {
		s.logf("port %d: endpoint %d wrote %d bytes on its control connection after the handshake; closing it", ep.port.num, ep.id, n)
	}
	s.detach(ep)
}

// readRequest reads one request. C clients send it with one send(), so one read normally
// has it all; a request split across writes is reassembled up to its fixed part.
func readRequest(c *net.UnixConn) ([]byte, error) {
	buf := make([]byte, wire.MaxRequestSize)
	c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	defer c.SetReadDeadline(time.Time{})
	n, reads := 0, 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		reads++
		if need := requestNeed(buf[:n]); n >= need || n == len(buf) {
			break
		}
		if err != nil {
			if n == 0 {
				return nil, fmt.Errorf("closed before sending a request: %w", err)
			}
			return nil, fmt.Errorf("short request (%d bytes): %v", n, err)
		}
	}
	if reads > 1 && n < len(buf) {
		// The description may trail the fixed part by a moment.
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		m, _ := c.Read(buf[n:])
		n += m
	}
	return buf[:n], nil
}

// requestNeed is how many bytes the request in b needs before it can be parsed.
func requestNeed(b []byte) int {
	if len(b) < 8 {
		return 8
	}
	switch hostWord(b[4:8]) {
	case wire.Version3, wire.VersionOffload:
		return wire.V3FixedSize
	case 0, 1:
		return wire.V1FixedSize
	}
	return 8 // a bad version is reported by ParseRequest
}

func hostWord(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func connFD(c *net.UnixConn) int {
	id := -1
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { id = int(fd) })
	}
	return id
}

// newDataChannel wraps a client's connected data socket: a plain datagram channel (dg is
// it too: the switch's batched path), or one with offloads, which a client of ours asked
// for (wire.VersionOffload): an OffloadEndpoint that takes GSO packets whole. Either gets
// a queue for what a slow receiver's socket cannot take now (outQueue).
func newDataChannel(fd int, path string, offload bool, poll *wire.RuntimePoll) (data wire.Endpoint, dg *wire.Datagram, err error) {
	if offload {
		od, err := wire.NewOffloadDatagram(fd, path, poll)
		return od, nil, err
	}
	d, err := wire.NewDatagramPoll(fd, path, poll)
	return d, d, err
}

// attach performs the switch side of the handshake (shared/spec/wire-protocol.md §5.2).
func (s *Switch) attach(c *net.UnixConn, id int, req wire.Request) (*endpoint, error) {
	if req.Path == "" {
		return nil, errors.New("request names no data socket")
	}
	peer, _, err := peerCred(c)
	if err != nil {
		return nil, fmt.Errorf("control connection: %v", err)
	}
	fd, uid, err := connectClient(req.Path, peer)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		unix.Close(fd)
		return nil, errors.New("switch is shutting down")
	}
	if s.ho.paused.Load() {
		unix.Close(fd)
		return nil, errHandingOver
	}
	p, created, err := s.allocPortLocked(req, uid)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	undo := func() {
		unix.Close(fd)
		if created {
			s.ports[p.num] = nil
		}
	}
	id = s.freeIDLocked(id)
	path := s.dataPathLocked(p.num, fd)
	os.Remove(path)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		undo()
		return nil, fmt.Errorf("Binding to data socket %s: %s", path, errText(err))
	}
	if err := s.dataPerms(path, uid, req.Type == wire.ReqNewPort0); err != nil {
		os.Remove(path)
		undo()
		return nil, err
	}
	reply, err := wire.AppendReply(nil, path)
	if err != nil {
		os.Remove(path)
		undo()
		return nil, err
	}
	data, dg, err := newDataChannel(fd, path, req.Offload, &s.poll)
	if err != nil {
		os.Remove(path)
		undo()
		return nil, err
	}
	// The endpoint forwards before the client hears the reply: clients send at once, and a
	// frame to a port not yet in the view would be lost.
	ep := &endpoint{id: id, port: p, module: "unix prog", descr: req.Description, ctl: c, data: data, dgram: dg, dataPath: path, slot: s.allocSlotLocked()}
	ep.queue = newOutQueue(ep, &s.queueBytes) // plain or offload channel alike
	wasActive := p.active()
	p.eps = append([]*endpoint{ep}, p.eps...)
	p.curUser = uid
	if created {
		s.event(catPortAdd, fmt.Sprintf("%02d", p.num))
	}
	if !wasActive {
		s.flushPortVLANsLocked(p)
	}
	s.publishLocked()
	s.startEndpointLocked(ep) // the caller runs waitCtl
	c.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	_, err = c.Write(reply)
	c.SetWriteDeadline(time.Time{})
	if err != nil {
		// Never announced, so undone without a port/ep/- event.
		s.ho.wg.Done() // no waitCtl
		ep.closed.Store(true)
		s.unplugLocked(ep)
		s.release(ep)
		return nil, fmt.Errorf("port %d: reply: %v", p.num, err)
	}
	s.event(catEPAdd, fmt.Sprintf("Port %02d FD %2d", p.num, id))
	s.event(catPortDescr, fmt.Sprintf("Port %02d FD %2d -> \"%s\"", p.num, id, ep.descr))
	return ep, nil
}

// dataPerms gives the switch-side data socket the modes of the C switch: a root switch
// hands the socket to the client's uid; port 0 gets the mgmt socket's permissions.
func (s *Switch) dataPerms(path string, uid int, port0 bool) error {
	mode, owner := s.sockMode, -1
	if os.Geteuid() == 0 {
		mode, owner = s.sockMode&0700, uid
	}
	if owner >= 0 || s.cfg.Group >= 0 {
		if err := os.Lchown(path, owner, s.cfg.Group); err != nil {
			return fmt.Errorf("chown %s: %s", path, errText(err))
		}
	}
	if err := unix.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %s: %s", path, errText(err))
	}
	if port0 {
		if s.cfg.MgmtGroup >= 0 {
			os.Lchown(path, -1, s.cfg.MgmtGroup)
		}
		unix.Chmod(path, s.cfg.MgmtMode)
	}
	return nil
}

// portError is a refused port request; the C switch would leave the client hanging.
type portError struct {
	port int
	err  unix.Errno
	why  string
}

func (e *portError) Error() string {
	return fmt.Sprintf("port %d refused: %s (%s)", e.port, e.why, strerror(e.err))
}

// allocPortLocked picks the port for a request (shared/spec/vde_switch.md §7.1).
func (s *Switch) allocPortLocked(req wire.Request, uid int) (p *Port, created bool, err error) {
	n := req.Port
	switch {
	case req.Type == wire.ReqNewPort0:
		n = 0
	case n < 0 || n >= s.numPorts:
		return nil, false, &portError{n, unix.EINVAL, fmt.Sprintf("out of range 1..%d", s.numPorts-1)}
	case n == 0:
		for i := 1; i < s.numPorts; i++ {
			q := s.ports[i]
			if q == nil {
				s.ports[i] = newPort(i)
				return s.ports[i], true, nil
			}
			if !q.active() && q.allocatable && s.aclAllows(q, uid) {
				return q, false, nil
			}
		}
		return nil, false, &portError{0, unix.ENOSPC, "no free port"}
	}
	p = s.ports[n]
	if p == nil {
		p = newPort(n)
		s.ports[n] = p
		created = true
	}
	if p.active() {
		if p.curUser != uid {
			return nil, false, &portError{n, unix.EADDRINUSE, fmt.Sprintf("in use by uid %d, request from uid %d", p.curUser, uid)}
		}
		return p, false, nil
	}
	if !s.aclAllows(p, uid) {
		if created {
			s.ports[n] = nil
		}
		return nil, false, &portError{n, unix.EPERM, fmt.Sprintf("access control denies uid %d", uid)}
	}
	return p, created, nil
}

// aclAllows applies port/setuser and port/setgroup to a client uid.
func (s *Switch) aclAllows(p *Port, uid int) bool {
	if (p.user < 0 && p.group < 0) || uid == 0 || uid == p.user {
		return true
	}
	return p.group >= 0 && uidInGroup(uid, p.group)
}

func uidInGroup(uid, gid int) bool {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return false
	}
	if u.Gid == strconv.Itoa(gid) {
		return true
	}
	gids, err := u.GroupIds()
	if err != nil {
		return false
	}
	for _, g := range gids {
		if g == strconv.Itoa(gid) {
			return true
		}
	}
	return false
}

func (s *Switch) allocSlotLocked() int {
	if n := len(s.freeSlot); n > 0 {
		slot := s.freeSlot[n-1]
		s.freeSlot = s.freeSlot[:n-1]
		return slot
	}
	s.nextSlot++
	return s.nextSlot - 1
}

// detach ends an endpoint: the client sees EOF on its control stream, the data socket is
// closed and unlinked, and the port goes inactive (keeping its configuration) if it was
// the last one. Safe to call more than once.
func (s *Switch) detach(ep *endpoint) {
	if ep.closed.Swap(true) {
		return
	}
	s.mu.Lock()
	s.unplugLocked(ep)
	s.mu.Unlock()
	s.release(ep)
	s.event(catEPDel, fmt.Sprintf("Port %02d FD %2d", ep.port.num, ep.id))
}

// unplugLocked takes ep out of its port and the forwarding view.
func (s *Switch) unplugLocked(ep *endpoint) {
	p := ep.port
	for i, e := range p.eps {
		if e == ep {
			p.eps = append(p.eps[:i:i], p.eps[i+1:]...)
			break
		}
	}
	if !p.active() {
		p.curUser = -1
		s.flushPortVLANsLocked(p)
		for _, e := range s.macs.flushPort(p.num) {
			s.hashEvent(catHashDel, e)
		}
		s.portGone(p.num)
	}
	s.freeSlot = append(s.freeSlot, ep.slot)
	s.publishLocked()
}

// release closes ep's sockets (the client sees EOF) and removes its data socket name.
func (s *Switch) release(ep *endpoint) {
	if ep.ctl != nil {
		ep.ctl.Close()
	}
	if ep.queue != nil {
		ep.queue.stop()
	}
	// The name first: it carries the descriptor's number, and once the descriptor is closed
	// a new endpoint of the same port may get that number and bind the same name.
	if ep.dataPath != "" {
		os.Remove(ep.dataPath)
	}
	ep.data.Close()
}

// flushPortVLANsLocked forgets the addresses of every VLAN p belongs to: a port joining or
// leaving changes where those addresses may be (the C switch does the same).
func (s *Switch) flushPortVLANsLocked(p *Port) {
	vl := p.untagged
	if vl != NoVLAN {
		s.flushVLAN(vl)
	}
	for v := 0; v < maxVLANs; v++ {
		if p.tagged.has(uint16(v)) && uint16(v) != vl {
			s.flushVLAN(uint16(v))
		}
	}
}

func (s *Switch) flushVLAN(v uint16) {
	for _, e := range s.macs.flushVLAN(v) {
		s.hashEvent(catHashDel, e)
	}
}

// AttachEndpoint plugs an in-process endpoint (a TAP device, say) into the first free
// port, as the C switch does with -t: module and descr show in port/print, id is the
// endpoint ID port/epclose takes (the C switch uses the fd). The switch owns e from now on.
func (s *Switch) AttachEndpoint(e wire.Endpoint, id int, module, descr string) (port int, err error) {
	return s.attachEndpoint(e, id, os.Geteuid(), -1, module, descr)
}

// AttachEndpointAs plugs e into the next free port on behalf of user uid, whom the
// port's access control must admit and whom port/print names (a vhost-user frontend, by
// its socket's peer credentials). The endpoint leaves with DetachEndpoint, or when a
// read from it fails.
func (s *Switch) AttachEndpointAs(e wire.Endpoint, id, uid int, module, descr string) (port int, err error) {
	return s.attachEndpoint(e, id, uid, uid, module, descr)
}

// DetachEndpoint unplugs the in-process endpoint e, if it is still plugged in.
func (s *Switch) DetachEndpoint(e wire.Endpoint) {
	s.mu.Lock()
	var found *endpoint
	for _, p := range s.ports {
		if p == nil {
			continue
		}
		for _, ep := range p.eps {
			if ep.data == e {
				found = ep
			}
		}
	}
	s.mu.Unlock()
	if found != nil {
		s.detach(found)
	}
}

// freeIDLocked is id (a descriptor number, as in the C switch), or if a live endpoint has
// it, the next number none has. Endpoints handed over by another switch (handover.go) keep
// that switch's descriptor numbers as ids, which this process may have given to others.
func (s *Switch) freeIDLocked(id int) int {
	for {
		taken := false
		for _, ep := range s.endpointsLocked() {
			taken = taken || ep.id == id
		}
		if !taken {
			return id
		}
		id++
	}
}

// dataPathLocked names the data socket of a client on port bound to descriptor fd:
// <ctldir>/NNN.fd as in the C switch, or NNN.fd+k if a live endpoint's socket has that
// name. Endpoints handed over by another switch keep names made from its descriptor
// numbers; attach removes the name before binding, and a client that sends to it by name
// (libvdeplug) would lose its data path to the newcomer's socket.
func (s *Switch) dataPathLocked(port, fd int) string {
	for n := fd; ; n++ {
		path := fmt.Sprintf("%s/%03d.%d", s.ctlDir, port, n)
		taken := false
		for _, ep := range s.endpointsLocked() {
			taken = taken || ep.dataPath == path
		}
		if !taken {
			return path
		}
	}
}

func (s *Switch) attachEndpoint(e wire.Endpoint, id, uid, shownUser int, module, descr string) (port int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return 0, errors.New("switch is shutting down")
	}
	if s.ho.paused.Load() {
		return 0, errHandingOver
	}
	p, created, err := s.allocPortLocked(wire.Request{Type: wire.ReqNewControl}, uid)
	if err != nil {
		return 0, err
	}
	ep := &endpoint{id: s.freeIDLocked(id), port: p, module: module, descr: descr, data: e, slot: s.allocSlotLocked()}
	if d, ok := e.(*wire.Datagram); ok {
		ep.dgram = d
		ep.queue = newOutQueue(ep, &s.queueBytes)
	}
	p.eps = append([]*endpoint{ep}, p.eps...)
	p.curUser = shownUser // -1 for TAPs: the C switch attaches them with no user, port/print says NONE
	if created {
		s.event(catPortAdd, fmt.Sprintf("%02d", p.num))
	}
	s.flushPortVLANsLocked(p)
	s.publishLocked()
	s.startEndpointLocked(ep)
	s.event(catEPAdd, fmt.Sprintf("Port %02d FD %2d", p.num, id))
	s.event(catPortDescr, fmt.Sprintf("Port %02d FD %2d -> \"%s\"", p.num, id, descr))
	return p.num, nil
}
