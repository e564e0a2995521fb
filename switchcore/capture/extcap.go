package capture

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Wireshark's extcap interface (doc/extcap.adoc in Wireshark's sources): Wireshark runs
// every program in its extcap folder with --extcap-interfaces to fill its interface list,
// with --extcap-interface I --extcap-dlts and --extcap-config to learn about one, and with
// --capture --extcap-interface I --fifo F to capture: the program writes pcap or pcapng
// to F until Wireshark stops it (SIGTERM) or closes F.

// ExtcapVersion is the version this extcap announces.
const ExtcapVersion = "1.0"

// ifacePrefix starts every interface this extcap lists, so that Wireshark's list (one
// namespace for all extcaps) shows where it comes from.
const ifacePrefix = "vde:"

// Iface is one entry of Wireshark's interface list: a switch's management socket and
// one of its ports, or all of them (Port -1).
type Iface struct {
	// Mgmt is the switch's management socket.
	Mgmt string
	// Port is the port captured, -1 for all.
	Port int
	// Descr is the port's description, if any.
	Descr string
}

// Value is the interface's name as Wireshark passes it back: "vde:MGMT" for all ports,
// "vde:MGMT:PORT" for one.
func (i Iface) Value() string {
	if i.Port < 0 {
		return ifacePrefix + i.Mgmt
	}
	return ifacePrefix + i.Mgmt + ":" + strconv.Itoa(i.Port)
}

// Display is what Wireshark's interface list shows.
func (i Iface) Display() string {
	if i.Port < 0 {
		return "VDE switch " + i.Mgmt + ", all ports"
	}
	d := fmt.Sprintf("VDE switch %s port %d", i.Mgmt, i.Port)
	if i.Descr != "" {
		d += " (" + i.Descr + ")"
	}
	return d
}

// ErrIface is wrapped by the error for an interface name this extcap did not give.
var ErrIface = errors.New("not a VDE interface")

// ParseIface reads an interface name Value gave. A final ":DIGITS" is the port (so a
// management socket whose own name ends so can be captured only port by port).
func ParseIface(v string) (Iface, error) {
	rest, ok := strings.CutPrefix(v, ifacePrefix)
	if !ok || rest == "" {
		return Iface{}, fmt.Errorf("%w: %q (want vde:MGMT_SOCKET[:PORT])", ErrIface, v)
	}
	i := Iface{Mgmt: rest, Port: -1}
	if k := strings.LastIndexByte(rest, ':'); k > 0 && k < len(rest)-1 {
		if p, err := strconv.ParseUint(rest[k+1:], 10, 31); err == nil {
			i.Mgmt, i.Port = rest[:k], int(p)
		}
	}
	return i, nil
}

// WriteInterfaces writes the answer to --extcap-interfaces.
func WriteInterfaces(w io.Writer, ifaces []Iface) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "extcap {version=%s}{help=https://github.com/vde-go/vde}{display=VDE switch capture}\n", ExtcapVersion)
	for _, i := range ifaces {
		fmt.Fprintf(bw, "interface {value=%s}{display=%s}\n", extcapText(i.Value()), extcapText(i.Display()))
	}
	return bw.Flush()
}

// WriteDLTs writes the answer to --extcap-dlts: every interface carries Ethernet.
func WriteDLTs(w io.Writer) error {
	_, err := io.WriteString(w, "dlt {number=1}{name=EN10MB}{display=Ethernet}\n")
	return err
}

// WriteConfig writes the answer to --extcap-config: the ring size, the one knob a slow
// Wireshark may want.
func WriteConfig(w io.Writer) error {
	_, err := fmt.Fprintf(w, "arg {number=0}{call=--ring}{display=Ring (frames)}"+
		"{tooltip=Frames the switch holds for a reader that is behind; more are dropped and counted}"+
		"{type=integer}{range=1,%d}{default=%d}\n", MaxSlots, DefaultSlots)
	return err
}

// extcapText keeps a value inside its braces: extcap lines have no escapes.
func extcapText(s string) string {
	return strings.NewReplacer("{", "(", "}", ")", "\n", " ").Replace(s)
}

// SocketDirs are where Discover looks for switches' management sockets: the systemd
// units' and Debian's ifupdown hooks' /run/vde2, and /tmp.
var SocketDirs = []string{"/run/vde2", "/var/run/vde2", "/tmp"}

// Discover lists the management sockets found in dirs (those whose name ends in .mgmt or
// is mgmt, or names that paths gives) with the ports in use on each, as Wireshark's
// interface list shows them: each switch whole, then each active port. A socket that does
// not answer as a switch within wait is left out.
func Discover(dirs, paths []string, wait time.Duration) []Iface {
	seen := map[string]bool{}
	var socks []string
	add := func(p string) {
		if r, err := filepath.EvalSymlinks(p); err == nil && !seen[r] {
			seen[r] = true
			socks = append(socks, p)
		}
	}
	for _, p := range paths {
		add(p)
	}
	given := len(socks) // in the order given; the ones found are sorted
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if e.Type()&os.ModeSocket != 0 && (strings.HasSuffix(n, ".mgmt") || n == "mgmt") {
				add(filepath.Join(d, n))
			}
		}
	}
	sort.Strings(socks[given:])
	var out []Iface
	for _, s := range socks {
		ports, err := Ports(s, wait)
		if err != nil {
			continue
		}
		out = append(out, Iface{Mgmt: s, Port: -1})
		for _, p := range ports {
			out = append(out, Iface{Mgmt: s, Port: p.Port, Descr: p.Descr})
		}
	}
	return out
}

// PortsCommand lists the ports in use, one "PORT DESCRIPTION" line each, in a data block.
const PortsCommand = "capture/ports"

// Ports asks the switch at mgmt for its ports in use.
func Ports(mgmt string, wait time.Duration) ([]Iface, error) {
	c, err := net.DialTimeout("unix", mgmt, wait)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	r := bufio.NewReader(c)
	lines, err := runCommand(r, c, PortsCommand)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mgmt, err)
	}
	return ParsePorts(mgmt, lines), nil
}

// runCommand sends cmd after the prompt and returns its data lines, or the refusal.
func runCommand(r *bufio.Reader, w io.Writer, cmd string) ([]string, error) {
	var data []string
	err := greetData(r, w, cmd, &data)
	return data, err
}

// ParsePorts reads PortsCommand's lines: "PORT DESCRIPTION"; others are skipped.
func ParsePorts(mgmt string, lines []string) []Iface {
	var out []Iface
	for _, l := range lines {
		num, descr, _ := strings.Cut(l, " ")
		p, err := strconv.ParseUint(num, 10, 31)
		if err != nil {
			continue
		}
		out = append(out, Iface{Mgmt: mgmt, Port: int(p), Descr: strings.TrimSpace(descr)})
	}
	return out
}
