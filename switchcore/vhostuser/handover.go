package vhostuser

// Hand-over (issue 22): a vde_switch that upgrades in place passes its vhost-user servers
// to the next binary with everything a frontend must not notice losing: the listener, each
// frontend's connection, its guest memory (the regions' descriptors: a mapping does not
// survive exec), its rings' addresses and indexes, and their kick and call eventfds.
//
// The order is Pause (no message is read, no frontend accepted), then the switch's own
// Handover (which stops every frame reader, the devices' too, through SetReadDeadline),
// then Snapshot. Nothing is in flight then: a batch takes its frames out of the rings and
// returns their buffers before it ends, so the indexes in the state are the whole truth.
// Restore builds the servers again from the state; Start serves them. If the hand-over
// fails, Resume serves on as before.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StateVersion is the version of State this package writes and the only one it reads.
const StateVersion = 1

// State is the vhost-user servers' part of a switch's hand-over.
type State struct {
	Version int `json:"version"`
	// Files names each descriptor passed beside the state, in order; the indexes below
	// point into it.
	Files   []string      `json:"files"`
	Servers []ServerState `json:"servers"`
}

// ServerState is one --vhost-user socket and its frontends.
type ServerState struct {
	Path       string        `json:"path"`
	Listener   int           `json:"listener"`
	NextSerial int           `json:"next_serial"`
	Devices    []DeviceState `json:"devices,omitempty"`
}

// DeviceState is one connected frontend.
type DeviceState struct {
	// Key names the device in the switch's state (the endpoint it is).
	Key      string        `json:"key"`
	Name     string        `json:"name"`
	Conn     int           `json:"conn"`
	Features uint64        `json:"features"`
	Protocol uint64        `json:"protocol"`
	MTU      int           `json:"mtu"`
	Owned    bool          `json:"owned"`
	Regions  []RegionState `json:"regions,omitempty"`
	Rings    []RingState   `json:"rings,omitempty"`
	Counters DeviceCounts  `json:"counters"`
}

// RegionState is one guest memory region and the index of its descriptor.
type RegionState struct {
	GuestAddr  uint64 `json:"guest_addr"`
	Size       uint64 `json:"size"`
	UserAddr   uint64 `json:"user_addr"`
	MmapOffset uint64 `json:"mmap_offset"`
	File       int    `json:"file"`
}

// RingState is one virtqueue the frontend set up.
type RingState struct {
	Index     int    `json:"index"`
	Num       uint16 `json:"num"`
	AddrSet   bool   `json:"addr_set"`
	Desc      uint64 `json:"desc"`
	Avail     uint64 `json:"avail"`
	Used      uint64 `json:"used"`
	AddrFlags uint32 `json:"addr_flags"`
	LastAvail uint16 `json:"last_avail"`
	UsedIdx   uint16 `json:"used_idx"`
	UsedFlags uint16 `json:"used_flags"`
	Kick      int    `json:"kick"` // file index, -1: none (a polled ring)
	Call      int    `json:"call"` // file index, -1: none
	Started   bool   `json:"started"`
	Enabled   bool   `json:"enabled"`
	Broken    string `json:"broken,omitempty"`
}

// DeviceCounts are a device's fault counters.
type DeviceCounts struct {
	Faults           uint64 `json:"faults"`
	RxNoBuffer       uint64 `json:"rx_no_buffer"`
	RxTooLong        uint64 `json:"rx_too_long"`
	TxTooLong        uint64 `json:"tx_too_long"`
	TxOffloadDropped uint64 `json:"tx_offload_dropped"`
}

// ErrState is what Decode wraps for a state it refuses.
var ErrState = errors.New("vhost-user hand-over state")

