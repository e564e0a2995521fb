package switchcore

// Hand-over to a new binary (issue 22). Handover stops the switch's accept loops, endpoint
// readers and control-connection waiters without closing a socket, so that frames and
// clients arriving meanwhile wait in the kernel's queues, and returns the switch's state
// (switchcore/handover) with duplicates of every descriptor a new switch needs. Restore
// builds that switch. The old one then either Releases its descriptors (the new one
// serves) or Resumes (the new one failed) and serves on as before.
//
// Datagram clients (the libvdeplug protocol), the switch's own TAPs (-t: the device's
// descriptor passes, tap.FromFD takes it up), in-process endpoints that can cross
// (HandoverEndpoint: vhost-user devices, whose owner hands their state over beside the
// switch's) and the loaded plugins (handover_plugins.go) are handed over; a switch with
// another in-process endpoint refuses. The spanning tree goes across too
// (handover_fstp.go). Mgmt sessions are not carried: the
// upgrader ends them (EndSessions, "9999 END OF SESSION"; the one whose upgrade command
// started the hand-over gets its answer first) only when nothing is left to fail before
// the exec, so that a hand-over that fails earlier leaves them working; the stdin console
// stays.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vde-go/vde/switchcore/handover"
	"github.com/vde-go/vde/switchcore/wire"
	"github.com/vde-go/vde/tap"
	"golang.org/x/sys/unix"
)

// handoverState is the switch's part in a hand-over.
type handoverState struct {
	// paused: the switch is stopped for a hand-over: readers, waiters and accept loops
	// return at their deadline instead of ending anything, and no client may attach.
	paused atomic.Bool
	// wg counts the goroutines a hand-over stops: the accept loops and each endpoint's
	// reader and control waiter.
	wg sync.WaitGroup
	// upgrade is what the console's upgrade command runs (SetUpgrade); nil: the command
	// is not implemented, as in the C switch.
	upgrade atomic.Pointer[func(path string) error]
}

// SetUpgrade installs fn as the console's `upgrade [PATH]` (root and the switch's own
// user only): vde_switch's exec in place (applets/switch_upgrade.go). fn returns only on
// failure, the switch serving on; its error is logged.
func (s *Switch) SetUpgrade(fn func(path string) error) { s.ho.upgrade.Store(&fn) }

func cmdUpgrade(c *cmdCtx) error {
	fn := c.s.ho.upgrade.Load()
	if fn == nil {
		return unix.ENOSYS
	}
	// As for shutdown: replacing the switch's binary is its owner's decision.
	if c.ss.peer > 0 && c.ss.peer != os.Geteuid() {
		c.s.logf("mgmt: upgrade from uid %d refused (only uid 0 or %d)", c.ss.peer, os.Geteuid())
		return unix.EPERM
	}
	// EndSessions answers this session before it ends the others.
	c.ss.upgrading.Store(true)
	defer c.ss.upgrading.Store(false)
	if err := (*fn)(strings.TrimSpace(c.arg)); err != nil {
		c.s.logf("mgmt: %v", err)
		var en unix.Errno
		if errors.As(err, &en) {
			return en
		}
		return unix.ECANCELED
	}
	return nil
}

var errHandingOver = errors.New("switch is handing over to a new binary")

// HandoverEndpoint is an in-process endpoint that can cross a hand-over: its owner hands
// its state over (vhost-user servers: applets/switch_vhost.go) and finds it again by its
// key for the new switch (Config.InProcess); the switch carries its port, and stops its
// reader with a read deadline in the past (the zero time lets it read again).
type HandoverEndpoint interface {
	wire.Endpoint
	HandoverKey() string
	SetReadDeadline(t time.Time) error
}

// queueDrainWait bounds how long Handover lets the output queues send what they hold:
// frames still queued after it are lost to the receivers (counted nowhere).
const queueDrainWait = 50 * time.Millisecond

