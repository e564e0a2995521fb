package capture

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Command is the management command that turns a session into a capture stream; its
// argument is what Args.String gives.
const Command = "capture/pcapng"

// Args are the arguments of the capture command: "[count=N] [ring=N] [PORT...]".
type Args struct {
	// Count ends the stream after that many frames; 0 never does.
	Count uint64
	// Slots is the ring's size in frames; 0 for DefaultSlots.
	Slots int
	// Ports are the ports to capture; none means all.
	Ports []int
}

// ErrArgs is wrapped by every error ParseArgs returns.
var ErrArgs = errors.New("capture arguments")

// ParseArgs reads the capture command's argument text (words separated by blanks).
func ParseArgs(text string) (Args, error) {
	var a Args
	for _, w := range strings.Fields(text) {
		key, val, isOpt := strings.Cut(w, "=")
		if !isOpt {
			p, err := strconv.ParseUint(w, 10, 31)
			if err != nil {
				return a, fmt.Errorf("%w: %q is no port number", ErrArgs, w)
			}
			a.Ports = append(a.Ports, int(p))
			continue
		}
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return a, fmt.Errorf("%w: %s: %q is no number", ErrArgs, key, val)
		}
		switch key {
		case "count":
			a.Count = n
		case "ring":
			if n == 0 || n > MaxSlots {
				return a, fmt.Errorf("%w: ring=%d: 1 to %d frames", ErrArgs, n, MaxSlots)
			}
			a.Slots = int(n)
		default:
			return a, fmt.Errorf("%w: unknown option %q (count=N, ring=N)", ErrArgs, key)
		}
	}
	return a, nil
}

// String is the argument text ParseArgs reads back.
func (a Args) String() string {
	var b strings.Builder
	if a.Count > 0 {
		fmt.Fprintf(&b, " count=%d", a.Count)
	}
	if a.Slots > 0 {
		fmt.Fprintf(&b, " ring=%d", a.Slots)
	}
	for _, p := range a.Ports {
		fmt.Fprintf(&b, " %d", p)
	}
	return strings.TrimPrefix(b.String(), " ")
}
