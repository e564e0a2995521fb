package applets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVdeqVhostArgs(t *testing.T) {
	ctl := t.TempDir()
	target := filepath.Join(t.TempDir(), "vh.sock")
	os.WriteFile(target, nil, 0o600) // stands for the socket: vdeq only checks it is there
	if err := os.Symlink(target, filepath.Join(ctl, vhostLinkName)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc string
		args []string
		want string // the arguments vdeq gives QEMU, joined by spaces
	}{
		{"tcg, -m 660", []string{"--vhost-user", "-m", "660", "-net", "nic,vlan=1,macaddr=52:54:00:12:01:00", "-net", "vde,vlan=1,sock=" + ctl},
			"-chardev socket,id=vde0c,path=" + ctl + "/vhost-user -netdev vhost-user,id=vde0,chardev=vde0c " +
				"-device virtio-net-pci,mac=52:54:00:12:01:00,vectors=0,netdev=vde0 " +
				"-object memory-backend-memfd,id=vdeqmem,size=660M,share=on -machine memory-backend=vdeqmem -m 660"},
		{"kvm, 1G, e1000 asked", []string{"--vhost-user", "-enable-kvm", "-m", "size=1G", "-net", "nic,model=e1000", "-net", "vde,sock=" + ctl},
			"-chardev socket,id=vde0c,path=" + ctl + "/vhost-user -netdev vhost-user,id=vde0,chardev=vde0c " +
				"-device virtio-net-pci,netdev=vde0 " +
				"-object memory-backend-memfd,id=vdeqmem,size=1024M,share=on -machine memory-backend=vdeqmem -enable-kvm -m size=1G"},
		{"own memory backend", []string{"--vhost-user", "-machine", "pc,memory-backend=m", "-net", "nic", "-net", "vde,sock=" + ctl},
			"-chardev socket,id=vde0c,path=" + ctl + "/vhost-user -netdev vhost-user,id=vde0,chardev=vde0c " +
				"-device virtio-net-pci,vectors=0,netdev=vde0 -machine pc,memory-backend=m"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			p, err := parseVdeq("qemu-system-x86_64", c.args, "e1000")
			if err != nil {
				t.Fatal(err)
			}
			if !p.vhostUser {
				t.Fatal("--vhost-user not seen")
			}
			argv, err := p.vhostArgs()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(argv, " "); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
	p, _ := parseVdeq("qemu", []string{"--vhost-user", "-net", "nic", "-net", "vde,sock=" + t.TempDir()}, "e1000")
	if _, err := p.vhostArgs(); err == nil || !strings.Contains(err.Error(), "serves no vhost-user socket") {
		t.Errorf("a switch without vhost-user: %v", err)
	}
}

func TestMemSizeMiB(t *testing.T) {
	for in, want := range map[string]int64{"": 128, "512": 512, "2G": 2048, "512M": 512, "size=4G": 4096, "1048576K": 1024, "size=": 128, "x": 128} {
		args := []string{"-m", in}
		if in == "" {
			args = nil
		}
		if got := memSizeMiB(args); got != want {
			t.Errorf("-m %q: %d MiB, want %d", in, got, want)
		}
	}
}