// startAcceptLoops starts the accept loops of the ctl and mgmt sockets.
func (s *Switch) startAcceptLoops() {
	s.ho.wg.Add(1)
	go func() { defer s.ho.wg.Done(); s.acceptCtl() }()
	if s.mgmtLn != nil {
		s.ho.wg.Add(1)
		go func() { defer s.ho.wg.Done(); s.acceptMgmt() }()
	}
}

// startEndpointLocked starts ep's reader and counts it; for an endpoint with a control
// connection it also counts the waiter (waitCtl), which the caller runs.
func (s *Switch) startEndpointLocked(ep *endpoint) {
	s.ho.wg.Add(1)
	if ep.ctl != nil {
		s.ho.wg.Add(1)
	}
	go func() { defer s.ho.wg.Done(); s.readLoop(ep) }()
}

// endpointsLocked lists every endpoint, by port.
func (s *Switch) endpointsLocked() []*endpoint {
	var eps []*endpoint
	for _, p := range s.ports {
		if p != nil {
			eps = append(eps, p.eps...)
		}
	}
	return eps
}

// Handover stops the switch for a hand-over and returns its encoded state and the
// descriptors that go with it (duplicates, close-on-exec: the caller passes them on and
// closes them). Nothing is closed and no client notices beyond the pause. On success the
// caller either Releases the switch, once the new one serves, or Resumes it.
func (s *Switch) Handover() (state []byte, files []*os.File, err error) {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return nil, nil, errors.New("handover: switch is shutting down")
	}
	if s.ho.paused.Load() {
		s.mu.Unlock()
		return nil, nil, errors.New("handover: a hand-over is in progress already")
	}
	eps := s.endpointsLocked()
	for _, ep := range eps {
		if !handedOver(ep) {
			s.mu.Unlock()
			return nil, nil, fmt.Errorf("handover: port %d: endpoint %d (%s) is neither a datagram client, a TAP nor a vhost-user device: this version cannot hand it over", ep.port.num, ep.id, ep.module)
		}
	}
	s.ho.paused.Store(true)
	s.mu.Unlock()

	// A deadline in the past wakes every blocked accept and read; with paused set they
	// return without ending anything.
	past := time.Unix(1, 0)
	s.ctlLn.SetDeadline(past)
	if s.mgmtLn != nil {
		s.mgmtLn.SetDeadline(past)
	}
	for _, ep := range eps {
		setReadDeadline(ep, past)
	}
	s.ho.wg.Wait()
	// What the readers forwarded last may wait in output queues: let the writers send it.
	deadline := time.Now().Add(queueDrainWait)
	for _, ep := range eps {
		for ep.queue != nil && ep.queue.pending.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}

	s.mu.Lock()
	st, files, err := s.snapshotLocked()
	if err == nil {
		err = s.snapshotFSTPLocked(st) // handover_fstp.go
	}
	s.mu.Unlock()
	if err == nil {
		files, err = s.snapshotPlugins(st, files) // handover_plugins.go
	}
	if err == nil {
		state, err = handover.Encode(st)
	}
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		s.Resume()
		return nil, nil, fmt.Errorf("handover: %w", err)
	}
	return state, files, nil
}

// handedOver says whether a hand-over can carry ep: a datagram client, a TAP, or an
// in-process HandoverEndpoint.
func handedOver(ep *endpoint) bool {
	if ep.ctl != nil {
		_, offload := ep.data.(*wire.OffloadDatagram)
		return ep.dgram != nil || offload
	}
	switch ep.data.(type) {
	case *tap.Device, HandoverEndpoint:
		return ep.ctl == nil
	}
	return false
}

