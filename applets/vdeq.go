package applets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/wire"
)

func init() {
	register(Applet{Name: "vdeq", Aliases: []string{"vdeoq"}, Main: VdeqMain})
}

// vdeqUsage is the C tool's usage text, then ours.
const vdeqUsage = "Usage: vdeq [-h]\n" +
	"\t vdeq qemu_executable ...qemu options... -net vde[,vlan=n][,sock=sock] ... \n" +
	"Old syntax:\n" +
	"\t vdeq qemu_executable [-sock sock1 [,sock2...]] qemu_options\n" +
	"vhost-user NICs (the switch started with --vhost-user PATH):\n" +
	"\t vdeq qemu_executable --vhost-user ...qemu options... -net vde[,vlan=n][,sock=sock] ...\n" +
	"\n" +
	"vdeq connects to each switch itself and hands QEMU the connected data socket\n" +
	"(-netdev dgram, or -netdev vde where QEMU has no dgram backend): each\n" +
	"-net nic[,vlan=N][,macaddr=M][,model=X] is paired with the -net vde[,vlan=N][,sock=S][,port=P]\n" +
	"of the same vlan and becomes -netdev ... -device X,netdev=...,mac=M.\n" +
	"`qemu` means qemu-system-$(uname -m) when there is no qemu on PATH.\n"

// vdeqNIC is one VDE network card: a -net vde and the -net nic of its vlan.
type vdeqNIC struct {
	vlan   string
	sock   string
	port   int
	group  string
	mode   uint32
	device string // the -device value without netdev=, built from -net nic
	hasNIC bool
}

// vdeqPlan is a rewritten QEMU command line and the switches it needs.
type vdeqPlan struct {
	qemu string
	args []string // QEMU's arguments with every VDE -net pair removed
	nics []*vdeqNIC
	mode uint32 // --mod
	// vhostUser is --vhost-user (or VDEQ_VHOST_USER=1): each card becomes a virtio-net
	// NIC on its switch's vhost-user socket instead of a datagram port.
	vhostUser bool
}

// errVdeqUnknown is an unknown -net vde parameter (the C tool's message and exit 255).
type errVdeqUnknown struct{ arg string }

func (e errVdeqUnknown) Error() string {
	return "WARNING: unknown parameter in argument " + e.arg
}

// parseVdeq rewrites args (after the QEMU binary) for modern QEMU; model is the default
// NIC model of the machine.
func parseVdeq(qemu string, args []string, model string) (*vdeqPlan, error) {
	p := &vdeqPlan{qemu: qemu}
	// The wrapper's own options come first, in this order (spec §4.1).
	var socks []string
	if len(args) >= 2 && (args[0] == "-sock" || args[0] == "-vdesock" || args[0] == "-unix") {
		socks = strings.Split(args[1], ",")
		args = args[2:]
	}
	if len(args) >= 1 && args[0] == "--vhost-user" {
		p.vhostUser = true
		args = args[1:]
	}
	if len(args) >= 2 && args[0] == "--mod" {
		m, err := strconv.ParseUint(args[1], 8, 32)
		if err != nil {
			return nil, fmt.Errorf("--mod %s: not an octal mode", args[1])
		}
		p.mode = uint32(m)
		args = args[2:]
	}
	byVlan := map[string]*vdeqNIC{}
	// Each -net nic is resolved once all the vde are known: nicOpts holds its options
	// and nicAt where in p.args it stands (by position: no argument value can be
	// mistaken for it).
	var nicOpts []struct{ vlan, opts string }
	var nicAt []int
	for i := 0; i < len(args); i++ {
		if args[i] != "-net" || i+1 >= len(args) {
			p.args = append(p.args, args[i])
			continue
		}
		kind, opts, _ := strings.Cut(args[i+1], ",")
		switch kind {
		case "vde":
			n := &vdeqNIC{vlan: "0"}
			for _, kv := range splitOpts(opts) {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "vlan":
					n.vlan = v
				case "sock":
					n.sock = strings.Trim(v, `"`)
				case "port":
					port, err := strconv.Atoi(v)
					if err != nil || port < 0 {
						return nil, errVdeqUnknown{args[i+1]}
					}
					n.port = port
				case "group":
					n.group = v
				case "mode":
					m, err := strconv.ParseUint(v, 8, 32)
					if err != nil {
						return nil, errVdeqUnknown{args[i+1]}
					}
					n.mode = uint32(m)
				default:
					return nil, errVdeqUnknown{args[i+1]}
				}
			}
			if byVlan[n.vlan] != nil {
				return nil, fmt.Errorf("-net %s: a second vde on vlan %s", args[i+1], n.vlan)
			}
			byVlan[n.vlan] = n
			p.nics = append(p.nics, n)
			i++
		case "nic":
			vlan, rest := "0", []string{}
			for _, kv := range splitOpts(opts) {
				if k, v, _ := strings.Cut(kv, "="); k == "vlan" {
					vlan = v
				} else {
					rest = append(rest, kv)
				}
			}
			nicOpts = append(nicOpts, struct{ vlan, opts string }{vlan, joinOpts(rest)})
			nicAt = append(nicAt, len(p.args))
			p.args = append(p.args, "-net", "nic") // resolved below
			i++
		default:
			// Another backend (-net user, -net tap): QEMU >= 3.0 refuses vlan=.
			p.args = append(p.args, "-net", dropVlan(args[i+1]))
			i++
		}
	}
	// Pair each nic with the vde of its vlan; a nic of another backend stays a -net nic.
	used := map[string]bool{}
	out := p.args[:0:0]
	k := 0
	for i := 0; i < len(p.args); i++ {
		if k < len(nicAt) && i == nicAt[k] {
			no := nicOpts[k]
			k++
			i++
			if n := byVlan[no.vlan]; n != nil && !used[no.vlan] {
				used[no.vlan] = true
				dev, err := nicDevice(no.opts, model)
				if err != nil {
					return nil, err
				}
				n.device, n.hasNIC = dev, true
				continue
			}
			v := "nic"
			if no.opts != "" {
				v += "," + no.opts
			}
			out = append(out, "-net", v)
			continue
		}
		out = append(out, p.args[i])
	}
	p.args = out
	for _, n := range p.nics {
		if !n.hasNIC {
			n.device = model // a vde with no nic gets a card of the default model
		}
	}
	for _, s := range socks {
		p.nics = append(p.nics, &vdeqNIC{sock: s, device: model})
	}
	return p, nil
}

