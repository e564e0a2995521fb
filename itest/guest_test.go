package itest

// The tiny guest the QEMU tests boot: a kernel from Debian's linux-image-amd64 and a
// busybox-static initramfs with the e1000 driver and an /init that runs a scenario read
// from the kernel command line, prints result markers on the serial console and powers
// the machine off.
//
// It is built once per machine from nothing but apt, and cached outside the repo under
// guestCacheRoot/<key>/ (the key names the kernel and busybox package versions and a hash
// of the build recipe):
//
//	apt-get download linux-image-amd64 linux-image-<ABI>-amd64 busybox-static
//	dpkg-deb -x ...   (nothing is installed)
//
// The kernel is the uncompressed ELF vmlinux taken out of the bzImage (its PVH entry note
// lets QEMU boot it with -kernel, which is several seconds faster under TCG than letting
// the bzImage decompress itself); if that fails the bzImage is used as it is. Modules
// are taken with their dependencies (read from each module's .modinfo) and stored
// uncompressed, since busybox insmod cannot read compressed ones. The initramfs is an
// uncompressed newc cpio archive written here.
//
// Scenario words on the kernel command line (values without spaces):
//
//	vde.ip=CIDR       static address on eth0
//	vde.dhcp=1        lease an address with busybox udhcpc
//	vde.ping=A[,B..]  ping each address until it answers (up to ~30 tries)
//	vde.get=URL       fetch URL with busybox wget and print its sha256
//	vde.sha=HEX       ... and compare it with HEX
//	vde.hold=1        stay up when done (the test stops QEMU), else poweroff -f
//
// The console shows one line per step: "VDE-GUEST-OK <step> ..." or
// "VDE-GUEST-FAIL <step> ...", framed by "VDE-GUEST-START mac=..." and
// "VDE-GUEST-DONE rc=N".

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// guestCacheRoot holds one directory per built guest, a lock file and build temporaries.
const guestCacheRoot = "/var/tmp/vde-itest-guest"

// guestRecipe changes whenever the build below changes in a way the key would not see.
const guestRecipe = "guest-v2"

// guestModules are the kernel options the guest needs that may be modules: the config
// symbol and the module that provides it. Built-in (=y) needs nothing.
var guestModules = []struct{ config, module string }{
	{"CONFIG_E1000", "e1000"},
	{"CONFIG_PACKET", "af_packet"},      // udhcpc's raw socket
	{"CONFIG_VIRTIO_PCI", "virtio_pci"}, // the vhost-user guests' NIC
	{"CONFIG_VIRTIO_NET", "virtio_net"},
}

// guestInit is /init.
const guestInit = `#!/bin/sh
# /init of the vde itest guest (built by itest/guest_test.go)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp
say() { echo "VDE-GUEST-$*"; }
arg() {
	for w in $(cat /proc/cmdline); do
		case "$w" in "vde.$1="*) echo "${w#*=}"; return 0;; esac
	done
	return 1
}
rc=0
fail() { say "FAIL $*"; rc=1; }
for m in $(cat /modules); do
	insmod "/lib/modules/$m.ko" || fail "insmod $m"
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
say "START mac=$(cat /sys/class/net/eth0/address) uptime=$(cut -d' ' -f1 /proc/uptime)"
if a=$(arg ip); then
	if ip addr add "$a" dev eth0; then say "OK ip $a"; else fail "ip $a"; fi
fi
if [ "$(arg dhcp)" = 1 ]; then
	if udhcpc -i eth0 -f -q -n -t 30 -T 1 -s /udhcpc.sh >/tmp/udhcpc.log 2>&1 && [ -s /tmp/lease ]; then
		say "OK dhcp $(cat /tmp/lease)"
	else
		fail "dhcp: $(tr '\n' ' ' </tmp/udhcpc.log)"
	fi
fi
if p=$(arg ping); then
	for a in $(echo "$p" | tr , ' '); do
		n=1
		until ping -c 1 -W 1 "$a" >/tmp/ping.log 2>&1; do
			n=$((n+1))
			[ $n -gt 30 ] && break
		done
		if [ $n -le 30 ]; then say "OK ping $a tries=$n"; else fail "ping $a: $(tr '\n' ' ' </tmp/ping.log)"; fi
	done
fi
if u=$(arg get); then
	n=1
	# (busybox 1.35's wget -T crashes: timeout bounds it instead)
	until timeout 30 wget -q -O /tmp/get "$u" 2>/tmp/wget.log; do
		n=$((n+1))
		[ $n -gt 5 ] && break
		sleep 1
	done
	if [ $n -le 5 ]; then
		s=$(sha256sum /tmp/get | cut -d' ' -f1)
		say "OK get sha256=$s bytes=$(wc -c </tmp/get) tries=$n"
		if w=$(arg sha) && [ "$w" != "$s" ]; then fail "sha want=$w"; fi
	else
		fail "get $u: $(tr '\n' ' ' </tmp/wget.log)"
	fi
fi
say "DONE rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ "$(arg hold)" = 1 ]; then
	while :; do sleep 3600; done
fi
poweroff -f
`