// Encode returns st as bytes, after checking it.
func Encode(st *State) ([]byte, error) {
	st.Version = StateVersion
	if err := st.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

// maxStateSize bounds what Decode reads: a few servers of a few hundred frontends are
// far below it.
const maxStateSize = 16 << 20

// Decode checks b and returns the state it holds. It refuses, with one line, another
// version, an unknown field, and a state that does not hold together.
func Decode(b []byte) (*State, error) {
	if len(b) > maxStateSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrState, len(b), maxStateSize)
	}
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	if v.Version != StateVersion {
		return nil, fmt.Errorf("%w: version %d, this binary reads version %d", ErrState, v.Version, StateVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	st := &State{}
	if err := dec.Decode(st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the state", ErrState)
	}
	if err := st.validate(); err != nil {
		return nil, err
	}
	return st, nil
}

// validate checks that every index is in range and every descriptor belongs to exactly
// one thing, and that rings and regions are what a device could have taken.
func (st *State) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrState, fmt.Sprintf(format, args...))
	}
	used := make([]bool, len(st.Files))
	file := func(what string, i int, optional bool) error {
		if optional && i == -1 {
			return nil
		}
		if i < 0 || i >= len(st.Files) {
			return bad("%s: descriptor index %d out of range 0..%d", what, i, len(st.Files)-1)
		}
		if used[i] {
			return bad("%s: descriptor %d (%s) is used twice", what, i, st.Files[i])
		}
		used[i] = true
		return nil
	}
	keys := map[string]bool{}
	for _, s := range st.Servers {
		if s.Path == "" {
			return bad("a server without a path")
		}
		if err := file(s.Path+" listener", s.Listener, false); err != nil {
			return err
		}
		for _, d := range s.Devices {
			what := s.Path + " device " + d.Key
			if d.Key == "" || keys[d.Key] {
				return bad("%s: empty or repeated key", what)
			}
			keys[d.Key] = true
			if err := file(what+" connection", d.Conn, false); err != nil {
				return err
			}
			if d.Features&^(offeredFeatures|FeatLogAll) != 0 || d.Protocol&^offeredProtocol != 0 {
				return bad("%s: features %#x, protocol features %#x were not offered", what, d.Features, d.Protocol)
			}
			if d.MTU != 0 && (d.MTU < 68 || d.MTU > 9216) {
				return bad("%s: MTU %d", what, d.MTU)
			}
			if len(d.Regions) > maxRegions {
				return bad("%s: %d memory regions, at most %d", what, len(d.Regions), maxRegions)
			}
			for i, r := range d.Regions {
				if err := file(fmt.Sprintf("%s region %d", what, i), r.File, false); err != nil {
					return err
				}
			}
			seen := map[int]bool{}
			for _, r := range d.Rings {
				if r.Index < 0 || r.Index >= 2*MaxQueuePairs || seen[r.Index] {
					return bad("%s: ring %d out of range or repeated", what, r.Index)
				}
				seen[r.Index] = true
				if r.Num > maxQueueSize {
					return bad("%s: ring %d of size %d", what, r.Index, r.Num)
				}
				if err := file(fmt.Sprintf("%s ring %d kick", what, r.Index), r.Kick, true); err != nil {
					return err
				}
				if err := file(fmt.Sprintf("%s ring %d call", what, r.Index), r.Call, true); err != nil {
					return err
				}
			}
		}
	}
	for i, u := range used {
		if !u {
			return bad("descriptor %d (%s) belongs to nothing", i, st.Files[i])
		}
	}
	return nil
}

// Pause stops the server for a hand-over: it accepts no frontend and reads no message
// (one being read is read whole and handled first). Frames go on until the switch stops
// the devices' readers. Resume undoes it.
func (s *Server) Pause() error {
	s.mu.Lock()
	if s.closed || s.paused {
		s.mu.Unlock()
		return fmt.Errorf("vhost-user %s: cannot pause: %s", s.path, map[bool]string{true: "closed", false: "paused already"}[s.closed])
	}
	s.paused = true
	ds := s.deviceList()
	s.mu.Unlock()
	past := time.Unix(1, 0)
	s.ln.SetDeadline(past)
	for _, d := range ds {
		d.pausing.Store(true)
		d.conn.SetReadDeadline(past)
		// A frontend that reads no reply must not hold the pause up either: a reply
		// that cannot be written within resumeWait ends that frontend.
		d.conn.SetWriteDeadline(time.Now().Add(resumeWait))
	}
	// Each Serve returns at its next message boundary, or within resumeWait of the pause
	// for one that stalled halfway through a message (msgReader.resume).
	s.wg.Wait()
	return nil
}

