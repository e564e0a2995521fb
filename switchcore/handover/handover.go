// Package handover is the state a running switch passes to the binary that replaces it
// (issue 22): a versioned, checked encoding of the switch's whole state, which names the
// descriptors passed beside it by their index.
//
// A blob is a 24-byte header and a JSON payload:
//
//	0  8  magic "VDESTATE"
//	8  4  format version, big endian (Version)
//	12 4  payload length, big endian
//	16 4  CRC-32C (Castagnoli) of the payload, big endian
//	20 4  zero (reserved)
//	24 .  payload: State as JSON
//
// JSON because a hand-over that goes wrong must be debuggable (a blob is readable with
// dd and jq) and because a field added by a later version is seen, not misread. The one
// bulky part, the MAC table, is packed (MACRecordSize bytes an entry) so that 64k entries
// cost about as much to encode as a few hundred ports (see the benchmark).
//
// The decoder never guesses: an unknown format version, a length or checksum that does
// not match, an unknown field, an unknown required section or a state that does not hold
// together (a descriptor index out of range, a port out of range) is refused with one line.
package handover

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Version is the format version this package writes and the only one it reads. Bump it for
// any change an older reader would misread; a field an older reader need not understand
// goes into a Section instead.
const Version = 1

// Magic starts every blob.
const Magic = "VDESTATE"

// HeaderSize is the size of the header before the JSON payload.
const HeaderSize = 24

// MaxSize bounds a blob the decoder accepts: 256 MiB, far above any switch's state (64k
// MAC entries and 64k ports encode to a few MiB), so that a damaged length is refused
// before anything is allocated for it.
const MaxSize = 256 << 20

// MACRecordSize is the size of one packed MAC table entry in State.MACs: the address (6
// bytes), the VLAN (2), the port (4), the age in seconds (4) and the home port (4), all
// big endian.
const MACRecordSize = 20

// Sentinel errors; Decode wraps them with what it found.
var (
	ErrMagic    = errors.New("not a switch state (bad magic)")
	ErrVersion  = errors.New("unsupported switch state version")
	ErrDamaged  = errors.New("damaged switch state")
	ErrInvalid  = errors.New("inconsistent switch state")
	ErrTooLarge = errors.New("switch state too large")
)

// State is the whole state of a switch at hand-over.
type State struct {
	// Options are the options the switch runs with: those it started with, as changed
	// since by the console.
	Options Options `json:"options"`
	// UptimeNanos is how long the switch has run; the new switch's clock goes on from it,
	// so the MAC table's ages and showinfo's uptime do not restart.
	UptimeNanos int64 `json:"uptime_ns"`
	// Files names each descriptor passed beside the blob, in order: the ctl listener
	// ("ctl"), the mgmt listener ("mgmt"), then each endpoint's control connection and
	// data socket, then the plugins' files. Endpoint.CtlFile and DataFile, and the
	// plugins' file fields, are indexes into it.
	Files []string `json:"files"`
	// CtlFile is the index of the ctl socket's listener in Files.
	CtlFile int `json:"ctl_file"`
	// MgmtFile is the index of the mgmt socket's listener in Files, -1 for none.
	MgmtFile int `json:"mgmt_file"`
	// Hub says the switch runs as a hub.
	Hub bool `json:"hub"`
	// VLANs lists the defined VLANs (0 always is).
	VLANs []uint16 `json:"vlans"`
	// Ports lists the allocated ports, active or not, by ascending number.
	Ports []Port `json:"ports"`
	// MAC is the MAC table (packed, MACRecordSize bytes an entry: see MACEntry).
	MACs []byte `json:"macs"`
	// MACTable are the MAC table's settings.
	MACTable MACTable `json:"mac_table"`
	// Plugins are the loaded plugins with their settings, in load order. Added after
	// version 1 was out without a new version: a state without plugins encodes and
	// decodes as before, and a reader from before refuses one with plugins (an unknown
	// field) rather than drop them; a Section would let it skip them.
	Plugins []Plugin `json:"plugins,omitempty"`
	// Sections carry the state of parts that later versions add (FSTP, loop guard)
	// without a new format version, which an older reader may skip.
	Sections []Section `json:"sections,omitempty"`
}