// guestUdhcpc is busybox udhcpc's event script in the guest.
const guestUdhcpc = `#!/bin/sh
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
	echo "ip=$ip mask=$mask router=${router%% *} dns=${dns%% *} serverid=$serverid" >/tmp/lease
	;;
esac
exit 0
`

// guestBuilt is the per-process result of tinyGuest's build or cache lookup.
var guestBuilt struct {
	once           sync.Once
	kernel, initrd string
	log            string
	skip           string
	err            error
}

// tinyGuest returns the guest's kernel and initramfs, building them into the cache if
// they are not there yet. The build is safe against concurrent tests and test binaries.
func tinyGuest(t testing.TB) (kernel, initrd string) {
	t.Helper()
	g := &guestBuilt
	first := false
	g.once.Do(func() {
		first = true
		var log strings.Builder
		g.kernel, g.initrd, g.skip, g.err = guestFromCache(&log)
		g.log = log.String()
	})
	if first && g.log != "" {
		t.Logf("tiny guest:\n%s", strings.TrimSpace(g.log))
	}
	if g.skip != "" {
		t.Skip(g.skip)
	}
	if g.err != nil {
		t.Fatalf("tiny guest: %v\n%s", g.err, g.log)
	}
	return g.kernel, g.initrd
}

// guestKey resolves linux-image-amd64 to the real kernel package and asks apt for the
// candidate versions: the cache key, without downloading anything.
func guestKey() (kpkg, key string, err error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("apt-cache depends linux-image-amd64: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-\S+-amd64)\s*$`).FindSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("apt-cache depends linux-image-amd64 names no linux-image-*-amd64:\n%s", out)
	}
	kpkg = string(m[1])
	kver, err := aptCandidate(kpkg)
	if err != nil {
		return "", "", err
	}
	bver, err := aptCandidate("busybox-static")
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	for _, s := range []string{guestRecipe, guestInit, guestUdhcpc, fmt.Sprint(guestModules)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	key = fmt.Sprintf("%s_%s+busybox_%s+%x", kpkg, kver, bver, h.Sum(nil)[:4])
	key = regexp.MustCompile(`[^A-Za-z0-9._+-]`).ReplaceAllString(key, "_")
	return kpkg, key, nil
}

// aptCandidate is the version apt-get download would fetch.
func aptCandidate(pkg string) (string, error) {
	out, err := exec.Command("apt-cache", "policy", pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-cache policy %s: %v\n%s", pkg, err, out)
	}
	m := regexp.MustCompile(`(?m)^\s*Candidate:\s*(\S+)`).FindSubmatch(out)
	if m == nil || string(m[1]) == "(none)" {
		return "", fmt.Errorf("apt has no candidate for %s (apt-get update?):\n%s", pkg, out)
	}
	return string(m[1]), nil
}

// guestFiles are the files of a cached guest.
func guestFiles(dir string) (kernel, initrd string, ok bool) {
	initrd = filepath.Join(dir, "initrd.cpio")
	if _, err := os.Stat(initrd); err != nil {
		return "", "", false
	}
	for _, k := range []string{"vmlinux", "vmlinuz"} {
		if _, err := os.Stat(filepath.Join(dir, k)); err == nil {
			return filepath.Join(dir, k), initrd, true
		}
	}
	return "", "", false
}

// guestFromCache finds or builds the guest.
func guestFromCache(log io.Writer) (kernel, initrd, skip string, err error) {
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", "", fmt.Sprintf("the tiny guest needs Debian's apt and dpkg-deb: %v", err), nil
		}
	}
	kpkg, key, kerr := guestKey()
	if kerr != nil {
		// No package lists: a guest built earlier will do.
		dirs, _ := filepath.Glob(filepath.Join(guestCacheRoot, "linux-image-*"))
		slices.Sort(dirs)
		for i := len(dirs) - 1; i >= 0; i-- {
			if k, r, ok := guestFiles(dirs[i]); ok {
				fmt.Fprintf(log, "apt cannot name the kernel (%v); using the cached %s\n", kerr, dirs[i])
				return k, r, "", nil
			}
		}
		return "", "", "", kerr
	}
	dir := filepath.Join(guestCacheRoot, key)
	if k, r, ok := guestFiles(dir); ok {
		fmt.Fprintf(log, "cached: %s\n", dir)
		return k, r, "", nil
	}
	if err := os.MkdirAll(guestCacheRoot, 0755); err != nil {
		return "", "", "", err
	}
	lock, err := os.OpenFile(filepath.Join(guestCacheRoot, ".lock"), os.O_RDWR|os.O_CREATE, 0644)
	if err != nil {
		return "", "", "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", "", "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if k, r, ok := guestFiles(dir); ok { // another process built it meanwhile
		fmt.Fprintf(log, "cached (built by another process): %s\n", dir)
		return k, r, "", nil
	}
	// Under the lock, build directories left behind are from killed builds.
	stale, _ := filepath.Glob(filepath.Join(guestCacheRoot, ".build-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	tmp, err := os.MkdirTemp(guestCacheRoot, ".build-")
	if err != nil {
		return "", "", "", err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	out := filepath.Join(tmp, "out")
	if err := buildGuest(log, tmp, out, kpkg); err != nil {
		return "", "", "", err
	}
	fmt.Fprintf(log, "built in %v\n", time.Since(start).Round(time.Millisecond))
	os.WriteFile(filepath.Join(out, "build.log"), []byte(fmt.Sprint(log)), 0644)
	os.RemoveAll(dir) // a partial directory cannot exist, but be sure
	if err := os.Rename(out, dir); err != nil {
		return "", "", "", err
	}
	k, r, ok := guestFiles(dir)
	if !ok {
		return "", "", "", fmt.Errorf("%s: incomplete after build", dir)
	}
	fmt.Fprintf(log, "cache: %s\n", dir)
	// Guests of older package versions go once they are a day old (a test that still
	// uses one has its files open already).
	old, _ := filepath.Glob(filepath.Join(guestCacheRoot, "linux-image-*"))
	for _, d := range old {
		if st, err := os.Stat(d); err == nil && d != dir && time.Since(st.ModTime()) > 24*time.Hour {
			fmt.Fprintf(log, "removing the old guest %s\n", d)
			os.RemoveAll(d)
		}
	}
	return k, r, "", nil
}

// guestRun runs a build command in dir with a generous limit and returns its output.
func guestRun(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var b syncBuffer
	cmd.Stdout, cmd.Stderr = &b, &b
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return []byte(b.String()), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b.String())
		}
		return []byte(b.String()), nil
	case <-time.After(15 * time.Minute):
		cmd.Process.Kill()
		<-done
		return nil, fmt.Errorf("%s %s: killed after 15 minutes", name, strings.Join(args, " "))
	}
}

