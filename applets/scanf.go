package applets

import (
	"math"
	"strings"
)

// The C tools read numbers with sscanf: "%i" (decimal, 0x hex, 0 octal), "%o" and "%x".
// sscanf is lenient in ways scripts depend on (leading blanks, trailing junk, "08" is 0)
// and fails in one way that matters: when no digit is read the variable keeps its old
// value. scanC reproduces glibc's conversions into a C int or unsigned int.

// scanC converts the longest valid prefix of s as sscanf does with conv 'i', 'o' or 'x'.
// It returns the low 32 bits of the result (callers read them as int32 or uint32), what
// is left of s, and whether a conversion happened.
func scanC(s string, conv byte) (v uint32, rest string, ok bool) {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := uint64(10)
	switch conv {
	case 'o':
		base = 8
	case 'x':
		base = 16
	}
	prefixed := false
	if (conv == 'i' || conv == 'x') && len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		// glibc takes the "0x" even when no hex digit follows: "0x" and "0xg" read as 0.
		base, s, prefixed = 16, s[2:], true
	} else if conv == 'i' && s != "" && s[0] == '0' {
		base = 8
	}
	var mag uint64
	overflow := false
	n := 0
	for n < len(s) {
		d, valid := digitValue(s[n])
		if !valid || d >= base {
			break
		}
		if mag > (math.MaxUint64-d)/base {
			overflow = true
		} else {
			mag = mag*base + d
		}
		n++
	}
	if n == 0 && !prefixed {
		return 0, s, false
	}
	rest = s[n:]
	if conv == 'i' {
		// %i converts like strtol: the result saturates at the bounds of a C long.
		var l int64
		switch {
		case !neg && (overflow || mag > math.MaxInt64):
			l = math.MaxInt64
		case neg && (overflow || mag > 1<<63):
			l = math.MinInt64
		case neg:
			l = -int64(mag)
		default:
			l = int64(mag)
		}
		return uint32(l), rest, true
	}
	// %o and %x convert like strtoul: overflow gives ULONG_MAX, a minus sign negates.
	switch {
	case overflow:
		mag = math.MaxUint64
	case neg:
		mag = -mag
	}
	return uint32(mag), rest, true
}

func digitValue(c byte) (uint64, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}

// scanInt is sscanf(s, "%i", &int): ok is false when nothing was converted.
func scanInt(s string) (int32, bool) {
	v, _, ok := scanC(s, 'i')
	return int32(v), ok
}

// scanOctal is sscanf(s, "%o", &int).
func scanOctal(s string) (int32, bool) {
	v, _, ok := scanC(s, 'o')
	return int32(v), ok
}

// parseMAC reads a MAC address as vde_switch does: sscanf with "%x:%x:%x:%x:%x:%x" when
// s contains a colon, else with "%x.%x.%x.%x.%x.%x"; each field keeps its low 8 bits
// and text after the sixth field is ignored.
func parseMAC(s string) ([6]byte, bool) {
	sep := byte('.')
	if strings.IndexByte(s, ':') >= 0 {
		sep = ':'
	}
	var mac [6]byte
	rest := s
	for i := range mac {
		if i > 0 {
			if rest == "" || rest[0] != sep {
				return mac, false
			}
			rest = rest[1:]
		}
		v, r, ok := scanC(rest, 'x')
		if !ok {
			return mac, false
		}
		mac[i], rest = byte(v), r
	}
	return mac, true
}