// Options are the switch options that survive a hand-over, as the switch runs with them.
type Options struct {
	NumPorts    int    `json:"num_ports"`
	FlowControl int    `json:"flow_control"`
	MAC         string `json:"mac"`
	Priority    int    `json:"priority"`
	FSTP        bool   `json:"fstp"`
	LoopGuard   bool   `json:"loop_guard"`
	HashSize    int    `json:"hash_size"`
	CtlDir      string `json:"ctl_dir"`
	SockMode    uint32 `json:"sock_mode"`
	DirMode     uint32 `json:"dir_mode"`
	Group       int    `json:"group"`
	MgmtPath    string `json:"mgmt_path"`
	MgmtMode    uint32 `json:"mgmt_mode"`
	MgmtGroup   int    `json:"mgmt_group"`
}

// Port is one allocated port.
type Port struct {
	Num         int        `json:"num"`
	Untagged    uint16     `json:"untagged"` // 4095: none
	Tagged      []uint16   `json:"tagged,omitempty"`
	Allocatable bool       `json:"allocatable"`
	User        int        `json:"user"`     // -1: anyone
	Group       int        `json:"group"`    // -1: any group
	CurUser     int        `json:"cur_user"` // -1 when inactive
	Counters    Counters   `json:"counters"`
	Endpoints   []Endpoint `json:"endpoints,omitempty"`
}

// Counters are a port's counters.
type Counters struct {
	InPkts   uint64 `json:"in_pkts"`
	InBytes  uint64 `json:"in_bytes"`
	OutPkts  uint64 `json:"out_pkts"`
	OutBytes uint64 `json:"out_bytes"`
	Drops    uint64 `json:"drops"`
	Bad      uint64 `json:"bad"`
}

// Endpoint is one datagram client of a port (the libvdeplug protocol), or a TAP device
// the switch opened itself (vde_switch -t), which has TAP set.
type Endpoint struct {
	// ID is the endpoint ID port/print shows and port/epclose takes.
	ID int `json:"id"`
	// Module and Descr are what port/print shows.
	Module string `json:"module"`
	Descr  string `json:"descr"`
	// DataPath is the name the switch's data socket is bound to (NNN.F in the ctl dir).
	DataPath string `json:"data_path"`
	// UID is the owner of the client's data socket.
	UID int `json:"uid"`
	// CtlFile and DataFile index State.Files: the control connection and the data socket.
	// For a TAP, DataFile is the device's descriptor and CtlFile is -1 (it has none).
	CtlFile  int `json:"ctl_file"`
	DataFile int `json:"data_file"`
	// TAP is set for a TAP device's endpoint, nil for a datagram client. A binary that
	// does not know the field refuses the state (unknown field) rather than lose the TAP.
	TAP *TAP `json:"tap,omitempty"`
	// InProcess names an in-process endpoint (a vhost-user device) by its owner's key: the
	// owner hands its state over beside this one, and the restoring switch asks it for the
	// endpoint. Such an endpoint has no descriptor here (CtlFile and DataFile are -1).
	InProcess string `json:"in_process,omitempty"`
	// Offload says a datagram client's data channel carries offloads (a virtio_net_hdr
	// before each packet: wire.VersionOffload). A binary that does not know the field
	// refuses the state rather than misread every packet.
	Offload bool `json:"offload,omitempty"`
}

// TAP is what a TAP endpoint's descriptor needs beside it to be used again.
type TAP struct {
	// Name is the interface name, which the restoring switch checks against the
	// descriptor's (TUNGETIFF).
	Name string `json:"name"`
	// VnetHdr says every packet on the descriptor has a virtio_net_hdr in front
	// (IFF_VNET_HDR, offloads on).
	VnetHdr bool `json:"vnet_hdr"`
}

// maxIfName is the longest interface name the kernel takes (IFNAMSIZ - 1).
const maxIfName = 15

// MACTable are the MAC table's settings and counters.
type MACTable struct {
	Limit      int64  `json:"limit"`
	MinPersist int64  `json:"min_persist"`
	ExpireSecs int64  `json:"expire_secs"`
	GCInterval int64  `json:"gc_interval"`
	NotLearned uint64 `json:"not_learned"`
}

// MACEntry is one learned address.
type MACEntry struct {
	MAC  [6]byte
	VLAN uint16
	Port int
	Age  int64 // seconds since the address was last seen
	Home int   // the port it was first learned on (the loop guard's)
}