// Resume serves again after Pause: the hand-over failed.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.paused {
		return fmt.Errorf("vhost-user %s: cannot resume: not paused", s.path)
	}
	s.ln.SetDeadline(time.Time{})
	for d := range s.devices {
		d.pausing.Store(false)
		d.conn.SetDeadline(time.Time{})
	}
	s.paused = false
	s.startLocked()
	return nil
}

// Snapshot returns the server's state, with duplicates of its descriptors appended to
// files (close-on-exec: the caller passes them on and closes them) and named in st.Files.
// Call it after Pause, once the switch has stopped the devices' readers.
func (s *Server) Snapshot(st *State, files *[]*os.File) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused {
		return fmt.Errorf("vhost-user %s: snapshot of a running server", s.path)
	}
	add := func(name string, fd int) (int, error) {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("vhost-user %s: dup %s: %w", s.path, name, err)
		}
		*files = append(*files, os.NewFile(uintptr(nfd), name))
		st.Files = append(st.Files, name)
		return len(st.Files) - 1, nil
	}
	ss := ServerState{Path: s.path, NextSerial: s.nextSerial}
	var err error
	if ss.Listener, err = add(s.path+" listener", rawFD(s.ln)); err != nil {
		return err
	}
	for _, d := range s.deviceList() {
		if d.closed.Load() {
			continue // closed during the pause: the next switch frees its port (no device)
		}
		ds, err := d.snapshot(add)
		if err != nil {
			return err
		}
		ss.Devices = append(ss.Devices, ds)
	}
	st.Servers = append(st.Servers, ss)
	return nil
}

// snapshot is the device's state; add duplicates a descriptor into the hand-over.
func (d *Device) snapshot(add func(name string, fd int) (int, error)) (DeviceState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds := DeviceState{Key: d.key, Name: d.name, Features: d.features, Protocol: d.protocol, MTU: d.mtu, Owned: d.owned,
		Counters: DeviceCounts{Faults: d.Faults.Load(), RxNoBuffer: d.RxNoBuffer.Load(), RxTooLong: d.RxTooLong.Load(),
			TxTooLong: d.TxTooLong.Load(), TxOffloadDropped: d.TxOffloadDropped.Load()}}
	var err error
	if ds.Conn, err = add(d.name+" connection", rawFD(d.conn)); err != nil {
		return ds, err
	}
	if d.mem != nil {
		for i, r := range d.mem.regions {
			rs := RegionState{GuestAddr: r.GuestAddr, Size: r.Size, UserAddr: r.UserAddr, MmapOffset: r.MmapOffset}
			if rs.File, err = add(fmt.Sprintf("%s region %d", d.name, i), r.fd); err != nil {
				return ds, err
			}
			ds.Regions = append(ds.Regions, rs)
		}
	}
	for i, v := range d.rings {
		if v.num == 0 && !v.addrSet && v.kickFD < 0 && v.callFD < 0 {
			continue
		}
		if v.used != nil && v.usedIdx != v.pubUsed && v.publish() {
			d.signal(v) // nothing is left unpublished for the next binary to lose
		}
		rs := RingState{Index: i, Num: v.num, AddrSet: v.addrSet, Desc: v.addr.Desc, Avail: v.addr.Avail, Used: v.addr.Used,
			AddrFlags: v.addr.Flags, LastAvail: v.lastAvail, UsedIdx: v.usedIdx, UsedFlags: v.usedFlags,
			Kick: -1, Call: -1, Started: v.started, Enabled: v.enabled}
		if v.broken != nil {
			rs.Broken = v.broken.Error()
		}
		if v.kickFD >= 0 {
			if rs.Kick, err = add(fmt.Sprintf("%s ring %d kick", d.name, i), v.kickFD); err != nil {
				return ds, err
			}
		}
		if v.callFD >= 0 {
			if rs.Call, err = add(fmt.Sprintf("%s ring %d call", d.name, i), v.callFD); err != nil {
				return ds, err
			}
		}
		ds.Rings = append(ds.Rings, rs)
	}
	return ds, nil
}