// nicDevice turns -net nic options into a -device value (without netdev=).
func nicDevice(opts, model string) (string, error) {
	var props []string
	for _, kv := range splitOpts(opts) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "model":
			if v == "" {
				return "", fmt.Errorf("-net nic: %q: no model named", kv)
			}
			model = escapeOpt(v)
		case "macaddr":
			props = append(props, "mac="+escapeOpt(v))
		case "addr", "vectors":
			props = append(props, escapeOpt(kv))
		case "name", "":
		default:
			return "", fmt.Errorf("-net nic: unknown parameter %q", kv)
		}
	}
	return strings.Join(append([]string{model}, props...), ","), nil
}

// splitOpts splits QEMU's comma-separated options (",," is a literal comma).
func splitOpts(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			if i+1 < len(s) && s[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(out, cur.String())
}

// escapeOpt writes one option value back in QEMU's syntax (a comma doubled).
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// joinOpts is the inverse of splitOpts.
func joinOpts(opts []string) string {
	esc := make([]string, len(opts))
	for i, kv := range opts {
		esc[i] = escapeOpt(kv)
	}
	return strings.Join(esc, ",")
}

// dropVlan removes the vlan= options of a -net value and leaves the rest as it was.
func dropVlan(v string) string {
	kind, opts, _ := strings.Cut(v, ",")
	var kept []string
	for _, kv := range splitOpts(opts) {
		if !strings.HasPrefix(kv, "vlan=") {
			kept = append(kept, kv)
		}
	}
	switch {
	case len(kept) == len(splitOpts(opts)):
		return v
	case len(kept) == 0:
		return kind
	}
	return kind + "," + joinOpts(kept)
}

// defaultNICModel is what QEMU's -net nic gives on the machine's architecture.
func defaultNICModel(qemu string) string {
	if strings.Contains(qemu, "x86_64") || strings.Contains(qemu, "i386") || strings.HasSuffix(qemu, "qemu") || strings.HasSuffix(qemu, "kvm") {
		return "e1000"
	}
	return "virtio-net-pci"
}

// resolveQEMU finds the binary: `qemu` (gone from Debian) is qemu-system-<machine>.
func resolveQEMU(name string, stdio Stdio) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if name == "qemu" || name == "kvm" {
		var u unix.Utsname
		arch := runtime.GOARCH
		if unix.Uname(&u) == nil {
			arch = unix.ByteSliceToString(u.Machine[:])
		}
		alt := "qemu-system-" + arch
		if p, err := exec.LookPath(alt); err == nil {
			fmt.Fprintf(stdio.Err, "vdeq: %s is not on PATH, running %s\n", name, alt)
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on PATH", name)
}

// netdevBackends lists the -netdev backends the QEMU binary has (`-netdev help`).
func netdevBackends(qemu string) map[string]bool {
	cmd := exec.Command(qemu, "-netdev", "help")
	cmd.Env = append(os.Environ(), "DISPLAY=")
	done := make(chan struct{})
	var out []byte
	go func() { out, _ = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
		<-done
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		m[strings.TrimSpace(l)] = true
	}
	return m
}

// VdeqMain is vdeq: it starts QEMU with its VDE network cards connected to switches.
// vdeq connects to every switch itself and then becomes QEMU (exec), which inherits the
// data sockets (its -netdev dgram) and the control connections: the switch frees the
// ports when QEMU exits, also after -daemonize, and no relay sits in the frame path.
func VdeqMain(ctx context.Context, args []string, stdio Stdio) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(stdio.Err, vdeqUsage)
		return nil
	}
	qemu, err := resolveQEMU(args[0], stdio)
	if err != nil {
		fmt.Fprintf(stdio.Err, "vdeq: %v\n", err)
		return exit(1)
	}
	plan, err := parseVdeq(qemu, args[1:], defaultNICModel(qemu))
	if err != nil {
		var unknown errVdeqUnknown
		if errors.As(err, &unknown) {
			fmt.Fprintln(stdio.Out, unknown.Error())
			return exit(255)
		}
		fmt.Fprintf(stdio.Err, "vdeq: %v\n", err)
		return exit(1)
	}
	if os.Getenv("VDEQ_VHOST_USER") == "1" {
		plan.vhostUser = true
	}
	var argv []string
	if plan.vhostUser {
		argv, err = plan.vhostArgs()
	} else {
		argv, err = plan.connect(netdevBackends(qemu))
	}
	if err != nil {
		fmt.Fprintf(stdio.Err, "vdeq: %v\n", err)
		return exit(1)
	}
	err = syscall.Exec(qemu, append([]string{qemu}, argv...), os.Environ())
	fmt.Fprintf(stdio.Err, "vdeq: exec %s: %v\n", qemu, err)
	return exit(1)
}