// setReadDeadline sets the read deadline of ep's sockets or device (handedOver's kinds).
func setReadDeadline(ep *endpoint, t time.Time) {
	if ep.ctl != nil {
		ep.ctl.SetReadDeadline(t)
	}
	switch d := ep.data.(type) {
	case *wire.Datagram:
		d.SetReadDeadline(t)
	case *wire.OffloadDatagram:
		d.SetReadDeadline(t)
	case *tap.Device:
		d.SetReadDeadline(t)
	case HandoverEndpoint:
		d.SetReadDeadline(t)
	}
}

// goodbyeWait bounds how long EndSessions waits for the mgmt sessions' goodbyes to be
// written: a client that reads nothing gets a bare EOF instead.
const goodbyeWait = 50 * time.Millisecond

// EndSessions ends every mgmt session as the C switch ends one, with "9999 END OF
// SESSION", before an exec cuts it; the session whose upgrade command runs gets "1000
// Success" first, and nothing after. The stdin console and rc files are left alone. Call
// it at the last moment before the point of no return (right before the exec), not
// earlier: should anything fail after it, the sessions are over all the same, while a
// hand-over that fails before it (the check, Handover, the memfd) leaves them working.
func (s *Switch) EndSessions() {
	s.sessMu.Lock()
	var ended []*session
	for ss := range s.sessions {
		if ss.conn == nil || ss.console {
			continue
		}
		ended = append(ended, ss)
	}
	s.sessMu.Unlock()
	deadline := time.Now().Add(goodbyeWait)
	past := time.Unix(1, 0)
	for _, ss := range ended {
		ss.conn.SetWriteDeadline(deadline)
		if ss.upgrading.Load() {
			ss.goodbye(statusLine(nil) + endSession + "\n")
		} else {
			ss.goodbye(endSession + "\n")
		}
		// Its reader wakes (once the upgrade command returned, for the asker), ends the
		// session and closes the connection after the goodbye is written (serveMgmt).
		ss.conn.SetReadDeadline(past)
	}
	for _, ss := range ended {
		select {
		case <-ss.said:
		case <-time.After(time.Until(deadline)):
		}
	}
}