// buildGuest downloads and unpacks the packages in tmp and writes the guest into out.
func buildGuest(log io.Writer, tmp, out, kpkg string) error {
	dl := filepath.Join(tmp, "dl")
	if err := os.MkdirAll(dl, 0755); err != nil {
		return err
	}
	os.Chmod(tmp, 0755)
	os.Chmod(dl, 0777) // apt-get download fetches as _apt where it can
	t0 := time.Now()
	if _, err := guestRun(dl, "apt-get", "download", "linux-image-amd64", kpkg, "busybox-static"); err != nil {
		return err
	}
	debs := map[string]string{} // package -> .deb
	ents, _ := os.ReadDir(dl)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".deb") {
			continue
		}
		p := filepath.Join(dl, e.Name())
		f, err := guestRun(dl, "dpkg-deb", "-f", p, "Package", "Version", "Depends")
		if err != nil {
			return err
		}
		fields := parseControl(string(f))
		debs[fields["Package"]] = p
		fmt.Fprintf(log, "downloaded %s %s (%d bytes)\n", fields["Package"], fields["Version"], fileSize(p))
		if fields["Package"] == "linux-image-amd64" && !strings.Contains(fields["Depends"], kpkg) {
			return fmt.Errorf("linux-image-amd64 depends on %q, apt-cache said %s", fields["Depends"], kpkg)
		}
	}
	for _, p := range []string{kpkg, "busybox-static"} {
		if debs[p] == "" {
			return fmt.Errorf("apt-get download left no .deb of %s in %s", p, dl)
		}
	}
	kdir, bdir := filepath.Join(tmp, "kernel"), filepath.Join(tmp, "busybox")
	for deb, d := range map[string]string{debs[kpkg]: kdir, debs["busybox-static"]: bdir} {
		if _, err := guestRun(tmp, "dpkg-deb", "-x", deb, d); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "downloaded and unpacked in %v\n", time.Since(t0).Round(time.Millisecond))
	busybox := filepath.Join(bdir, "bin", "busybox")
	if err := checkStatic(busybox); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0755); err != nil {
		return err
	}

	// The kernel.
	vmlinuz, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return fmt.Errorf("%s: want one boot/vmlinuz-*, have %v", kpkg, vmlinuz)
	}
	kver := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	bz, err := os.ReadFile(vmlinuz[0])
	if err != nil {
		return err
	}
	t1 := time.Now()
	if vmlinux, how, err := extractVmlinux(bz, tmp, busybox); err != nil {
		fmt.Fprintf(log, "no vmlinux (%v): booting the bzImage\n", err)
		if err := os.WriteFile(filepath.Join(out, "vmlinuz"), bz, 0644); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(log, "vmlinux: %d bytes from the %d-byte bzImage (%s) in %v\n",
			len(vmlinux), len(bz), how, time.Since(t1).Round(time.Millisecond))
		if err := os.WriteFile(filepath.Join(out, "vmlinux"), vmlinux, 0644); err != nil {
			return err
		}
	}

	// The modules.
	mods, err := guestModuleFiles(log, kdir, kver, tmp, busybox)
	if err != nil {
		return err
	}

	// The initramfs.
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	cw := &cpioWriter{w: &buf}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"} {
		cw.dir(d)
	}
	cw.node("dev/console", syscall.S_IFCHR|0600, 5, 1)
	cw.node("dev/null", syscall.S_IFCHR|0666, 1, 3)
	cw.file("bin/busybox", 0755, bb)
	cw.symlink("bin/sh", "busybox")
	cw.file("init", 0755, []byte(guestInit))
	cw.file("udhcpc.sh", 0755, []byte(guestUdhcpc))
	var order []string
	for _, m := range mods {
		cw.file("lib/modules/"+m.name+".ko", 0644, m.data)
		order = append(order, m.name)
	}
	cw.file("modules", 0644, []byte(strings.Join(order, "\n")+"\n"))
	if err := cw.close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "initrd.cpio"), buf.Bytes(), 0644); err != nil {
		return err
	}
	fmt.Fprintf(log, "initrd.cpio: %d bytes (busybox %d bytes, modules %v)\n", buf.Len(), len(bb), order)
	return nil
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return -1
	}
	return st.Size()
}