// connect attaches every VDE card to its switch and returns QEMU's arguments: the
// cards first (-netdev + -device), then the user's other arguments.
func (p *vdeqPlan) connect(backends map[string]bool) ([]string, error) {
	var argv []string
	for i, n := range p.nics {
		id := fmt.Sprintf("vde%d", i)
		mode := n.mode
		if mode == 0 {
			mode = p.mode
		}
		switch {
		case backends["dgram"]:
			o := wire.DialOptions{Port: n.port, Description: "vdeqemu", Mode: mode}
			if n.group != "" {
				gid, err := wire.LookupGroup(n.group)
				if err != nil {
					return nil, err
				}
				o.Group, o.HasGroup = gid, true
			}
			sock, err := n.switchDir()
			if err != nil {
				return nil, err
			}
			c, err := wire.Dial(sock, o)
			if err != nil {
				return nil, err
			}
			// QEMU inherits both: the data socket it uses and the control connection
			// whose close, when QEMU exits, frees the port.
			for _, fd := range []int{c.FD(), ctlFD(c)} {
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
					return nil, fmt.Errorf("switch %s: %w", sock, err)
				}
			}
			argv = append(argv, "-netdev", fmt.Sprintf("dgram,id=%s,local.type=fd,local.str=%d", id, c.FD()))
		case backends["vde"]:
			nd := "vde,id=" + id
			if n.sock != "" {
				nd += ",sock=" + strings.ReplaceAll(n.sock, ",", ",,")
			}
			if n.port != 0 {
				nd += fmt.Sprintf(",port=%d", n.port)
			}
			if n.group != "" {
				nd += ",group=" + n.group
			}
			if mode != 0 {
				nd += fmt.Sprintf(",mode=%o", mode)
			}
			argv = append(argv, "-netdev", nd)
		default:
			return nil, fmt.Errorf("%s has neither a dgram nor a vde network backend", p.qemu)
		}
		argv = append(argv, "-device", n.device+",netdev="+id)
	}
	return append(argv, p.args...), nil
}

// switchDir is the control directory of the card's switch: its sock=, else the default.
func (n *vdeqNIC) switchDir() (string, error) {
	if n.sock != "" {
		return n.sock, nil
	}
	def, err := wire.DefaultSwitch()
	if err != nil {
		return "", fmt.Errorf("-net vde with no sock=: %w", err)
	}
	return def, nil
}

// ctlFD is the descriptor of a connection's control stream.
func ctlFD(c *wire.Conn) int {
	rc, err := c.Ctl().SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	rc.Control(func(f uintptr) { fd = int(f) })
	return fd
}