// snapshotLocked gathers the state and duplicates the descriptors.
func (s *Switch) snapshotLocked() (*handover.State, []*os.File, error) {
	st := &handover.State{
		Options: handover.Options{
			NumPorts:    s.numPorts,
			FlowControl: int(s.cfg.FlowControl),
			MAC:         net.HardwareAddr(s.mac[:]).String(),
			Priority:    s.cfg.Priority,
			FSTP:        s.fst.on,
			LoopGuard:   s.lg.on,
			HashSize:    int(s.hashSize.Load()),
			CtlDir:      s.ctlDir,
			SockMode:    s.sockMode,
			DirMode:     s.dirMode,
			Group:       s.cfg.Group,
			MgmtPath:    s.cfg.MgmtPath,
			MgmtMode:    s.cfg.MgmtMode,
			MgmtGroup:   s.cfg.MgmtGroup,
		},
		UptimeNanos: int64(time.Since(s.start)),
		MgmtFile:    -1,
		Hub:         s.hub,
		MACTable: handover.MACTable{
			Limit:      s.macs.limit.Load(),
			MinPersist: s.macs.minPers.Load(),
			ExpireSecs: s.expireSecs.Load(),
			GCInterval: s.gcInterval.Load(),
			NotLearned: s.macs.full.Load(),
		},
	}
	var files []*os.File
	fail := func(err error) (*handover.State, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	add := func(name string, rc syscall.RawConn) (int, error) {
		f, err := dupFile(rc, name)
		if err != nil {
			return -1, err
		}
		files = append(files, f)
		st.Files = append(st.Files, name)
		return len(files) - 1, nil
	}
	var err error
	if st.CtlFile, err = add("ctl", mustRaw(s.ctlLn)); err != nil {
		return fail(err)
	}
	if s.mgmtLn != nil {
		if st.MgmtFile, err = add("mgmt", mustRaw(s.mgmtLn)); err != nil {
			return fail(err)
		}
	}
	for v, on := range s.vlans {
		if on {
			st.VLANs = append(st.VLANs, uint16(v))
		}
	}
	for _, p := range s.ports {
		if p == nil {
			continue
		}
		hp := handover.Port{Num: p.num, Untagged: p.untagged, Allocatable: p.allocatable, User: p.user, Group: p.group, CurUser: p.curUser,
			Counters: handover.Counters{InPkts: p.counters.inPkts.Load(), InBytes: p.counters.inBytes.Load(), OutPkts: p.counters.outPkts.Load(),
				OutBytes: p.counters.outBytes.Load(), Drops: p.counters.drops.Load(), Bad: p.counters.bad.Load()}}
		for v := 0; v < maxVLANs; v++ {
			if p.tagged.has(uint16(v)) {
				hp.Tagged = append(hp.Tagged, uint16(v))
			}
		}
		// p.eps lists the newest first; the state lists them oldest first, so that a
		// restore that prepends each rebuilds the same order.
		for i := len(p.eps) - 1; i >= 0; i-- {
			ep := p.eps[i]
			he := handover.Endpoint{ID: ep.id, Module: ep.module, Descr: ep.descr, DataPath: ep.dataPath, UID: p.curUser}
			if h, ok := ep.data.(HandoverEndpoint); ok {
				he.InProcess, he.CtlFile, he.DataFile = h.HandoverKey(), -1, -1
				hp.Endpoints = append(hp.Endpoints, he)
				continue
			}
			if d, ok := ep.data.(*tap.Device); ok {
				he.TAP, he.CtlFile = &handover.TAP{Name: d.Name(), VnetHdr: d.VnetHdr()}, -1
				rc, _ := d.SyscallConn()
				if he.DataFile, err = add(fmt.Sprintf("port %d endpoint %d TAP %s", p.num, ep.id, d.Name()), rc); err != nil {
					return fail(err)
				}
				hp.Endpoints = append(hp.Endpoints, he)
				continue
			}
			if he.CtlFile, err = add(fmt.Sprintf("port %d endpoint %d control", p.num, ep.id), mustRaw(ep.ctl)); err != nil {
				return fail(err)
			}
			data := ep.dgram
			if od, ok := ep.data.(*wire.OffloadDatagram); ok {
				data, he.Offload = od.Datagram, true
			}
			if he.DataFile, err = add(fmt.Sprintf("port %d endpoint %d data", p.num, ep.id), data.RawConn()); err != nil {
				return fail(err)
			}
			hp.Endpoints = append(hp.Endpoints, he)
		}
		st.Ports = append(st.Ports, hp)
	}
	now := s.now()
	for _, e := range s.macs.snapshot(1) {
		m := e.key.mac()
		st.MACs = handover.AppendMAC(st.MACs, handover.MACEntry{MAC: m, VLAN: e.key.vlan(), Port: e.port, Age: now - e.lastSeen.Load(), Home: int(e.home)})
	}
	return st, files, nil
}

type syscallConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// mustRaw is c's raw connection; the net package's sockets always have one (nil would
// make dupFile fail with a clear error).
func mustRaw(c syscallConner) syscall.RawConn {
	rc, _ := c.SyscallConn()
	return rc
}

// dupFile duplicates the descriptor behind rc (close-on-exec; a hand-over by exec
// clears that on what it passes).
func dupFile(rc syscall.RawConn, name string) (*os.File, error) {
	if rc == nil {
		return nil, fmt.Errorf("%s: no descriptor", name)
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if derr != nil {
		return nil, fmt.Errorf("%s: dup: %w", name, derr)
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// Resume makes a switch stopped by Handover serve again, exactly as before: the
// hand-over failed. The descriptors Handover returned are the caller's to close.
func (s *Switch) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ho.paused.Load() || s.closing.Load() {
		return errors.New("resume: the switch is not stopped for a hand-over")
	}
	s.ctlLn.SetDeadline(time.Time{})
	if s.mgmtLn != nil {
		s.mgmtLn.SetDeadline(time.Time{})
	}
	eps := s.endpointsLocked()
	for _, ep := range eps {
		setReadDeadline(ep, time.Time{})
	}
	s.ho.paused.Store(false)
	s.startAcceptLoops()
	for _, ep := range eps {
		s.startEndpointLocked(ep)
		if ep.ctl != nil {
			go s.waitCtl(ep)
		}
	}
	return nil
}

// Release ends a switch stopped by Handover whose successor serves: it closes its own
// descriptors, unlinks nothing and tells no client (the successor holds the same sockets),
// ends its mgmt sessions and stops its goroutines. Close does nothing after it.
func (s *Switch) Release() error {
	s.mu.Lock()
	if !s.ho.paused.Load() || s.closing.Swap(true) {
		s.mu.Unlock()
		return errors.New("release: the switch is not stopped for a hand-over")
	}
	eps := s.endpointsLocked()
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.done) })
	s.ctlLn.Close()
	if s.mgmtLn != nil {
		s.mgmtLn.Close()
	}
	s.reserve.mu.Lock()
	if s.reserve.f != nil {
		s.reserve.f.Close()
		s.reserve.f = nil
	}
	s.reserve.mu.Unlock()
	for _, ep := range eps {
		ep.closed.Store(true)
		if ep.ctl != nil {
			ep.ctl.Close()
		}
		if ep.queue != nil {
			ep.queue.stop()
		}
		if d, ok := ep.data.(*tap.Device); ok {
			d.CloseHandedOver() // Close would turn the offloads off under the successor
		} else {
			ep.data.Close()
		}
	}
	s.sessMu.Lock()
	for ss := range s.sessions {
		ss.closeConn()
	}
	s.sessMu.Unlock()
	s.closePlugins() // their files are the successor's now: nothing is left to write
	return nil
}