// parseControl reads "Field: value" lines.
func parseControl(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, " ") {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// checkStatic makes sure the busybox can run without a dynamic loader.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("busybox %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("busybox %s is dynamically linked", path)
		}
	}
	return nil
}

// --- the kernel ----------------------------------------------------------------------------

// extractVmlinux takes the compressed kernel out of a bzImage, as the kernel's
// scripts/extract-vmlinux does, but from the boot header rather than by searching for
// magic numbers: the payload is at (setup_sects+1)*512 + payload_offset and is the
// compressed vmlinux followed by its 4-byte little-endian length. The result must be an
// ELF with the PVH entry note, which QEMU needs to boot it with -kernel.
func extractVmlinux(bz []byte, tmp, busybox string) ([]byte, string, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" {
		return nil, "", errors.New("not a bzImage")
	}
	if v := binary.LittleEndian.Uint16(bz[0x206:]); v < 0x208 {
		return nil, "", fmt.Errorf("boot protocol %#x has no payload fields", v)
	}
	setup := int(bz[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if n < 4 || off+n > len(bz) {
		return nil, "", fmt.Errorf("payload %d+%d outside the %d-byte image", off, n, len(bz))
	}
	payload := bz[off : off+n-4]
	size := int(binary.LittleEndian.Uint32(bz[off+n-4:]))
	var raw []byte
	var how string
	var err error
	switch {
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		how = "gzip"
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(payload)); err == nil {
			zr.Multistream(false)
			raw, err = io.ReadAll(zr)
		}
	case bytes.HasPrefix(payload, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		// The kernel's xz stream uses the x86 BCJ filter, which busybox's xz decoder
		// lacks: xz-utils is needed.
		how = "xz"
		raw, err = decompressWith(tmp, payload, xzCommand(tmp))
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		how = "zstd"
		raw, err = decompressWith(tmp, payload, []string{"zstd", "-dc"})
	default:
		return nil, "", fmt.Errorf("payload compression % x not handled", payload[:min(6, len(payload))])
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", how, err)
	}
	if len(raw) != size {
		return nil, "", fmt.Errorf("%s: %d bytes, the image says %d", how, len(raw), size)
	}
	if err := checkPVH(raw); err != nil {
		return nil, "", err
	}
	return raw, how, nil
}

// xzCommand is xz-utils' xz: on PATH, or downloaded with apt-get and unpacked (it only
// needs liblzma, which apt and dpkg need too).
func xzCommand(tmp string) []string {
	if p, err := exec.LookPath("xz"); err == nil {
		return []string{p, "-dc"}
	}
	dir := filepath.Join(tmp, "xz-utils")
	os.MkdirAll(dir, 0777)
	os.Chmod(dir, 0777)
	if _, err := guestRun(dir, "apt-get", "download", "xz-utils"); err == nil {
		debs, _ := filepath.Glob(filepath.Join(dir, "xz-utils_*.deb"))
		if len(debs) == 1 {
			if _, err := guestRun(dir, "dpkg-deb", "-x", debs[0], filepath.Join(dir, "root")); err == nil {
				return []string{filepath.Join(dir, "root", "usr", "bin", "xz"), "-dc"}
			}
		}
	}
	return []string{"xz", "-dc"} // fails with a clear "not found"
}

// decompressWith pipes b through argv.
func decompressWith(dir string, b []byte, argv []string) ([]byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(b)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// checkPVH checks that b is an x86-64 ELF with the Xen PVH entry note
// (XEN_ELFNOTE_PHYS32_ENTRY, type 18, name "Xen").
func checkPVH(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("vmlinux: %w", err)
	}
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("vmlinux is for %v", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		d, err := io.ReadAll(p.Open())
		if err != nil {
			return err
		}
		for len(d) >= 12 {
			nsz, dsz, typ := binary.LittleEndian.Uint32(d), binary.LittleEndian.Uint32(d[4:]), binary.LittleEndian.Uint32(d[8:])
			na := (int(nsz) + 3) &^ 3
			da := (int(dsz) + 3) &^ 3
			if 12+na+da > len(d) {
				break
			}
			if typ == 18 && string(bytes.TrimRight(d[12:12+int(nsz)], "\x00")) == "Xen" {
				return nil
			}
			d = d[12+na+da:]
		}
	}
	return errors.New("vmlinux has no PVH entry note (CONFIG_PVH): QEMU cannot boot it with -kernel")
}

// --- the modules ---------------------------------------------------------------------------

type guestModule struct {
	name string
	data []byte
}

// guestModuleFiles returns the modules the guest needs, dependencies first, uncompressed.
// Debian's package has no modules.dep (depmod makes it at installation), so the
// dependencies come from each module's .modinfo "depends=".
func guestModuleFiles(log io.Writer, kdir, kver, tmp, busybox string) ([]guestModule, error) {
	moddir := filepath.Join(kdir, "lib", "modules", kver)
	config, err := os.ReadFile(filepath.Join(kdir, "boot", "config-"+kver))
	if err != nil {
		return nil, err
	}
	var want []string
	for _, m := range guestModules {
		v := regexp.MustCompile(`(?m)^` + m.config + `=(.)`).FindSubmatch(config)
		switch {
		case v == nil:
			return nil, fmt.Errorf("kernel %s lacks %s", kver, m.config)
		case string(v[1]) == "m":
			want = append(want, m.module)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	files := map[string]string{} // module name -> path
	filepath.WalkDir(filepath.Join(moddir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if name, ok := moduleName(d.Name()); ok {
				files[name] = p
			}
		}
		return nil
	})
	var mods []guestModule
	seen := map[string]bool{}
	var add func(name string, from []string) error
	add = func(name string, from []string) error {
		name = strings.ReplaceAll(name, "-", "_")
		if seen[name] {
			return nil
		}
		seen[name] = true
		p := files[name]
		if p == "" {
			return fmt.Errorf("module %s (needed by %v) not in %s", name, from, moddir)
		}
		data, err := readModule(p, tmp)
		if err != nil {
			return err
		}
		for _, dep := range moduleDepends(data) {
			if err := add(dep, append(from, name)); err != nil {
				return err
			}
		}
		rel, _ := filepath.Rel(moddir, p)
		fmt.Fprintf(log, "module %s: %s (%d bytes)\n", name, rel, len(data))
		mods = append(mods, guestModule{name, data})
		return nil
	}
	for _, m := range want {
		if err := add(m, nil); err != nil {
			return nil, err
		}
	}
	return mods, nil
}

// moduleName is the module name of a file name, for .ko and compressed .ko.* files.
func moduleName(file string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(file, ext) {
			return strings.ReplaceAll(strings.TrimSuffix(file, ext), "-", "_"), true
		}
	}
	return "", false
}

// readModule reads a module and decompresses it if need be.
func readModule(p, tmp string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasSuffix(p, ".ko.gz"):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return io.ReadAll(zr)
	case strings.HasSuffix(p, ".ko.xz"):
		return decompressWith(tmp, b, xzCommand(tmp))
	case strings.HasSuffix(p, ".ko.zst"):
		return decompressWith(tmp, b, []string{"zstd", "-dc"})
	}
	return b, nil
}

