package switchcore

// The loaded plugins cross a hand-over with their settings (issue 22): what plugin/add
// loaded and what their commands set, iplog's table of addresses seen, and their open
// files. pdump's capture file and iplog's log file pass as descriptors, not names: the new
// switch goes on writing the same file at the same place (a pcap has one header and
// cannot be reopened; a log rotated away stays the one written until SIGHUP, as it would
// without the upgrade), and nothing is opened again, so nothing can fail to open, under
// whichever user's rights: the way back to the previous binary restores the same state,
// and a reopen that failed there would lose the switch.

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vde-go/vde/switchcore/handover"
)

// snapshotPlugins adds the loaded plugins to st and their files to files, and returns
// files. Handover calls it with the readers stopped and without s.mu (iplog's logger,
// which it lets finish, takes it).
func (s *Switch) snapshotPlugins(st *handover.State, files []*os.File) ([]*os.File, error) {
	s.plugins.mu.Lock()
	loaded := append([]*loadedPlugin(nil), s.plugins.loaded...)
	s.plugins.mu.Unlock()
	add := func(name string, f *os.File) (int, error) {
		d, err := dupFile(mustRaw(f), name)
		if err != nil {
			return -1, err
		}
		files = append(files, d)
		st.Files = append(st.Files, name)
		return len(files) - 1, nil
	}
	for _, lp := range loaded {
		hp := handover.Plugin{Name: lp.def.name}
		var err error
		switch ps := lp.state.(type) {
		case *pdumpState:
			hp.Pdump, err = ps.snapshot(add)
		case *iplogState:
			hp.Iplog, err = ps.snapshot(add)
		case *dumpState:
			hp.Dump = &handover.Dump{Active: ps.active.Load()}
		default:
			err = fmt.Errorf("its state (%T) cannot be handed over", ps)
		}
		if err != nil {
			return files, fmt.Errorf("plugin %s: %w", lp.def.name, err)
		}
		st.Plugins = append(st.Plugins, hp)
	}
	return files, nil
}

// snapshot flushes the capture file and gives pdump's settings with a duplicate of it.
func (p *pdumpState) snapshot(add func(name string, f *os.File) (int, error)) (*handover.Pdump, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hp := &handover.Pdump{Filename: p.name, Active: p.active.Load(), Buffered: p.buffered.Load(), File: -1}
	if p.f == nil {
		return hp, nil
	}
	if err := p.w.Flush(); err != nil {
		p.s.logf("pdump: %s: %s", p.name, errText(err)) // as a batch's flush would
	}
	p.dirty = false
	var err error
	hp.File, err = add("plugin pdump file "+p.name, p.f)
	return hp, err
}

// snapshot lets the logger write what it was told and gives iplog's settings and table,
// with a duplicate of the log file.
func (ip *iplogState) snapshot(add func(name string, f *os.File) (int, error)) (*handover.Iplog, error) {
	ip.drain()
	hi := &handover.Iplog{LogFile: -1, GCInterval: ip.gcInterval.Load(), GCExpire: ip.gcExpire.Load()}
	for _, r := range *ip.ranges.Load() {
		hi.Ranges = append(hi.Ranges, r.prefix().String())
	}
	ip.logMu.Lock()
	hi.LogUID, hi.LogGID = ip.logAs.uid, ip.logAs.gid
	switch ip.logTo {
	case iplogOff:
		hi.LogTo = "off"
	case iplogSyslog:
		hi.LogTo = "syslog"
	default:
		hi.LogTo, hi.LogPath = "file", ip.logPath
		var err error
		if hi.LogFile, err = add("plugin iplog log file "+ip.logPath, ip.logFile); err != nil {
			ip.logMu.Unlock()
			return nil, err
		}
	}
	ip.logMu.Unlock()
	now := ip.s.now()
	ip.mu.Lock()
	defer ip.mu.Unlock()
	hi.Seq = ip.seq
	for _, e := range ip.table {
		a, _ := netip.AddrFromSlice(e.key.addr[:e.key.n])
		hi.Entries = append(hi.Entries, handover.IPEntry{Addr: a, VLAN: e.key.vlan, Port: e.port,
			MAC: net.HardwareAddr(e.mac[:]).String(), Age: max(now-e.lastSeen, 0), Seq: e.seq})
	}
	return hi, nil
}

// drain returns once the logger has written every notice queued before the call.
func (ip *iplogState) drain() {
	done := make(chan struct{})
	select {
	case ip.drainReq <- done:
		<-done
	case <-ip.done: // stopped: its last notices are written
	}
}

