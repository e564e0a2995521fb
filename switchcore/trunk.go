package switchcore

// TrunkAll makes every port a tagged member of every VLAN (1 to 4094) besides its
// untagged VLAN 0, so that the switch carries 802.1Q frames as they come, learning
// addresses per VLAN, and untagged frames as before: what vdeplug4's switch://, which has
// no VLAN configuration, does. Call it before clients attach; it creates every port.
func (s *Switch) TrunkAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all vlanSet
	for v := uint16(1); v < NoVLAN; v++ {
		s.vlans[v] = true
		all.add(v)
	}
	for i := range s.ports {
		if s.ports[i] == nil {
			s.ports[i] = newPort(i)
		}
		s.ports[i].tagged = all
	}
	s.publishLocked()
}
