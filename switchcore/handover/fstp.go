package handover

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// SectionFSTP names the section that carries the spanning tree (fstp/setfstp on): each
// VLAN's root, costs and the roles of its ports, so that the next switch goes on with the
// tree as it is instead of probing every port again (which stops it forwarding for a
// moment, as a port that just came up does). A reader that does not know the section
// skips it and converges afresh.
const SectionFSTP = "fstp"

// SectionFSTPVersion is the version of the FSTP section this package writes and reads.
const SectionFSTPVersion = 1

func init() { knownSections[SectionFSTP] = SectionFSTPVersion }

// FSTP is the spanning tree's state: one entry per VLAN the protocol knows.
type FSTP struct {
	VLANs []FSTPVLAN `json:"vlans"`
}

// FSTPVLAN is the tree of one VLAN, as the switch's protocol holds it.
type FSTPVLAN struct {
	VLAN      uint16  `json:"vlan"`
	Root      [8]byte `json:"root"`
	RootCost  uint32  `json:"root_cost"`
	DesBridge [8]byte `json:"des_bridge"`
	DesPort   [2]byte `json:"des_port"`
	RootPort  int     `json:"root_port"` // 0: this switch is the root
	BonusPort int     `json:"bonus_port"`
	BonusCost int     `json:"bonus_cost"`
	TCTime    int64   `json:"tc_time"`
	RootTime  int64   `json:"root_time"`
	// RootAgeNanos is how long ago the root was last confirmed (the root loss timeout
	// goes on from it).
	RootAgeNanos int64 `json:"root_age_ns"`
	// The ports in each role (the members themselves follow from the ports' VLANs).
	Backup  []int `json:"backup,omitempty"`
	Edge    []int `json:"edge,omitempty"`
	Discard []int `json:"discard,omitempty"`
	Pending []int `json:"pending,omitempty"`
	Rcv0    []int `json:"rcv0,omitempty"`
	Rcv1    []int `json:"rcv1,omitempty"`
}

// SetFSTP puts f into st as its FSTP section (replacing one there).
func (st *State) SetFSTP(f *FSTP) error {
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("switch state: FSTP: %w", err)
	}
	for i, s := range st.Sections {
		if s.Name == SectionFSTP {
			st.Sections = append(st.Sections[:i], st.Sections[i+1:]...)
			break
		}
	}
	st.Sections = append(st.Sections, Section{Name: SectionFSTP, Version: SectionFSTPVersion, Data: data})
	return nil
}

// FSTP returns the state's FSTP section, nil if it has none, checked against the
// switch's ports.
func (st *State) FSTP() (*FSTP, error) {
	for _, s := range st.Sections {
		if s.Name != SectionFSTP || s.Version > SectionFSTPVersion {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(s.Data))
		dec.DisallowUnknownFields()
		f := &FSTP{}
		if err := dec.Decode(f); err != nil {
			return nil, fmt.Errorf("%w: FSTP section: %v", ErrInvalid, err)
		}
		seen := map[uint16]bool{}
		for _, v := range f.VLANs {
			if v.VLAN >= 4095 || seen[v.VLAN] {
				return nil, fmt.Errorf("%w: FSTP section: VLAN %d out of range or repeated", ErrInvalid, v.VLAN)
			}
			seen[v.VLAN] = true
			ports := append([]int{v.RootPort, v.BonusPort}, v.Backup...)
			for _, l := range [][]int{v.Edge, v.Discard, v.Pending, v.Rcv0, v.Rcv1} {
				ports = append(ports, l...)
			}
			for _, p := range ports {
				if p < 0 || p >= st.Options.NumPorts {
					return nil, fmt.Errorf("%w: FSTP section: VLAN %d: port %d out of range 0..%d", ErrInvalid, v.VLAN, p, st.Options.NumPorts-1)
				}
			}
		}
		return f, nil
	}
	return nil, nil
}