// moduleDepends reads "depends=" from a module's .modinfo section.
func moduleDepends(ko []byte) []string {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil
	}
	d, err := s.Data()
	if err != nil {
		return nil
	}
	for _, kv := range bytes.Split(d, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok && len(v) > 0 {
			return strings.Split(string(v), ",")
		}
	}
	return nil
}

// --- newc cpio -----------------------------------------------------------------------------

// cpioWriter writes the "newc" (070701) cpio format the kernel unpacks as initramfs:
// a 110-byte ASCII header of thirteen 8-digit hex fields, the NUL-terminated name padded
// to a multiple of 4, the data padded to a multiple of 4; "TRAILER!!!" ends it.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	err error
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte, rmajor, rminor uint32) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := uint32(1)
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	bw := bufio.NewWriter(c.w)
	// ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
	fmt.Fprintf(bw, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	bw.WriteString(name)
	bw.WriteByte(0)
	bw.Write(make([]byte, pad4(110+len(name)+1)))
	bw.Write(data)
	bw.Write(make([]byte, pad4(len(data))))
	c.err = bw.Flush()
}

func pad4(n int) int { return (4 - n%4) % 4 }

func (c *cpioWriter) dir(name string) { c.entry(name, syscall.S_IFDIR|0755, nil, 0, 0) }
func (c *cpioWriter) file(name string, perm uint32, b []byte) {
	c.entry(name, syscall.S_IFREG|perm, b, 0, 0)
}
func (c *cpioWriter) symlink(name, target string) {
	c.entry(name, syscall.S_IFLNK|0777, []byte(target), 0, 0)
}
func (c *cpioWriter) node(name string, mode, major, minor uint32) {
	c.entry(name, mode, nil, major, minor)
}

