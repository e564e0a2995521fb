package vhostuser

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Peer is who connected: the frontend's credentials (SO_PEERCRED) and the descriptor
// number of its connection, as the switch's console shows an endpoint.
type Peer struct {
	PID, UID, GID int
	FD            int
}

// Server accepts frontends on a vhost-user socket; each becomes a Device.
type Server struct {
	path string
	ln   *net.UnixListener
	opt  Options

	mu         sync.Mutex
	devices    map[*Device]struct{}
	closed     bool
	paused     bool // a hand-over paused it (handover.go)
	nextSerial int  // numbers the devices' HandoverKeys
	attach     func(*Device, Peer) error
	detach     func(*Device)
	// wg counts the accept loop and each device's Serve: Close and Pause wait for them.
	wg sync.WaitGroup
}

// Listen makes the socket at path (a stale socket there is replaced), with permission mode
// and, when gid >= 0, that group.
func Listen(path string, mode os.FileMode, gid int, opt Options) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("vhost-user: %s: a server is already listening there", path)
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("vhost-user: listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("vhost-user: chmod %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("vhost-user: chown %s: %w", path, err)
		}
	}
	return &Server{path: path, ln: ln, opt: opt, devices: map[*Device]struct{}{}}, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Start serves until Close: it accepts frontends, and serves the devices a Restore
// brought. attach is called with each new device before its protocol starts (its error
// refuses the frontend); detach when a frontend is gone.
func (s *Server) Start(attach func(*Device, Peer) error, detach func(*Device)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attach, s.detach = attach, detach
	if s.closed {
		return
	}
	s.paused = false
	s.startLocked()
}

// startLocked starts the accept loop and every device's Serve. Call with mu held.
func (s *Server) startLocked() {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.accept() }()
	for d := range s.devices {
		s.serveLocked(d)
	}
}

// serveLocked runs d's protocol until the frontend goes (or a pause). Call with mu held.
func (s *Server) serveLocked(d *Device) {
	detach := s.detach
	d.gone = func() { detach(d) }
	d.parked = false
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := d.Serve()
		if err == errPaused {
			s.mu.Lock()
			d.parked = true // its Serve's use of the device is still held (users)
			s.mu.Unlock()
			return
		}
		if err != nil && s.opt.Logf != nil {
			s.opt.Logf("vhost-user %s: %v", d.name, err)
		}
		s.mu.Lock()
		delete(s.devices, d)
		s.mu.Unlock()
	}()
}

// accept takes frontends until Close or a pause.
func (s *Server) accept() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			stop := s.closed || s.paused
			s.mu.Unlock()
			if stop || errors.Is(err, net.ErrClosed) {
				return
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			// EMFILE and friends: report and go on; the frontend retries.
			if s.opt.Logf != nil {
				s.opt.Logf("vhost-user %s: accept: %v", s.path, err)
			}
			continue
		}
		peer := peerOf(c)
		d, err := NewDevice(c, fmt.Sprintf("%s pid %d", s.path, peer.PID), s.opt)
		if err != nil {
			c.Close()
			if s.opt.Logf != nil {
				s.opt.Logf("%v", err)
			}
			continue
		}
		s.mu.Lock()
		d.key = fmt.Sprintf("%s#%d", s.path, s.nextSerial)
		s.nextSerial++
		s.mu.Unlock()
		if err := s.attach(d, peer); err != nil {
			if s.opt.Logf != nil {
				s.opt.Logf("vhost-user %s: frontend pid %d refused: %v", s.path, peer.PID, err)
			}
			d.Close()
			d.leave()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.detach(d)
			d.Close()
			d.leave()
			continue
		}
		s.devices[d] = struct{}{}
		if s.paused { // paused while attaching: it starts paused, and Resume serves it
			d.pausing.Store(true)
		}
		s.serveLocked(d)
		s.mu.Unlock()
	}
}

// Close stops accepting, disconnects every frontend and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ds := s.deviceList()
	s.mu.Unlock()
	err := s.ln.Close()
	for _, d := range ds {
		d.Close()
	}
	// A device whose Serve ran on sees the close and ends itself; one whose Serve had
	// paused (or that a Restore made) is ended here.
	s.leaveParked(ds)
	return err
}

// leaveParked waits for the devices' Serve goroutines, then ends the use of those whose
// Serve had paused or never ran (their own Serve ends the others).
func (s *Server) leaveParked(ds []*Device) {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		if d.parked {
			d.parked = false
			d.leave()
		}
	}
}

func peerOf(c *net.UnixConn) Peer {
	p := Peer{PID: -1, UID: -1, GID: -1, FD: -1}
	rc, err := c.SyscallConn()
	if err != nil {
		return p
	}
	rc.Control(func(fd uintptr) {
		p.FD = int(fd)
		if cr, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			p.PID, p.UID, p.GID = int(cr.Pid), int(cr.Uid), int(cr.Gid)
		}
	})
	return p
}