// Restore builds a switch from the state and descriptors a Handover returned: it serves
// the same listeners and the same clients with the same ports, VLANs, MAC table and
// counters. cfg gives what the state does not hold (the log, the version string); the
// state's options win over cfg's. Restore closes files, whether it succeeds or not (it
// keeps duplicates); on failure it unlinks nothing, so the old switch can Resume.
func Restore(cfg Config, state []byte, files []*os.File) (sw *Switch, err error) {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	st, err := handover.Decode(state)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if len(files) != len(st.Files) {
		return nil, fmt.Errorf("restore: the state names %d descriptors, %d passed", len(st.Files), len(files))
	}
	o := st.Options
	mac, err := net.ParseMAC(o.MAC)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("restore: switch MAC %q: not an Ethernet address", o.MAC)
	}
	cfg.NumPorts, cfg.FlowControl, cfg.Priority, cfg.HashSize = o.NumPorts, FlowMode(o.FlowControl), o.Priority, o.HashSize
	cfg.Hub, cfg.FSTP, cfg.NoLoopGuard = st.Hub, o.FSTP, !o.LoopGuard
	copy(cfg.MAC[:], mac)
	cfg.CtlDir, cfg.Group = o.CtlDir, o.Group
	cfg.MgmtPath, cfg.MgmtMode, cfg.MgmtGroup = o.MgmtPath, o.MgmtMode, o.MgmtGroup
	s, err := newSwitch(cfg)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	s.ctlDir, s.sockMode, s.dirMode = o.CtlDir, o.SockMode, o.DirMode
	s.start = time.Now().Add(-time.Duration(st.UptimeNanos))
	s.fst.setOn(o.FSTP && !st.Hub)
	s.lg.on = o.LoopGuard
	var eps []*endpoint
	defer func() {
		if err == nil {
			return
		}
		s.closing.Store(true)
		s.closePlugins()
		if s.ctlLn != nil {
			s.ctlLn.Close()
		}
		if s.mgmtLn != nil {
			s.mgmtLn.Close()
		}
		for _, ep := range eps {
			if ep.ctl != nil {
				ep.ctl.Close()
			}
			if ep.queue != nil {
				ep.queue.stop()
			}
			if d, ok := ep.data.(*tap.Device); ok {
				d.CloseHandedOver() // the old switch may Resume with the device as it is
			} else {
				ep.data.Close()
			}
		}
	}()
	if s.ctlLn, err = fileListener(files[st.CtlFile]); err != nil {
		return nil, fmt.Errorf("restore: ctl socket: %w", err)
	}
	if st.MgmtFile >= 0 {
		if s.mgmtLn, err = fileListener(files[st.MgmtFile]); err != nil {
			return nil, fmt.Errorf("restore: mgmt socket: %w", err)
		}
	}
	s.vlans = [maxVLANs]bool{}
	for _, v := range st.VLANs {
		s.vlans[v] = true
	}
	s.vlans[0] = true
	s.hashSize.Store(int64(o.HashSize))
	s.expireSecs.Store(st.MACTable.ExpireSecs)
	s.gcInterval.Store(st.MACTable.GCInterval)
	s.macs.setLimit(int(st.MACTable.Limit))
	s.macs.minPers.Store(st.MACTable.MinPersist)
	s.macs.full.Store(st.MACTable.NotLearned)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, hp := range st.Ports {
		p := newPort(hp.Num)
		p.untagged, p.allocatable, p.user, p.group, p.curUser = hp.Untagged, hp.Allocatable, hp.User, hp.Group, hp.CurUser
		for _, v := range hp.Tagged {
			p.tagged.add(v)
		}
		c := &p.counters
		c.inPkts.Store(hp.Counters.InPkts)
		c.inBytes.Store(hp.Counters.InBytes)
		c.outPkts.Store(hp.Counters.OutPkts)
		c.outBytes.Store(hp.Counters.OutBytes)
		c.drops.Store(hp.Counters.Drops)
		c.bad.Store(hp.Counters.Bad)
		s.ports[p.num] = p
		for _, he := range hp.Endpoints {
			var ep *endpoint
			switch {
			case he.InProcess != "":
				ep, err = s.restoreInProcess(p, he)
			case he.TAP != nil:
				ep, err = s.restoreTAP(p, he, files[he.DataFile])
			default:
				ep, err = s.restoreEndpoint(p, he, files[he.CtlFile], files[he.DataFile])
			}
			if err != nil {
				return nil, fmt.Errorf("restore: port %d endpoint %d: %w", p.num, he.ID, err)
			}
			eps = append(eps, ep)
			p.eps = append([]*endpoint{ep}, p.eps...)
		}
	}
	if err = s.restorePlugins(st, files); err != nil { // handover_plugins.go
		return nil, err
	}
	if err = restoreRefusedByBuild(); err != nil { // the itests' way back (handover_seam.go)
		return nil, err
	}
	// The spanning tree module sees the ports come up now, and a topology change flushes
	// their VLANs' addresses: the handed-over ones go in after, and so does the tree as it
	// was (handover_fstp.go), over the probing the ports' joining started.
	s.publishLocked()
	fs, _ := st.FSTP() // Decode checked it
	s.restoreFSTPLocked(fs)
	es, _ := st.MACEntries() // Decode checked them
	now := s.now()
	for _, e := range es {
		s.macs.restore(makeKey(e.MAC[:], e.VLAN), e.Port, now-e.Age, e.Home)
	}
	s.mu.Unlock()
	s.run()
	s.mu.Lock()
	for _, ep := range eps {
		s.startEndpointLocked(ep)
		if ep.ctl != nil {
			go s.waitCtl(ep)
		}
	}
	return s, nil
}