func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	return c.err
}

// --- console markers -----------------------------------------------------------------------

// guestMarker is one "VDE-GUEST-<KIND> <step> <rest>" line of the console.
type guestMarker struct {
	Kind string // START, OK, FAIL, DONE
	Step string // for OK and FAIL: dhcp, ping, get, ...
	Rest string
	Line string
}

// A marker counts only once its line is complete (the guest's echo ends it with a
// newline): the console is read while QEMU writes it, and a half-written
// "VDE-GUEST-DONE r" (without "c=0") failed a test under load.
var guestMarkerRE = regexp.MustCompile(`VDE-GUEST-(START|OK|FAIL|DONE)\b ?([^\r\n]*)\r?\n`)

// parseGuestMarkers finds the complete marker lines in console output.
func parseGuestMarkers(console string) []guestMarker {
	var ms []guestMarker
	for _, m := range guestMarkerRE.FindAllStringSubmatch(console, -1) {
		g := guestMarker{Kind: m[1], Rest: m[2], Line: strings.TrimRight(m[0], "\r\n")}
		if g.Kind == "OK" || g.Kind == "FAIL" {
			g.Step, g.Rest, _ = strings.Cut(m[2], " ")
			g.Step = strings.TrimSuffix(g.Step, ":")
		}
		ms = append(ms, g)
	}
	return ms
}

