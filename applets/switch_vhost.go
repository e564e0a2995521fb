package applets

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/vde-go/vde/switchcore/vhostuser"
	"github.com/vde-go/vde/switchcore/wire"
)

// vhostSwitch is what --vhost-user needs of the switch: ports for in-process endpoints
// on behalf of a user (the frontend's, for the port's access control and port/print).
type vhostSwitch interface {
	AttachEndpointAs(e wire.Endpoint, id, uid int, module, descr string) (port int, err error)
	DetachEndpoint(e wire.Endpoint)
}

// serveVhostUser listens on each --vhost-user path; every frontend that connects (QEMU's
// -netdev vhost-user, DPDK's virtio_user) gets a port of its own until it disconnects.
// The sockets take the data sockets' mode (-m, else 0600) and group (-g).
func serveVhostUser(sw switchCore, o *switchOptions, logf func(string, ...any)) (stop func(), err error) {
	vs, ok := sw.(vhostSwitch)
	if !ok {
		return nil, fmt.Errorf("vhost-user: this switch cannot host in-process ports")
	}
	mode := os.FileMode(0o600)
	if o.Config.ModeSet {
		mode = os.FileMode(o.Config.Mode & 0o777)
	}
	var servers []*vhostuser.Server
	link := filepath.Join(o.Config.CtlDir, vhostLinkName)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if len(servers) > 0 {
				os.Remove(link)
			}
			for _, s := range servers {
				s.Close()
			}
		})
	}
	for _, path := range o.VhostUser {
		s, err := vhostuser.Listen(path, mode, o.Config.Group, vhostuser.Options{Poll: o.Poll, Logf: logf})
		if err != nil {
			stop()
			return nil, err
		}
		if len(servers) == 0 {
			// vdeq --vhost-user finds a switch's socket through this link in its control
			// directory (-net vde names switches by control directory).
			abs, err := filepath.Abs(path)
			if err == nil {
				os.Remove(link)
				err = os.Symlink(abs, link)
			}
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("vhost-user: link %s: %w", link, err)
			}
		}
		servers = append(servers, s)
		go s.Serve(func(d *vhostuser.Device, p vhostuser.Peer) error {
			_, err := vs.AttachEndpointAs(d, p.FD, p.UID, "vhost-user", fmt.Sprintf("vhost-user sock=%s pid=%d", path, p.PID))
			return err
		}, func(d *vhostuser.Device) { vs.DetachEndpoint(d) })
	}
	return stop, nil
}
