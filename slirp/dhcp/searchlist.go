package dhcp

import (
	"fmt"
	"strings"
)

// encodeSearchList encodes domain names for option 119 (RFC 3397): each name as DNS labels
// (RFC 1035 §3.1) ending in the root label, with a suffix already written replaced by a
// compression pointer to it. Offsets are counted from the start of the option data, as if
// all instances of the option were concatenated.
func encodeSearchList(names []string) ([]byte, error) {
	var out []byte
	written := map[string]int{} // suffix (lower case) → offset of its first label
	for _, name := range names {
		labels, err := splitDomain(name)
		if err != nil {
			return nil, err
		}
		for i := range labels {
			suffix := strings.ToLower(strings.Join(labels[i:], "."))
			if off, ok := written[suffix]; ok {
				out = append(out, 0xc0|byte(off>>8), byte(off))
				labels = nil
				break
			}
			// A pointer holds 14 bits; later suffixes past that cannot be pointed at.
			if len(out) < 0x4000 {
				written[suffix] = len(out)
			}
			out = append(out, byte(len(labels[i])))
			out = append(out, labels[i]...)
		}
		if labels != nil {
			out = append(out, 0)
		}
	}
	return out, nil
}

// splitDomain checks a domain name (one trailing dot allowed) and returns its labels.
func splitDomain(name string) ([]string, error) {
	trimmed := strings.TrimSuffix(name, ".")
	if trimmed == "" {
		return nil, fmt.Errorf("dhcp: search domain %q: empty name", name)
	}
	if len(trimmed) > 253 {
		return nil, fmt.Errorf("dhcp: search domain %q: %d characters, want at most 253", name, len(trimmed))
	}
	labels := strings.Split(trimmed, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return nil, fmt.Errorf("dhcp: search domain %q: label %q: length %d, want 1 to 63", name, l, len(l))
		}
	}
	return labels, nil
}
