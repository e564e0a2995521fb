package applets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// vhostLinkName is the link a switch started with --vhost-user leaves in its control
// directory, to its (first) vhost-user socket: how vdeq finds the socket of a switch its
// -net vde names by control directory.
const vhostLinkName = "vhost-user"

// vhostArgs turns every VDE card into a virtio-net NIC on its switch's vhost-user socket:
// a chardev, a vhost-user netdev and a virtio-net-pci device with the card's MAC. The
// guest's RAM must be shareable with the switch, so unless the command line already picks
// a memory backend, a memfd backend of the machine's -m size is added.
func (p *vdeqPlan) vhostArgs() ([]string, error) {
	var argv []string
	kvm := usesKVM(p.args)
	for i, n := range p.nics {
		sock, err := n.switchDir()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(sock, vhostLinkName)
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("switch %s serves no vhost-user socket (%s): start it with --vhost-user PATH", sock, path)
			}
			return nil, fmt.Errorf("switch %s: %w", sock, err)
		}
		id := fmt.Sprintf("vde%d", i)
		argv = append(argv,
			"-chardev", "socket,id="+id+"c,path="+escapeOpt(path),
			"-netdev", "vhost-user,id="+id+",chardev="+id+"c",
			"-device", vhostDevice(n.device, kvm)+",netdev="+id)
	}
	if !hasMemoryBackend(p.args) {
		argv = append(argv,
			"-object", fmt.Sprintf("memory-backend-memfd,id=vdeqmem,size=%dM,share=on", memSizeMiB(p.args)),
			"-machine", "memory-backend=vdeqmem")
	}
	return append(argv, p.args...), nil
}

// vhostDevice makes a -device value a virtio-net-pci NIC (vhost-user serves virtio-net
// only) with the card's other options. Without KVM, QEMU 7.2 crashes (SIGSEGV) when the
// guest starts a vhost-user virtio-net device with MSI-X vectors: there are no irqfds
// under TCG and its fallback faults; vectors=0 (the legacy interrupt) works, so it is
// added then, and only then.
func vhostDevice(device string, kvm bool) string {
	opts := splitOpts(device)
	out := []string{"virtio-net-pci"}
	vectors := false
	for _, o := range opts[1:] {
		if strings.HasPrefix(o, "vectors=") {
			vectors = true
		}
		out = append(out, o)
	}
	if !kvm && !vectors {
		out = append(out, "vectors=0")
	}
	return joinOpts(out)
}

// usesKVM reports whether QEMU's arguments ask for KVM.
func usesKVM(args []string) bool {
	for i, a := range args {
		switch {
		case a == "-enable-kvm" || a == "--enable-kvm":
			return true
		case (a == "-accel" || a == "-machine" || a == "-M") && i+1 < len(args):
			for _, o := range splitOpts(args[i+1]) {
				if o == "kvm" || o == "accel=kvm" || strings.HasPrefix(o, "accel=kvm:") {
					return true
				}
			}
		}
	}
	return false
}

func hasMemoryBackend(args []string) bool {
	for i, a := range args {
		if a == "-mem-path" || ((a == "-machine" || a == "-M") && i+1 < len(args) && strings.Contains(args[i+1], "memory-backend=")) {
			return true
		}
	}
	return false
}

// memSizeMiB is the guest RAM that -m asks for, in MiB (QEMU's default, 128, without -m).
// QEMU reads a bare number as MiB and takes K, M, G and T suffixes, or size=.
func memSizeMiB(args []string) int64 {
	size := int64(128)
	for i, a := range args {
		if (a != "-m" && a != "--m") || i+1 >= len(args) {
			continue
		}
		v := args[i+1]
		for _, o := range splitOpts(v) {
			if k, val, ok := strings.Cut(o, "="); ok && k == "size" {
				v = val
			} else if !ok {
				v = o
			}
		}
		if v == "" {
			continue
		}
		mult := int64(1)
		switch strings.ToUpper(v[len(v)-1:]) {
		case "K":
			mult, v = -1024, v[:len(v)-1]
		case "M":
			v = v[:len(v)-1]
		case "G":
			mult, v = 1024, v[:len(v)-1]
		case "T":
			mult, v = 1024*1024, v[:len(v)-1]
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			continue
		}
		if mult < 0 {
			size = (n + 1023) / 1024
		} else {
			size = n * mult
		}
	}
	return size
}