// prefix is r as a network prefix.
func (r ipRange) prefix() netip.Prefix {
	a, _ := netip.AddrFromSlice(r.addr[:r.n])
	return netip.PrefixFrom(a, r.bits())
}

// rangeOf is the range of a network prefix (masked: handover.Decode checked it).
func rangeOf(p netip.Prefix) ipRange {
	r := ipRange{n: 16}
	if p.Addr().Is4() {
		r.n = 4
	}
	copy(r.addr[:], p.Addr().AsSlice())
	for i, bits := 0, p.Bits(); i < r.n; i, bits = i+1, bits-8 {
		switch {
		case bits >= 8:
			r.mask[i] = 0xff
		case bits > 0:
			r.mask[i] = ^byte(1<<(8-bits) - 1)
		}
	}
	return r
}

// restorePlugins loads the plugins st holds, in its order, with their settings, taking
// duplicates of their files; call with s.mu held, before the readers start.
func (s *Switch) restorePlugins(st *handover.State, files []*os.File) error {
	dup := func(what string, i int) (*os.File, error) {
		f, err := dupFile(mustRaw(files[i]), what)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		return f, nil
	}
	p := &s.plugins
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.retapLocked()
	for _, hp := range st.Plugins {
		var def *pluginDef
		for _, d := range builtinPlugins {
			if d.name == hp.Name {
				def = d
			}
		}
		var ps pluginState
		switch {
		case def == pdumpPlugin && hp.Pdump != nil:
			pd := &pdumpState{s: s, name: hp.Pdump.Filename}
			pd.active.Store(hp.Pdump.Active)
			pd.buffered.Store(hp.Pdump.Buffered)
			if hp.Pdump.File >= 0 {
				f, err := dup("plugin pdump file "+pd.name, hp.Pdump.File)
				if err != nil {
					return err
				}
				pd.f, pd.w = f, bufio.NewWriterSize(f, 64<<10)
			}
			ps = pd
		case def == iplogPlugin && hp.Iplog != nil:
			ip := startIplog(s).(*iplogState)
			ps = ip
			if err := ip.restore(hp.Iplog, dup); err != nil {
				ip.stop()
				return err
			}
		case def == dumpPlugin && hp.Dump != nil:
			d := &dumpState{s: s}
			d.active.Store(hp.Dump.Active)
			ps = d
		default:
			return fmt.Errorf("restore: plugin %q: this binary has no such plugin", hp.Name)
		}
		p.loaded = append(p.loaded, &loadedPlugin{def: def, state: ps})
		p.setState(def, ps)
	}
	return nil
}

// restore sets a freshly started iplog to hi.
func (ip *iplogState) restore(hi *handover.Iplog, dup func(what string, i int) (*os.File, error)) error {
	ranges := []ipRange{}
	for _, r := range hi.Ranges {
		ranges = append(ranges, rangeOf(netip.MustParsePrefix(r))) // Decode checked them
	}
	ip.ranges.Store(&ranges)
	ip.gcInterval.Store(hi.GCInterval)
	ip.gcExpire.Store(hi.GCExpire)
	select { // the GC goes by the restored interval
	case ip.gcKick <- struct{}{}:
	default:
	}
	ip.logMu.Lock()
	ip.logAs = fileUser{hi.LogUID, hi.LogGID}
	switch hi.LogTo {
	case "syslog":
		ip.logTo = iplogSyslog
	case "file":
		f, err := dup("plugin iplog log file "+hi.LogPath, hi.LogFile)
		if err != nil {
			ip.logMu.Unlock()
			return err
		}
		ip.logTo, ip.logPath, ip.logFile = iplogFile, hi.LogPath, f
	}
	ip.logMu.Unlock()
	now := ip.s.now()
	ip.mu.Lock()
	defer ip.mu.Unlock()
	ip.seq = hi.Seq
	for _, e := range hi.Entries {
		k := ipKey{n: 16, vlan: e.VLAN}
		if e.Addr.Is4() {
			k.n = 4
		}
		copy(k.addr[:], e.Addr.AsSlice())
		mac, _ := net.ParseMAC(e.MAC) // Decode checked it
		ip.table[k] = &ipEntry{key: k, seq: e.Seq, lastSeen: now - e.Age, port: e.Port, mac: [6]byte(mac)}
	}
	return nil
}