// Section is the state of a part that later versions add. A reader that does not know
// Name skips it unless Required, and refuses the state if it is.
type Section struct {
	Name     string          `json:"name"`
	Version  int             `json:"version"`
	Required bool            `json:"required"`
	Data     json.RawMessage `json:"data"`
}

// knownSections are the sections this version reads, by name, with the newest version
// it reads (filled by the files that define them: fstp.go).
var knownSections = map[string]int{}

// AppendMAC packs e onto b.
func AppendMAC(b []byte, e MACEntry) []byte {
	b = append(b, e.MAC[:]...)
	b = binary.BigEndian.AppendUint16(b, e.VLAN)
	b = binary.BigEndian.AppendUint32(b, uint32(int32(e.Port)))
	b = binary.BigEndian.AppendUint32(b, uint32(min(max(e.Age, 0), 1<<31-1)))
	b = binary.BigEndian.AppendUint32(b, uint32(int32(e.Home)))
	return b
}

// MACEntries unpacks State.MACs.
func (st *State) MACEntries() ([]MACEntry, error) {
	if len(st.MACs)%MACRecordSize != 0 {
		return nil, fmt.Errorf("%w: MAC table of %d bytes is not a whole number of %d-byte entries", ErrInvalid, len(st.MACs), MACRecordSize)
	}
	es := make([]MACEntry, 0, len(st.MACs)/MACRecordSize)
	for b := st.MACs; len(b) > 0; b = b[MACRecordSize:] {
		var e MACEntry
		copy(e.MAC[:], b[:6])
		e.VLAN = binary.BigEndian.Uint16(b[6:8])
		e.Port = int(int32(binary.BigEndian.Uint32(b[8:12])))
		e.Age = int64(binary.BigEndian.Uint32(b[12:16]))
		e.Home = int(int32(binary.BigEndian.Uint32(b[16:20])))
		es = append(es, e)
	}
	return es, nil
}

