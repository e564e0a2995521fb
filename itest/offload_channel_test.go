package itest

import (
	"strings"
	"testing"

	"github.com/vde-go/vde/switchcore/wire"
)

// TestOffloadChannel: a client of ours that asks for a data channel with offloads
// (request version 4) gets one from our switch; Debian's switch refuses the version, as
// its datasock.c does for any but 3 (it logs "Request for a version 4 port"), and the
// client asks again for a plain channel. Either way frames flow both ways with a plain
// client (Debian's C switch, or ours).
func TestOffloadChannel(t *testing.T) {
	for _, which := range []string{implOurs, implDebian} {
		t.Run(which, func(t *testing.T) {
			sw := startSwitch(t, which)
			off := dialPeer(t, sw, 1, wire.DialOptions{Offload: true})
			plain := dialPeer(t, sw, 2, wire.DialOptions{})
			if got, want := off.Conn.Offload() != nil, which == implOurs; got != want {
				t.Fatalf("%s switch: offload channel %v, want %v", which, got, want)
			}
			off.send(t, ethFrame(plain.MAC, off.MAC, "offload->plain"))
			plain.recv(t, "offload->plain")
			plain.send(t, ethFrame(off.MAC, plain.MAC, "plain->offload"))
			off.recv(t, "plain->offload")
			if which == implDebian && !strings.Contains(sw.Proc.Stderr.String(), "Request for a version 4 port") {
				t.Errorf("Debian's switch did not log the refused version:\n%s", sw.Proc.Stderr.String())
			}
			ports := strings.Join(sw.MustCmd(t, "port/print"), "\n")
			if strings.Count(ports, "-- endpoint") != 2 {
				t.Fatalf("port/print:\n%s", ports)
			}
		})
	}
}