// Release ends a server whose state the next binary took: it closes its own descriptors
// and mappings and tells no frontend (the successor holds the same sockets), and leaves
// the socket file in place.
func (s *Server) Release() {
	s.mu.Lock()
	s.closed = true
	ds := s.deviceList()
	s.mu.Unlock()
	s.ln.SetUnlinkOnClose(false)
	s.ln.Close()
	for _, d := range ds {
		d.Close()
	}
	s.leaveParked(ds)
}

// Restore builds a server from its part of a hand-over: the listener, the devices with
// their memory mapped again and their rings where they were. files are the descriptors
// st names; Restore keeps duplicates of what it uses and the caller closes files. The
// server serves once Started.
//
// Restore takes what the old switch ran with, as forgiving as the protocol is: a ring
// whose addresses are outside the memory table stays set up and unused, as after a
// refused SET_VRING_ADDR. A device that cannot be made again (its memory will not map,
// a descriptor will not duplicate) comes back closed: the switch reads EOF from it and
// frees its port, and its frontend sees the disconnect. Only the server itself (its
// listener) failing fails Restore: one frontend must not cost the switch its upgrade,
// nor its way back, which would meet the same state.
func Restore(st *State, ss ServerState, files []*os.File, opt Options) (*Server, error) {
	f := func(i int) *os.File { return files[i] }
	if len(files) != len(st.Files) {
		return nil, fmt.Errorf("%w: it names %d descriptors, %d passed", ErrState, len(st.Files), len(files))
	}
	l, err := net.FileListener(f(ss.Listener))
	if err != nil {
		return nil, fmt.Errorf("vhost-user %s: listener: %w", ss.Path, err)
	}
	ln, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("vhost-user %s: listener is a %T", ss.Path, l)
	}
	ln.SetUnlinkOnClose(true)
	s := &Server{path: ss.Path, ln: ln, opt: opt, devices: map[*Device]struct{}{}, nextSerial: ss.NextSerial, paused: true}
	for _, ds := range ss.Devices {
		d, err := restoreDevice(ds, f, opt)
		if err != nil {
			// Not even its connection: the switch finds no device for its key and frees
			// the port (the applet's find gives it a closed endpoint).
			if opt.Logf != nil {
				opt.Logf("vhost-user %s: cannot take the frontend over: %v", ds.Name, err)
			}
			continue
		}
		d.parked = true // as if its Serve had paused: Start serves it
		s.devices[d] = struct{}{}
	}
	return s, nil
}

// drop undoes a Restore that failed: its descriptors and mappings go, the sockets stay
// (the old binary serves on with them) and no frontend is told.
func (s *Server) drop() {
	s.ln.SetUnlinkOnClose(false)
	s.ln.Close()
	for d := range s.devices {
		d.Close()
		d.leave() // never served
	}
}

