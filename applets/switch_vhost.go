package applets

import (
	"errors"
	"fmt"
	"io"
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

// vhostServers are the switch's --vhost-user sockets.
type vhostServers struct {
	servers []*vhostuser.Server
	link    string // the vhost-user link in the control directory ("" if none was made)
	once    sync.Once
}

// serveVhostUser listens on each --vhost-user path; every frontend that connects (QEMU's
// -netdev vhost-user, DPDK's virtio_user) gets a port of its own until it disconnects.
// The sockets take the data sockets' mode (-m, else 0600) and group (-g).
func serveVhostUser(sw switchCore, o *switchOptions, logf func(string, ...any)) (*vhostServers, error) {
	vs, ok := sw.(vhostSwitch)
	if !ok {
		return nil, fmt.Errorf("vhost-user: this switch cannot host in-process ports")
	}
	mode := os.FileMode(0o600)
	if o.Config.ModeSet {
		mode = os.FileMode(o.Config.Mode & 0o777)
	}
	v := &vhostServers{}
	for _, path := range o.VhostUser {
		s, err := vhostuser.Listen(path, mode, o.Config.Group, vhostuser.Options{Poll: o.Poll, Logf: logf})
		if err != nil {
			v.stop()
			return nil, err
		}
		if len(v.servers) == 0 {
			// vdeq --vhost-user finds a switch's socket through this link in its control
			// directory (-net vde names switches by control directory).
			link := filepath.Join(o.Config.CtlDir, vhostLinkName)
			abs, err := filepath.Abs(path)
			if err == nil {
				os.Remove(link)
				err = os.Symlink(abs, link)
			}
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("vhost-user: link %s: %w", link, err)
			}
			v.link = link
		}
		v.servers = append(v.servers, s)
		v.start(s, vs)
	}
	return v, nil
}

// start serves s's frontends as ports of sw.
func (v *vhostServers) start(s *vhostuser.Server, sw vhostSwitch) {
	path := s.Path()
	s.Start(func(d *vhostuser.Device, p vhostuser.Peer) error {
		_, err := sw.AttachEndpointAs(d, p.FD, p.UID, "vhost-user", fmt.Sprintf("vhost-user sock=%s pid=%d", path, p.PID))
		return err
	}, func(d *vhostuser.Device) { sw.DetachEndpoint(d) })
}

// stop closes the sockets, disconnecting every frontend, and removes the link; it is
// idempotent.
func (v *vhostServers) stop() {
	if v == nil {
		return
	}
	v.once.Do(func() {
		if v.link != "" {
			os.Remove(v.link)
		}
		for _, s := range v.servers {
			s.Close()
		}
	})
}

// The hand-over of the vhost-user servers (switch_upgrade.go): pause before the switch's
// Handover, snapshot after it; resume if the upgrade fails.

func (v *vhostServers) pause() error {
	for i, s := range v.servers {
		if err := s.Pause(); err != nil {
			for _, p := range v.servers[:i] {
				p.Resume()
			}
			return err
		}
	}
	return nil
}

func (v *vhostServers) resume() error {
	var errs []error
	for _, s := range v.servers {
		errs = append(errs, s.Resume())
	}
	return errors.Join(errs...)
}

// snapshot returns the servers' encoded state and the descriptors it names (close-on-exec
// duplicates: the caller passes them on and closes them).
func (v *vhostServers) snapshot() ([]byte, []*os.File, error) {
	st := &vhostuser.State{}
	var files []*os.File
	fail := func(err error) ([]byte, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	for _, s := range v.servers {
		if err := s.Snapshot(st, &files); err != nil {
			return fail(err)
		}
	}
	b, err := vhostuser.Encode(st)
	if err != nil {
		return fail(err)
	}
	return b, files, nil
}

// restoreVhostUser builds the servers a hand-over passed (in), before the switch: the
// switch finds their devices through find. Once the switch is restored, serve starts them
// with it; if it is not, drop lets them go without a word to any frontend.
func restoreVhostUser(in *passedState, o *switchOptions, logf func(string, ...any)) (v *vhostServers, find func(key string) (wire.Endpoint, error), err error) {
	st, err := vhostuser.Decode(in.state)
	if err != nil {
		return nil, nil, err
	}
	v = &vhostServers{}
	if len(st.Servers) > 0 {
		v.link = filepath.Join(o.Config.CtlDir, vhostLinkName) // the old switch made it
	}
	devices := map[string]*vhostuser.Device{}
	for _, ss := range st.Servers {
		s, err := vhostuser.Restore(st, ss, in.files, vhostuser.Options{Poll: o.Poll, Logf: logf})
		if err != nil {
			v.drop()
			return nil, nil, err
		}
		v.servers = append(v.servers, s)
		for _, d := range s.Devices() {
			devices[d.HandoverKey()] = d
		}
	}
	find = func(key string) (wire.Endpoint, error) {
		d, ok := devices[key]
		if !ok {
			// A frontend the restore could not take over: its port is freed (the
			// reader meets EOF at once) rather than the switch lost.
			return goneEndpoint{}, nil
		}
		return d, nil
	}
	return v, find, nil
}

// goneEndpoint stands for a vhost-user frontend that a hand-over could not carry: it
// reads EOF, and the switch frees its port.
type goneEndpoint struct{}

func (goneEndpoint) ReadBatch([][]byte, []int) (int, error) { return 0, io.EOF }
func (goneEndpoint) WriteBatch(f [][]byte) (int, error)     { return 0, nil }
func (goneEndpoint) Close() error                           { return nil }

// serve starts restored servers with the restored switch.
func (v *vhostServers) serve(sw switchCore) error {
	vs, ok := sw.(vhostSwitch)
	if !ok {
		return fmt.Errorf("vhost-user: this switch cannot host in-process ports")
	}
	for _, s := range v.servers {
		v.start(s, vs)
	}
	return nil
}

// drop releases restored servers that will not serve (the restore failed): the sockets
// stay with the binary the process goes back to.
func (v *vhostServers) drop() {
	for _, s := range v.servers {
		s.Release()
	}
	v.servers = nil
}