// restoreInProcess makes an endpoint of p from an in-process endpoint its owner restored
// (Config.InProcess).
func (s *Switch) restoreInProcess(p *Port, he handover.Endpoint) (*endpoint, error) {
	if s.cfg.InProcess == nil {
		return nil, fmt.Errorf("in-process endpoint %q: nothing here restores it", he.InProcess)
	}
	e, err := s.cfg.InProcess(he.InProcess)
	if err != nil {
		return nil, fmt.Errorf("in-process endpoint %q: %w", he.InProcess, err)
	}
	return &endpoint{id: he.ID, port: p, module: he.Module, descr: he.Descr, data: e, slot: s.allocSlotLocked()}, nil
}

// restoreTAP makes an endpoint of p from a handed-over TAP descriptor (keeping a
// duplicate of it).
func (s *Switch) restoreTAP(p *Port, he handover.Endpoint, f *os.File) (*endpoint, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("TAP %s: %w", he.TAP.Name, err)
	}
	nfd, derr := -1, error(nil)
	rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if derr != nil {
		return nil, fmt.Errorf("TAP %s: dup: %w", he.TAP.Name, derr)
	}
	d, err := tap.FromFD(nfd, he.TAP.Name, he.TAP.VnetHdr) // closes nfd on failure
	if err != nil {
		return nil, err
	}
	return &endpoint{id: he.ID, port: p, module: he.Module, descr: he.Descr, data: d, slot: s.allocSlotLocked()}, nil
}