// restoreDevice makes a device from its state; one whose memory or descriptors cannot be
// taken up again comes back closed (see Restore). Nothing else uses it yet: no lock.
func restoreDevice(ds DeviceState, f func(int) *os.File, opt Options) (*Device, error) {
	c, err := net.FileConn(f(ds.Conn))
	if err != nil {
		return nil, fmt.Errorf("connection: %w", err)
	}
	conn, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("connection is a %T", c)
	}
	d, err := NewDevice(conn, ds.Name, opt)
	if err != nil {
		conn.Close()
		return nil, err
	}
	fail := func(err error) (*Device, error) {
		if opt.Logf != nil {
			opt.Logf("vhost-user %s: cannot take the frontend over: %v; disconnecting it", ds.Name, err)
		}
		d.key = ds.Key
		d.Close()
		return d, nil
	}
	d.key = ds.Key
	d.Faults.Store(ds.Counters.Faults)
	d.RxNoBuffer.Store(ds.Counters.RxNoBuffer)
	d.RxTooLong.Store(ds.Counters.RxTooLong)
	d.TxTooLong.Store(ds.Counters.TxTooLong)
	d.TxOffloadDropped.Store(ds.Counters.TxOffloadDropped)
	d.setFeatures(ds.Features)
	d.protocol, d.mtu, d.owned = ds.Protocol, ds.MTU, ds.Owned
	if len(ds.Regions) > 0 {
		rs := make([]Region, len(ds.Regions))
		fds := make([]int, len(ds.Regions))
		for i, r := range ds.Regions {
			rs[i] = Region{GuestAddr: r.GuestAddr, Size: r.Size, UserAddr: r.UserAddr, MmapOffset: r.MmapOffset}
			fds[i] = rawFD(f(r.File))
		}
		if d.mem, err = mapRegions(rs, fds); err != nil {
			return fail(fmt.Errorf("memory: %w", err))
		}
	}
	for _, rs := range ds.Rings {
		v := d.rings[rs.Index]
		v.num, v.addrSet = rs.Num, rs.AddrSet
		v.addr = VringAddr{Index: uint32(rs.Index), Flags: rs.AddrFlags, Desc: rs.Desc, Used: rs.Used, Avail: rs.Avail}
		v.lastAvail, v.usedIdx, v.pubUsed, v.usedFlags = rs.LastAvail, rs.UsedIdx, rs.UsedIdx, rs.UsedFlags
		if err := v.translate(d.mem); err != nil && opt.Logf != nil {
			// As SET_VRING_ADDR left it: set up, unused until the frontend mends it.
			opt.Logf("vhost-user %s: queue %d: %v", ds.Name, rs.Index, err)
		}
		if rs.Call >= 0 {
			if v.callFD, err = unix.FcntlInt(uintptr(rawFD(f(rs.Call))), unix.F_DUPFD_CLOEXEC, 0); err != nil {
				return fail(fmt.Errorf("queue %d: call descriptor: %w", rs.Index, err))
			}
		}
		if rs.Kick >= 0 {
			kick, err := unix.FcntlInt(uintptr(rawFD(f(rs.Kick))), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return fail(fmt.Errorf("queue %d: kick descriptor: %w", rs.Index, err))
			}
			d.setKick(rs.Index, kick)
		}
		v.started, v.enabled = rs.Started, rs.Enabled
		if rs.Broken != "" {
			v.broken = errors.New(rs.Broken)
		}
	}
	return d, nil
}

// setFeatures installs the negotiated virtio features. Call with mu held.
func (d *Device) setFeatures(f uint64) {
	d.features = f
	d.negotiated.Store(f)
	d.mrg = f&FeatNetMrgRxbuf != 0
	d.hdrLen = 10
	if f&(FeatVersion1|FeatNetMrgRxbuf) != 0 {
		d.hdrLen = 12
	}
	for _, v := range d.rings {
		v.eventIdx = f&FeatEventIdx != 0
	}
}

// Devices lists the server's frontends (for the switch's restore, which finds each by
// its HandoverKey).
func (s *Server) Devices() []*Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deviceList()
}

func (s *Server) deviceList() []*Device {
	ds := make([]*Device, 0, len(s.devices))
	for d := range s.devices {
		ds = append(ds, d)
	}
	return ds
}

// rawFD is the descriptor of a socket or file without Fd(), which would make it
// blocking (for its other holders too: the file description is shared).
func rawFD(c syscall.Conn) int {
	fd := -1
	if rc, err := c.SyscallConn(); err == nil {
		rc.Control(func(u uintptr) { fd = int(u) })
	}
	return fd
}