// Encode checks st and returns it as a blob.
func Encode(st *State) ([]byte, error) {
	if err := st.Validate(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("switch state: encode: %w", err)
	}
	if len(payload) > MaxSize-HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(payload))
	}
	b := make([]byte, HeaderSize, HeaderSize+len(payload))
	copy(b, Magic)
	binary.BigEndian.PutUint32(b[8:], Version)
	binary.BigEndian.PutUint32(b[12:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(payload, castagnoli))
	return append(b, payload...), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Decode checks a blob and returns the state it holds.
func Decode(b []byte) (*State, error) {
	if len(b) < HeaderSize {
		if len(b) >= len(Magic) && string(b[:len(Magic)]) != Magic {
			return nil, ErrMagic
		}
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrDamaged, len(b), HeaderSize)
	}
	if string(b[:len(Magic)]) != Magic {
		return nil, ErrMagic
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != Version {
		return nil, fmt.Errorf("%w %d (this binary reads version %d)", ErrVersion, v, Version)
	}
	n := binary.BigEndian.Uint32(b[12:])
	if uint64(n) > MaxSize-HeaderSize {
		return nil, fmt.Errorf("%w: header says %d bytes", ErrTooLarge, n)
	}
	if uint64(len(b)-HeaderSize) != uint64(n) {
		return nil, fmt.Errorf("%w: header says %d payload bytes, %d present", ErrDamaged, n, len(b)-HeaderSize)
	}
	if binary.BigEndian.Uint32(b[20:]) != 0 {
		return nil, fmt.Errorf("%w: reserved header bytes are not zero", ErrDamaged)
	}
	payload := b[HeaderSize:]
	if sum := crc32.Checksum(payload, castagnoli); sum != binary.BigEndian.Uint32(b[16:]) {
		return nil, fmt.Errorf("%w: checksum %08x, header says %08x", ErrDamaged, sum, binary.BigEndian.Uint32(b[16:]))
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields() // a field this version does not know would be lost: refuse
	st := new(State)
	if err := dec.Decode(st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the state", ErrInvalid)
	}
	if err := st.Validate(); err != nil {
		return nil, err
	}
	return st, nil
}

// maxPorts bounds NumPorts (the switch's MaxNumPorts).
const maxPorts = 1 << 16

// Validate checks that st holds together, so that a restore can trust its indexes.
func (st *State) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalid}, a...)...) }
	o := &st.Options
	if o.NumPorts <= 0 || o.NumPorts > maxPorts {
		return bad("number of ports %d out of range 1..%d", o.NumPorts, maxPorts)
	}
	if o.CtlDir == "" {
		return bad("no control directory")
	}
	if st.UptimeNanos < 0 {
		return bad("negative uptime")
	}
	used := make([]bool, len(st.Files))
	file := func(what string, i int) error {
		if i < 0 || i >= len(st.Files) {
			return bad("%s: descriptor index %d out of range (%d passed)", what, i, len(st.Files))
		}
		if used[i] {
			return bad("%s: descriptor %d (%s) used twice", what, i, st.Files[i])
		}
		used[i] = true
		return nil
	}
	if err := file("ctl listener", st.CtlFile); err != nil {
		return err
	}
	if (st.MgmtFile >= 0) != (o.MgmtPath != "") {
		return bad("mgmt listener index %d does not match mgmt path %q", st.MgmtFile, o.MgmtPath)
	}
	if st.MgmtFile >= 0 {
		if err := file("mgmt listener", st.MgmtFile); err != nil {
			return err
		}
	}
	for _, v := range st.VLANs {
		if v >= 4095 {
			return bad("VLAN %d out of range 0..4094", v)
		}
	}
	last := -1
	for _, p := range st.Ports {
		if p.Num <= last || p.Num >= o.NumPorts {
			return bad("port %d out of order or out of range 0..%d", p.Num, o.NumPorts-1)
		}
		last = p.Num
		if p.Untagged > 4095 {
			return bad("port %d: untagged VLAN %d out of range", p.Num, p.Untagged)
		}
		for _, v := range p.Tagged {
			if v >= 4095 {
				return bad("port %d: tagged VLAN %d out of range", p.Num, v)
			}
		}
		for _, e := range p.Endpoints {
			what := fmt.Sprintf("port %d endpoint %d", p.Num, e.ID)
			if e.Offload && (e.TAP != nil || e.InProcess != "") {
				return bad("%s: an offload channel that is not a datagram client's", what)
			}
			if e.InProcess != "" {
				if e.TAP != nil || e.CtlFile != -1 || e.DataFile != -1 {
					return bad("%s: in-process endpoint %q with a descriptor or a TAP", what, e.InProcess)
				}
				continue
			}
			if e.TAP != nil {
				if e.CtlFile != -1 {
					return bad("%s: a TAP with a control connection (descriptor index %d)", what, e.CtlFile)
				}
				if e.TAP.Name == "" || len(e.TAP.Name) > maxIfName || strings.ContainsAny(e.TAP.Name, "/: \t\n\x00") {
					return bad("%s: TAP name %q is not an interface name", what, e.TAP.Name)
				}
				if err := file(what+" TAP", e.DataFile); err != nil {
					return err
				}
				continue
			}
			if err := file(what+" control connection", e.CtlFile); err != nil {
				return err
			}
			if err := file(what+" data socket", e.DataFile); err != nil {
				return err
			}
			if e.DataPath == "" {
				return bad("%s: no data socket path", what)
			}
		}
	}
	if err := st.validatePlugins(file); err != nil {
		return err
	}
	if _, err := st.FSTP(); err != nil {
		return err
	}
	for i, u := range used {
		if !u {
			return bad("descriptor %d (%s) belongs to nothing", i, st.Files[i])
		}
	}
	es, err := st.MACEntries()
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.VLAN >= 4095 || e.Port < 0 || e.Port >= o.NumPorts || e.Home < 0 || e.Home >= o.NumPorts {
			return bad("MAC entry %x VLAN %d port %d home %d out of range", e.MAC, e.VLAN, e.Port, e.Home)
		}
	}
	for _, s := range st.Sections {
		v, ok := knownSections[s.Name]
		if s.Required && (!ok || s.Version > v) {
			return fmt.Errorf("%w: required section %q version %d (this binary reads %s)", ErrVersion, s.Name, s.Version, sectionVersion(ok, v))
		}
	}
	return nil
}

func sectionVersion(known bool, v int) string {
	if !known {
		return "no such section"
	}
	return fmt.Sprintf("up to version %d", v)
}