// guestFields parses "k=v k=v" words.
func guestFields(s string) map[string]string {
	m := map[string]string{}
	for _, w := range strings.Fields(s) {
		if k, v, ok := strings.Cut(w, "="); ok {
			m[k] = v
		}
	}
	return m
}

// sha256Hex is the hex sha256 of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestGuestMarkersWholeLines: a marker line QEMU has only half written is not a marker yet.
func TestGuestMarkersWholeLines(t *testing.T) {
	console := "VDE-GUEST-START mac=52:54:00:12:01:00 uptime=7.75\r\nVDE-GUEST-OK ping 10.0.2.2 tries=1\nVDE-GUEST-DONE r"
	ms := parseGuestMarkers(console)
	if len(ms) != 2 || ms[0].Kind != "START" || ms[1].Kind != "OK" || ms[1].Step != "ping" || ms[1].Line != "VDE-GUEST-OK ping 10.0.2.2 tries=1" {
		t.Fatalf("markers %+v, want START and OK ping without the half-written DONE", ms)
	}
	ms = parseGuestMarkers(console + "c=0 uptime=12.05\n")
	if len(ms) != 3 || ms[2].Kind != "DONE" || guestFields(ms[2].Rest)["rc"] != "0" {
		t.Fatalf("markers %+v, want DONE rc=0 last", ms)
	}
}

// TestGuestBuild builds (or finds) the tiny guest and checks the initramfs archive.
func TestGuestBuild(t *testing.T) {
	kernel, initrd := tinyGuest(t)
	b, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	names := cpioNames(t, b)
	for _, want := range []string{"init", "bin/busybox", "bin/sh", "dev/console", "modules", "udhcpc.sh"} {
		if !slices.Contains(names, want) {
			t.Errorf("initramfs lacks %s (has %v)", want, names)
		}
	}
	t.Logf("kernel %s (%d bytes), initramfs %s (%d bytes, %d entries)", kernel, fileSize(kernel), initrd, len(b), len(names))
}

// cpioNames reads back the names of a newc archive (a check of cpioWriter).
func cpioNames(t testing.TB, b []byte) []string {
	t.Helper()
	var names []string
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("cpio: bad header at %d", off)
		}
		var f [13]uint64
		for i := range f {
			fmt.Sscanf(string(b[off+6+8*i:off+14+8*i]), "%08X", &f[i])
		}
		nsz, fsz := int(f[11]), int(f[6])
		name := string(b[off+110 : off+110+nsz-1])
		if name == "TRAILER!!!" {
			return names
		}
		names = append(names, name)
		off += 110 + nsz
		off += pad4(off)
		off += fsz
		off += pad4(off)
	}
}
