// Package switchcore is the VDE switch: ports and their endpoints, frame forwarding with MAC
// learning, VLANs and hub mode, the control socket that clients attach through, and the
// management console.
package switchcore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// Defaults of the C switch.
const (
	DefaultNumPorts = 32
	DefaultHashSize = 128
	DefaultPriority = 0x8000
	DefaultMACLimit = 65536
	// MaxNumPorts bounds -n and port/setnumports: the port table is an array.
	MaxNumPorts       = 1 << 16
	defaultGCInterval = 2
	defaultExpire     = 100
)

// Switch is a running switch.
type Switch struct {
	cfg      Config
	ctlDir   string // canonical path of the control directory
	sockMode uint32
	dirMode  uint32
	mac      [6]byte
	start    time.Time
	logf     func(format string, args ...any)

	macs       *macTable
	queueBytes atomic.Int64     // buffer bytes of all output queues (outqueue.go)
	poll       wire.RuntimePoll // finds the runtime's epoll instance for the output queues
	stallWait  time.Duration    // how long readers wait for a full queue that does not drain (forward.go)
	slabs      *slabPool        // receive buffers of the socket readers (forward.go)
	hashSize   atomic.Int64
	gcInterval atomic.Int64
	expireSecs atomic.Int64
	gcKick     chan struct{}

	// mu guards the configuration: ports, VLANs, hub mode, slots. Every change republishes
	// the view the frame path reads.
	mu       sync.Mutex
	numPorts int
	ports    []*Port
	vlans    [maxVLANs]bool
	hub      bool
	view     atomic.Pointer[view]
	fst      *fstp      // the spanning tree, guarded by mu (fstp.go)
	lg       *loopGuard // the loop guard, guarded by mu (loopguard.go)
	freeSlot []int
	nextSlot int

	plugins plugins // pdump, iplog, dump while loaded (plugin.go)

	ctlLn   *net.UnixListener
	mgmtLn  *net.UnixListener
	reserve fdReserve // a spare descriptor to refuse clients with when out of them (accept.go)

	sessMu    sync.Mutex
	sessions  map[*session]struct{}
	debugSubs atomic.Int32 // sessions subscribed to any debug category

	done      chan struct{}
	closeOnce sync.Once
	closing   atomic.Bool

	ho handoverState // a hand-over to a new binary in progress (handover.go)
}

// New sets up the control directory, the ctl socket and the mgmt socket (if any) and starts
// accepting clients, so a client may connect as soon as New returns.
func New(cfg Config) (*Switch, error) {
	s, err := newSwitch(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.listenCtl(); err != nil {
		return nil, err
	}
	if cfg.MgmtPath != "" {
		if err := s.listenMgmt(); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.run()
	return s, nil
}

// newSwitch makes a switch of cfg with no sockets and no goroutines: New and Restore
// (handover.go) give it its listeners and then run it.
func newSwitch(cfg Config) (*Switch, error) {
	if cfg.NumPorts <= 0 {
		cfg.NumPorts = DefaultNumPorts
	}
	if cfg.NumPorts > MaxNumPorts {
		return nil, fmt.Errorf("Invalid number of ports %d (at most %d)", cfg.NumPorts, MaxNumPorts)
	}
	if cfg.HashSize <= 0 {
		cfg.HashSize = DefaultHashSize
	}
	if cfg.Priority == 0 {
		cfg.Priority = DefaultPriority
	}
	if cfg.MgmtMode == 0 {
		cfg.MgmtMode = 0600
	}
	if cfg.Version == "" {
		cfg.Version = "2.3.2"
	}
	s := &Switch{
		cfg:       cfg,
		mac:       cfg.MAC,
		start:     time.Now(),
		logf:      cfg.Log,
		macs:      newMACTable(DefaultMACLimit),
		stallWait: stallWait,
		gcKick:    make(chan struct{}, 1),
		numPorts:  cfg.NumPorts,
		ports:     make([]*Port, cfg.NumPorts),
		hub:       cfg.Hub,
		sessions:  map[*session]struct{}{},
		done:      make(chan struct{}),
	}
	s.slabs = newSlabPool()
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.mac == ([6]byte{}) {
		rand.Read(s.mac[2:])
		s.mac[0], s.mac[1] = 0x00, 0xff
	}
	s.hashSize.Store(int64(roundPow2(cfg.HashSize)))
	s.gcInterval.Store(defaultGCInterval)
	s.expireSecs.Store(defaultExpire)
	if cfg.Expire > 0 {
		s.expireSecs.Store(int64(cfg.Expire))
	}
	s.vlans[0] = true
	s.fst = newFSTP(s)
	s.fst.setOn(cfg.FSTP && !cfg.Hub)
	s.lg = newLoopGuard(s)
	s.lg.on = !cfg.NoLoopGuard
	s.sockMode, s.dirMode = socketModes(cfg)
	return s, nil
}

// run publishes the forwarding view and starts the switch's goroutines.
func (s *Switch) run() {
	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()
	s.reserve.open(false)
	s.startAcceptLoops()
	go s.gcLoop()
	go s.fstpLoop()
	go s.loopGuardLoop()
}

// socketModes derives the socket and directory modes from -m and --dirmode
// (shared/spec/vde_switch.md §3).
func socketModes(cfg Config) (sock, dir uint32) {
	switch {
	case cfg.ModeSet && cfg.DirModeSet:
		return cfg.Mode, cfg.DirMode
	case cfg.ModeSet:
		dir = 02000
		for shift := 0; shift <= 6; shift += 3 {
			if bits := (cfg.Mode >> shift) & 7; bits != 0 {
				dir |= (bits | 1) << shift
			}
		}
		return cfg.Mode, dir
	case cfg.DirModeSet:
		return cfg.DirMode & 0666, cfg.DirMode
	}
	return 0600, 02700
}

func roundPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

var staleDataSock = regexp.MustCompile(`^[0-9]{3,}\.[0-9]+$`)

// listenCtl creates the control directory and its ctl socket, reclaiming what a killed
// switch left and refusing a directory a live switch still serves.
func (s *Switch) listenCtl() error {
	dir := s.cfg.CtlDir
	if err := os.Mkdir(dir, 0777); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("Cannot create ctl directory '%s': %s", dir, errText(err))
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("Cannot resolve ctl directory '%s': %s", dir, errText(err))
	}
	if real, err = filepath.Abs(real); err != nil {
		return fmt.Errorf("Cannot resolve ctl directory '%s': %s", dir, errText(err))
	}
	s.ctlDir = real
	if s.cfg.Group >= 0 {
		if err := os.Chown(real, -1, s.cfg.Group); err != nil {
			return fmt.Errorf("Could not chown ctl directory '%s': %s", real, errText(err))
		}
	}
	if err := unix.Chmod(real, s.dirMode); err != nil {
		return fmt.Errorf("Could not chmod ctl directory '%s': %s", real, errText(err))
	}
	ctlPath := filepath.Join(real, "ctl")
	if err := reclaimSocket(ctlPath); err != nil {
		return err
	}
	// What a killed switch left: its data sockets would only collide with ours.
	if ents, err := os.ReadDir(real); err == nil {
		for _, e := range ents {
			if staleDataSock.MatchString(e.Name()) && e.Type()&os.ModeSocket != 0 {
				os.Remove(filepath.Join(real, e.Name()))
			}
		}
	}
	ln, err := listenUnix(ctlPath, s.sockMode, s.cfg.Group)
	if err != nil {
		return err
	}
	s.ctlLn = ln
	return nil
}

func (s *Switch) listenMgmt() error {
	if err := reclaimSocket(s.cfg.MgmtPath); err != nil {
		return err
	}
	ln, err := listenUnix(s.cfg.MgmtPath, s.cfg.MgmtMode, s.cfg.MgmtGroup)
	if err != nil {
		return err
	}
	s.mgmtLn = ln
	return nil
}

// reclaimSocket removes a socket file nobody answers on; one a live process serves is an error.
func reclaimSocket(path string) error {
	if _, err := os.Lstat(path); err != nil {
		return nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("Could not bind to socket '%s': Address already in use (another switch is running there)", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("Could not remove stale socket '%s': %s", path, errText(err))
	}
	return nil
}

func listenUnix(path string, mode uint32, gid int) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("Could not bind to socket '%s': %s", path, errText(err))
	}
	ln.SetUnlinkOnClose(false) // Close decides what to unlink
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			os.Remove(path)
			return nil, fmt.Errorf("Could not chown socket '%s': %s", path, errText(err))
		}
	}
	if err := unix.Chmod(path, mode); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("Could not chmod socket '%s': %s", path, errText(err))
	}
	return ln, nil
}