// restoreEndpoint makes an endpoint of p from a handed-over control connection and data
// socket (keeping duplicates of both).
func (s *Switch) restoreEndpoint(p *Port, he handover.Endpoint, ctlF, dataF *os.File) (*endpoint, error) {
	c, err := net.FileConn(ctlF)
	if err != nil {
		return nil, fmt.Errorf("control connection: %w", err)
	}
	ctl, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("control connection: a %T, not a unix socket", c)
	}
	rc, err := dataF.SyscallConn()
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("data socket: %w", err)
	}
	nfd, derr := -1, error(nil)
	rc.Control(func(fd uintptr) {
		if typ, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
			derr = fmt.Errorf("not a datagram socket (type %d, %v)", typ, err)
			return
		}
		if nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); derr == nil {
			derr = unix.SetNonblock(nfd, true)
		}
	})
	if derr != nil {
		if nfd >= 0 {
			unix.Close(nfd)
		}
		ctl.Close()
		return nil, fmt.Errorf("data socket: %w", derr)
	}
	data, dg, err := newDataChannel(nfd, he.DataPath, he.Offload, &s.poll)
	if err != nil {
		ctl.Close()
		return nil, err
	}
	ep := &endpoint{id: he.ID, port: p, module: he.Module, descr: he.Descr, ctl: ctl, data: data, dgram: dg, dataPath: he.DataPath, slot: s.allocSlotLocked()}
	ep.queue = newOutQueue(ep, &s.queueBytes) // plain or offload channel alike
	return ep, nil
}

func fileListener(f *os.File) (*net.UnixListener, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	ul, ok := ln.(*net.UnixListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("a %T, not a unix socket listener", ln)
	}
	ul.SetUnlinkOnClose(false) // Close decides what to unlink
	return ul, nil
}

// restore puts back a handed-over entry: k on port, last seen at lastSeen, first learned
// on home.
func (t *macTable) restore(k macKey, port int, lastSeen int64, home int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tab := t.tab.Load()
	if (t.count.Load()+1)*2 > int64(len(tab.slots)) {
		tab = t.rebuildLocked(len(tab.slots)*2, nil)
	}
	cur, i := tab.find(k)
	if cur != nil {
		return // Decode does not check duplicates; the first wins
	}
	e := &macEntry{key: k, port: port, home: int32(home)}
	e.lastSeen.Store(lastSeen)
	tab.slots[i].Store(e)
	t.count.Add(1)
	t.homes[k] = homeRec{port: int32(home), at: lastSeen}
}
