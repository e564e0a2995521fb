package applets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/vde-go/vde/switchcore/packet"
	"github.com/vde-go/vde/switchcore/wire"
)

func init() {
	register(Applet{Name: "pcapplug", Aliases: vdeNames("pcapplug"), Main: PcapplugMain})
}

// pcapplugUsage is the C tool's usage text, on standard error with exit status 255: the
// options' lines are vde_plug2tap's.
var pcapplugUsage = "Usage: vde_pcapplug [OPTION]... interface\n" + plug2tapUsage[strings.IndexByte(plug2tapUsage, '\n')+1:]

// pcapplugPlug is vde_pcapplug: vde_plug2tap's options and run loop, on an interface that
// exists already, attached through packet sockets (switchcore/packet) where the C tool
// uses libpcap. As in C, the switch is opened first, then the pid file is written, then
// the interface is opened.
var pcapplugPlug = &ifacePlug{
	prog:        "vde_pcapplug",
	usage:       pcapplugUsage,
	daemon:      daemonSpec{Name: "vde_pcapplug", ReadyEnv: "_VDE_PCAPPLUG_DAEMON_READY_FD"},
	switchFirst: true,
	open:        openPcapInterface,
	errText:     pcapErrorText,
	ended: func(err error, logf func(string, ...any)) (int, bool) {
		var pe *packet.Error
		if !errors.As(err, &pe) {
			return 0, false
		}
		if errors.Is(err, packet.ErrGone) {
			logf("interface %s is gone", pe.Interface)
			return 0, true // C ends with 0 whatever stops its loop
		}
		logf("%v", err)
		return 1, true
	},
}

// PcapplugMain is vde_pcapplug: it joins a switch port to an existing Ethernet interface,
// in both directions, until either side ends.
func PcapplugMain(ctx context.Context, args []string, stdio Stdio) error {
	return pcapplugPlug.main(ctx, args, stdio)
}

// pcapOpenError is a refusal libpcap words itself: "NAME: TEXT" after "Open NAME: ".
type pcapOpenError struct {
	name, text string
}

func (e *pcapOpenError) Error() string { return e.name + ": " + e.text }

// openPcapInterface attaches to the interface name after the checks libpcap makes first,
// in its order: the interface exists, its link is up (pcap_activate refuses one that is
// down), it carries Ethernet frames (the C tool's DLT_EN10MB check, in packet.Open).
func openPcapInterface(name string) (wire.Endpoint, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, &pcapOpenError{name, "No such device exists (No such device exists)"}
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, &pcapOpenError{name, "That device is not up"}
	}
	e, err := packet.Open(packet.Config{Interface: name})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// pcapErrorText is what the C tool prints when the interface would not open; its
// messages end in a newline of their own, to which its logger adds another.
func pcapErrorText(err error) string {
	var oe *pcapOpenError
	var pe *packet.Error
	switch {
	case errors.As(err, &oe):
		return fmt.Sprintf("Open %s: %s\n", oe.name, oe.Error())
	case errors.Is(err, packet.ErrNotEthernet):
		return "Given interface is not ethernet\n"
	case errors.As(err, &pe) && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)):
		return fmt.Sprintf("Open %s: %s: You don't have permission to perform this capture on that device (%s: %s)\n",
			pe.Interface, pe.Interface, pe.Op, strerror(pe.Err))
	case errors.As(err, &pe):
		return fmt.Sprintf("Open %s: %s: %s: %s\n", pe.Interface, pe.Interface, pe.Op, strerror(pe.Err))
	}
	return err.Error() + "\n"
}