// CtlDir is the canonical path of the control directory.
func (s *Switch) CtlDir() string { return s.ctlDir }

// Done is closed when the switch was asked to shut down from a management session.
func (s *Switch) Done() <-chan struct{} { return s.done }

func (s *Switch) requestShutdown() {
	s.logf("Shutdown from mgmt command")
	s.closeOnce.Do(func() { close(s.done) })
}

// Close stops the switch: it closes every endpoint (clients see EOF), removes the data
// sockets, the mgmt socket and the ctl socket, and the ctl directory when it is empty.
func (s *Switch) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	s.closeOnce.Do(func() { close(s.done) })
	if s.ctlLn != nil {
		s.ctlLn.Close()
	}
	if s.mgmtLn != nil {
		s.mgmtLn.Close()
		os.Remove(s.cfg.MgmtPath)
	}
	s.closePlugins()
	s.reserve.mu.Lock()
	if s.reserve.f != nil {
		s.reserve.f.Close()
		s.reserve.f = nil
	}
	s.reserve.mu.Unlock()
	s.mu.Lock()
	var eps []*endpoint
	for _, p := range s.ports {
		if p != nil {
			eps = append(eps, p.eps...)
		}
	}
	s.mu.Unlock()
	for _, ep := range eps {
		s.detach(ep)
	}
	s.sessMu.Lock()
	for ss := range s.sessions {
		ss.closeConn()
	}
	s.sessMu.Unlock()
	if s.ctlLn != nil {
		os.Remove(filepath.Join(s.ctlDir, "ctl"))
		if err := os.Remove(s.ctlDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.logf("Could not remove ctl dir '%s': %s", s.ctlDir, errText(err))
		}
	}
	return nil
}

// now is the switch clock in whole seconds since start (the C switch's time base).
func (s *Switch) now() int64 { return int64(time.Since(s.start) / time.Second) }

// gcLoop expires MAC entries every GC interval (the C switch sweeps lazily on the next
// frame; sweeping on the timer shows fresher tables and changes nothing else).
func (s *Switch) gcLoop() {
	for {
		iv := s.gcInterval.Load()
		var tick <-chan time.Time
		if iv > 0 {
			tick = time.After(time.Duration(iv) * time.Second)
		}
		select {
		case <-s.done:
			return
		case <-s.gcKick:
			continue
		case <-tick:
		}
		for _, e := range s.macs.expire(s.now(), s.expireSecs.Load()) {
			s.hashEvent(catHashDel, e)
		}
	}
}

// errText is the glibc strerror text of err's errno when it has one.
func errText(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		return strerror(en)
	}
	return err.Error()
}
