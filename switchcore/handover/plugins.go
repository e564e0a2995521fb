package handover

import (
	"fmt"
	"net"
	"net/netip"
)

// Plugin is one plugin the switch has loaded (plugin/add: pdump, iplog, dump) with its
// settings, as its console commands left them. Exactly the field of its kind is set. A
// plugin kind this version does not know is a field it does not know: Decode refuses the
// state rather than drop the plugin.
type Plugin struct {
	// Name is the plugin's name, as plugin/list shows it.
	Name  string `json:"name"`
	Pdump *Pdump `json:"pdump,omitempty"`
	Iplog *Iplog `json:"iplog,omitempty"`
	Dump  *Dump  `json:"dump,omitempty"`
}

// Pdump is the pcap writer's state.
type Pdump struct {
	// Filename is the file name as pdump/filename was given it (relative ones are relative
	// to the switch's start directory).
	Filename string `json:"filename"`
	// Active and Buffered are pdump/active and pdump/buffered.
	Active   bool `json:"active"`
	Buffered bool `json:"buffered"`
	// File indexes Files: the open capture file, which the new switch goes on writing at
	// the same offset (a pcap has one header: it is not reopened); -1 when none is open.
	File int `json:"file"`
}

// Iplog is the IP address logger's state.
type Iplog struct {
	// LogTo is where the log goes: "off", "syslog" or "file".
	LogTo string `json:"log_to"`
	// LogPath is the log file's absolute path (iplog/showinfo shows it), for a file.
	LogPath string `json:"log_path,omitempty"`
	// LogFile indexes Files: the open log file (append mode), passed rather than opened
	// again; -1 unless LogTo is "file".
	LogFile int `json:"log_file"`
	// LogUID and LogGID are whose rights the file was opened with, to open it again with
	// on SIGHUP; -1 for the switch's own.
	LogUID int `json:"log_uid"`
	LogGID int `json:"log_gid"`
	// Ranges are the watched ranges in iplog/list's order (IPv4 first), as prefixes.
	Ranges []string `json:"ranges,omitempty"`
	// GCInterval and GCExpire are iplog/setgcint and iplog/setexpire, in seconds.
	GCInterval int64 `json:"gc_interval"`
	GCExpire   int64 `json:"gc_expire"`
	// Seq is the last entry's creation number; Entries are the addresses seen.
	Seq     uint64    `json:"seq"`
	Entries []IPEntry `json:"entries,omitempty"`
}

// IPEntry is one address iplog has seen.
type IPEntry struct {
	// Addr is the address, 4 bytes for IPv4 (an IPv4-mapped IPv6 address is IPv6).
	Addr netip.Addr `json:"addr"`
	VLAN uint16     `json:"vlan"`
	Port int        `json:"port"`
	MAC  string     `json:"mac"`
	// Age is how many seconds ago it was last seen; Seq its creation number (iplog lists
	// the newest first).
	Age int64  `json:"age"`
	Seq uint64 `json:"seq"`
}

// Dump is the hex dumper's state.
type Dump struct {
	// Active is dump/active.
	Active bool `json:"active"`
}

// validatePlugins checks the plugins; file claims a descriptor index as Validate's does.
func (st *State) validatePlugins(file func(what string, i int) error) error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalid}, a...)...) }
	seen := map[string]bool{}
	for _, p := range st.Plugins {
		if seen[p.Name] {
			return bad("plugin %q loaded twice", p.Name)
		}
		seen[p.Name] = true
		kinds := 0
		for _, set := range []bool{p.Pdump != nil, p.Iplog != nil, p.Dump != nil} {
			if set {
				kinds++
			}
		}
		what := "plugin " + p.Name
		switch {
		case kinds != 1:
			return bad("%s: %d kinds of settings, want 1", what, kinds)
		case p.Name == "pdump" && p.Pdump != nil:
			if p.Pdump.Filename == "" {
				return bad("%s: no file name", what)
			}
			if p.Pdump.File >= 0 {
				if err := file(what+" file", p.Pdump.File); err != nil {
					return err
				}
			} else if p.Pdump.Active {
				return bad("%s: active without a file", what)
			}
		case p.Name == "iplog" && p.Iplog != nil:
			if err := p.Iplog.validate(what, st.Options.NumPorts, file); err != nil {
				return err
			}
		case p.Name == "dump" && p.Dump != nil:
		default:
			return bad("%s: not a plugin this binary has, or settings of another plugin", what)
		}
	}
	return nil
}

func (ip *Iplog) validate(what string, numPorts int, file func(what string, i int) error) error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: %s: "+f, append([]any{ErrInvalid, what}, a...)...)
	}
	switch ip.LogTo {
	case "off", "syslog":
		if ip.LogFile != -1 {
			return bad("log to %s with a file (descriptor index %d)", ip.LogTo, ip.LogFile)
		}
	case "file":
		if ip.LogPath == "" {
			return bad("log to a file without a path")
		}
		if err := file(what+" log file", ip.LogFile); err != nil {
			return err
		}
	default:
		return bad("log to %q: not off, syslog or file", ip.LogTo)
	}
	for _, r := range ip.Ranges {
		p, err := netip.ParsePrefix(r)
		if err != nil || p != p.Masked() {
			return bad("range %q is not a network prefix", r)
		}
	}
	if ip.GCInterval < 0 || ip.GCExpire < 0 {
		return bad("negative GC interval %d or expiry %d", ip.GCInterval, ip.GCExpire)
	}
	for _, e := range ip.Entries {
		if !e.Addr.IsValid() || e.Addr.Zone() != "" {
			return bad("entry address %q is not an IP address", e.Addr)
		}
		if m, err := net.ParseMAC(e.MAC); err != nil || len(m) != 6 {
			return bad("entry %s: MAC %q is not an Ethernet address", e.Addr, e.MAC)
		}
		if e.VLAN >= 4095 || e.Port < 0 || e.Port >= numPorts || e.Age < 0 || e.Seq > ip.Seq {
			return bad("entry %s: VLAN %d, port %d, age %d or number %d out of range", e.Addr, e.VLAN, e.Port, e.Age, e.Seq)
		}
	}
	return nil
}
