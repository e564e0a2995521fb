package itest

// A real firmware client: QEMU (TCG, no disk) network-boots with its iPXE option ROM
// through our switch and our slirpvde. iPXE does DHCP (the boot file comes from
// --bootfile), ARP, TFTP (a multi-block iPXE script from -t DIR) and then, as that script
// says, an HTTP request over slirp's TCP NAT to a Go server on 127.0.0.1 in the slirp
// namespace (slirp maps 10.0.2.2 to the host's loopback). The switch is a hub and an
// in-process wire peer records every frame, so the exchange is checked on the wire as
// well as by its effects (the HTTP request, the script's output on the serial console:
// SeaBIOS's serial console shows iPXE's text when the machine has no VGA).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vde-go/vde/switchcore/wire"
)

// pxeROMs are where Debian's ipxe-qemu puts the e1000 ROM QEMU 7.2 loads by default.
var pxeROMs = []string{
	"/usr/lib/ipxe/qemu/efi-e1000.rom",
	"/usr/share/qemu/efi-e1000.rom",
	"/usr/lib/ipxe/qemu/pxe-e1000.rom",
	"/usr/share/qemu/pxe-e1000.rom",
}

const (
	pxeGuestMAC  = "52:54:00:12:34:56"
	pxeBootFile  = "boot.ipxe"
	pxeBootLimit = 45 * time.Second // from QEMU start to the HTTP request: ~5 s, or ~18 s without -6
	// pxeGuestSLAAC is the address iPXE makes from slirpvde -6's RA (prefix fd00::/64).
	pxeGuestSLAAC = "fd00::5054:ff:fe12:3456"
)

// pxeRecorder keeps every frame a peer receives.
type pxeRecorder struct {
	mu     sync.Mutex
	frames [][]byte
	times  []time.Time
}

func pxeRecordFrames(p *peer) *pxeRecorder {
	r := &pxeRecorder{}
	go func() {
		for f := range p.rx {
			r.mu.Lock()
			r.frames = append(r.frames, f)
			r.times = append(r.times, time.Now())
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *pxeRecorder) all() []pxeFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]pxeFrame, 0, len(r.frames))
	for i, f := range r.frames {
		p := parsePXEFrame(f)
		p.Time = r.times[i]
		out = append(out, p)
	}
	return out
}

// pxeFrame is a decoded Ethernet frame: ARP, or IPv4 with UDP or TCP.
type pxeFrame struct {
	Time     time.Time // when the recorder got it
	Raw      []byte
	Dst, Src net.HardwareAddr
	EType    uint16
	// ARP
	ARPOp        uint16
	ARPSenderMAC net.HardwareAddr
	ARPSender    net.IP
	ARPTarget    net.IP
	// IPv4
	IP             []byte // header and payload as the IP length says
	SIP, DIP       net.IP
	Proto          byte
	SPort, DPort   uint16
	TCPFlags       byte
	L4             []byte // UDP or TCP segment
	Payload        []byte // UDP or TCP payload
	IPv4, UDP, TCP bool
	// IPv6: ICMPv6 without extension headers
	ICMP6     bool
	ICMP6Type byte
}

func parsePXEFrame(f []byte) pxeFrame {
	p := pxeFrame{Raw: f}
	if len(f) < 14 {
		return p
	}
	p.Dst, p.Src = net.HardwareAddr(f[0:6]), net.HardwareAddr(f[6:12])
	p.EType = binary.BigEndian.Uint16(f[12:])
	b := f[14:]
	switch p.EType {
	case 0x0806:
		if len(b) >= 28 {
			p.ARPOp = binary.BigEndian.Uint16(b[6:])
			p.ARPSenderMAC = net.HardwareAddr(b[8:14])
			p.ARPSender, p.ARPTarget = net.IP(b[14:18]), net.IP(b[24:28])
		}
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return p
		}
		plen := int(binary.BigEndian.Uint16(b[4:]))
		if b[6] == 58 && plen >= 4 && 40+plen <= len(b) {
			p.ICMP6, p.ICMP6Type = true, b[40]
			p.IP = b[:40+plen]
		}
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return p
		}
		ihl, tot := int(b[0]&0x0f)*4, int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || tot < ihl || tot > len(b) {
			return p
		}
		p.IPv4 = true
		p.IP = b[:tot]
		p.SIP, p.DIP, p.Proto = net.IP(b[12:16]), net.IP(b[16:20]), b[9]
		seg := b[ihl:tot]
		p.L4 = seg
		switch {
		case p.Proto == 17 && len(seg) >= 8:
			p.UDP = true
			p.SPort, p.DPort = binary.BigEndian.Uint16(seg[0:]), binary.BigEndian.Uint16(seg[2:])
			p.Payload = seg[8:]
		case p.Proto == 6 && len(seg) >= 20 && int(seg[12]>>4)*4 <= len(seg):
			p.TCP = true
			p.SPort, p.DPort = binary.BigEndian.Uint16(seg[0:]), binary.BigEndian.Uint16(seg[2:])
			p.TCPFlags = seg[13]
			p.Payload = seg[int(seg[12]>>4)*4:]
		}
	}
	return p
}

func (p pxeFrame) String() string {
	switch {
	case p.EType == 0x0806:
		return fmt.Sprintf("%s>%s ARP op=%d %s(%s)->%s", p.Src, p.Dst, p.ARPOp, p.ARPSender, p.ARPSenderMAC, p.ARPTarget)
	case p.UDP:
		return fmt.Sprintf("%s>%s UDP %s:%d->%s:%d len=%d", p.Src, p.Dst, p.SIP, p.SPort, p.DIP, p.DPort, len(p.Payload))
	case p.TCP:
		return fmt.Sprintf("%s>%s TCP %s:%d->%s:%d flags=%#02x len=%d", p.Src, p.Dst, p.SIP, p.SPort, p.DIP, p.DPort, p.TCPFlags, len(p.Payload))
	case p.ICMP6:
		return fmt.Sprintf("%s>%s ICMPv6 %s->%s type=%d", p.Src, p.Dst, net.IP(p.IP[8:24]), net.IP(p.IP[24:40]), p.ICMP6Type)
	case p.IPv4:
		return fmt.Sprintf("%s>%s IPv4 %s->%s proto=%d", p.Src, p.Dst, p.SIP, p.DIP, p.Proto)
	case len(p.Raw) >= 14:
		return fmt.Sprintf("%s>%s type=%#04x len=%d", p.Src, p.Dst, p.EType, len(p.Raw))
	}
	return fmt.Sprintf("runt % x", p.Raw)
}

// checksumsOK verifies the IPv4 header checksum and the UDP (if not zero) or TCP
// checksum, or the ICMPv6 checksum.
func (p pxeFrame) checksumsOK() error {
	if p.ICMP6 {
		var sum uint32
		for i := 8; i < 40; i += 2 { // source and destination addresses
			sum += uint32(binary.BigEndian.Uint16(p.IP[i:]))
		}
		sum += uint32(len(p.IP)-40) + 58
		if inetChecksum(p.IP[40:], sum) != 0 {
			return fmt.Errorf("bad ICMPv6 checksum")
		}
		return nil
	}
	ihl := int(p.IP[0]&0x0f) * 4
	if inetChecksum(p.IP[:ihl], 0) != 0 {
		return fmt.Errorf("bad IPv4 header checksum")
	}
	switch {
	case p.UDP && binary.BigEndian.Uint16(p.L4[6:]) == 0:
	case p.UDP || p.TCP:
		if l4Checksum(p.SIP, p.DIP, p.Proto, p.L4) != 0 {
			return fmt.Errorf("bad %s checksum", map[byte]string{6: "TCP", 17: "UDP"}[p.Proto])
		}
	}
	return nil
}

// pxeBootp is the part of a BOOTP message the test looks at.
type pxeBootp struct {
	Op     byte
	XID    uint32
	YIAddr net.IP
	SIAddr net.IP
	CHAddr net.HardwareAddr
	File   string
	Type   byte
	Opts   map[byte][]byte
}

func parsePXEBootp(b []byte) (pxeBootp, bool) {
	if len(b) < 240 || binary.BigEndian.Uint32(b[236:]) != dhcpCookie {
		return pxeBootp{}, false
	}
	m := pxeBootp{
		Op: b[0], XID: binary.BigEndian.Uint32(b[4:]),
		YIAddr: net.IP(b[16:20]), SIAddr: net.IP(b[20:24]),
		CHAddr: net.HardwareAddr(b[28:34]),
		File:   string(bytes.TrimRight(b[108:236], "\x00")),
		Opts:   map[byte][]byte{},
	}
	for o := b[240:]; len(o) > 0 && o[0] != 255; {
		if o[0] == 0 {
			o = o[1:]
			continue
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return pxeBootp{}, false
		}
		m.Opts[o[0]] = o[2 : 2+int(o[1])]
		o = o[2+int(o[1]):]
	}
	if t := m.Opts[53]; len(t) == 1 {
		m.Type = t[0]
	}
	return m, true
}

// pxeScript is the TFTP boot script: it proves it ran by printing a marker and fetching
// a URL built from iPXE settings. The comment padding makes it several TFTP blocks long.
// Debian's iPXE build (1.0.0+git-20190125) has no poweroff or reboot command, so the
// script ends in the iPXE shell and the test stops QEMU by PID.
func pxeScript(httpPort int) []byte {
	var b bytes.Buffer
	b.WriteString("#!ipxe\n")
	b.WriteString("echo vde-pxe-ok ${net0/ip}\n")
	for i := 0; b.Len() < 3500; i++ {
		fmt.Fprintf(&b, "# padding line %03d so that the script needs several TFTP DATA blocks ....\n", i)
	}
	fmt.Fprintf(&b, "chain http://%s:%d/vde-pxe-marker/${net0/mac}/${net0/ip} || echo vde-chain-failed\n", slirpRouter, httpPort)
	b.WriteString("echo vde-pxe-done\n")
	b.WriteString("shell\n")
	return b.Bytes()
}

const pxeHTTPScript = "#!ipxe\necho vde-http-ok\n"

// pxeHTTPRequest is what the Go HTTP server saw.
type pxeHTTPRequest struct {
	Method, Path, UserAgent, Remote string
}

var pxeEscapes = regexp.MustCompile("\x1b(\\[[0-9;?]*[A-Za-z]|c)|\b|\r")

// pxeSerial reads the serial log without terminal escapes, backspaces and CRs.
func pxeSerial(path string) string {
	b, _ := os.ReadFile(path)
	return pxeEscapes.ReplaceAllString(string(b), "")
}

// TestSlirpQEMUiPXEBoot: QEMU's iPXE boots from our slirpvde's DHCP and TFTP and fetches a
// URL through its TCP NAT. "ipv4" runs slirpvde as Debian's options allow; iPXE then
// waits some 13 s for a router advertisement that never comes before it uses its DHCP
// lease. "ipv6" adds -6: iPXE takes our RA (SLAAC in fd00::/64) and goes on at once.
func TestSlirpQEMUiPXEBoot(t *testing.T) {
	t.Parallel()
	requireTools(t, "qemu-system-x86_64")
	rom := ""
	for _, p := range pxeROMs {
		if _, err := os.Stat(p); err == nil {
			rom = p
			break
		}
	}
	if rom == "" {
		t.Skipf("needs the iPXE ROM for e1000 (Debian package ipxe-qemu): none of %v", pxeROMs)
	}
	slirpOursOnly(t, "Debian's slirpvde has no --bootfile")
	for _, ipv6 := range []bool{false, true} {
		name := map[bool]string{false: "ipv4", true: "ipv6"}[ipv6]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pxeBoot(t, rom, ipv6)
		})
	}
}

func pxeBoot(t *testing.T, rom string, ipv6 bool) {
	start := time.Now()

	// The slirp world, minimal: a namespace S for slirpvde and the HTTP server, and a hub.
	w := &slirpWorld{Dir: testDir(t)}
	w.S = newNetns(t)
	w.Resolv = filepath.Join(w.Dir, "resolv.conf")
	w.setResolv(t, "127.0.0.1")
	w.Sw = startSwitch(t, impl, "-x")

	// The HTTP server the script chains to: 10.0.2.2:PORT is S's 127.0.0.1:PORT.
	l := listenIn(t, w.S, "tcp4", "127.0.0.1:0")
	httpPort := l.Addr().(*net.TCPAddr).Port
	reqs := make(chan pxeHTTPRequest, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case reqs <- pxeHTTPRequest{r.Method, r.URL.Path, r.UserAgent(), r.RemoteAddr}:
		default:
		}
		rw.Header().Set("Content-Type", "text/plain")
		io.WriteString(rw, pxeHTTPScript)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	tftpDir := t.TempDir()
	script := pxeScript(httpPort)
	if err := os.WriteFile(filepath.Join(tftpDir, pxeBootFile), script, 0644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-t", tftpDir, "--bootfile", pxeBootFile}
	if ipv6 {
		args = append(args, "-6")
	}
	w.startSlirp(t, args...)
	rec := pxeRecordFrames(dialPeer(t, w.Sw, 1, wire.DialOptions{}))

	serial := filepath.Join(w.Dir, "serial.log")
	qemuStart := time.Now()
	// -nographic with no VGA makes SeaBIOS's serial console carry iPXE's output.
	qemu := startProc(t, "qemu-system-x86_64",
		"-machine", "pc,accel=tcg", "-m", "64", "-nodefaults", "-no-user-config",
		"-nographic", "-vga", "none", "-monitor", "none",
		"-serial", "file:"+serial,
		"-netdev", "vde,id=n0,sock="+w.Sw.Dir,
		"-device", "e1000,netdev=n0,mac="+pxeGuestMAC+",romfile="+rom,
		"-boot", "n")
	qemu.Name = "qemu-system-x86_64(iPXE)"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serial console (%s):\n%s", serial, truncate(pxeSerial(serial), 6000))
			frames := rec.all()
			for i, f := range frames {
				if i >= 300 {
					t.Logf("... %d frames in all", len(frames))
					break
				}
				t.Logf("frame %3d at %6.3fs: %v", i, f.Time.Sub(qemuStart).Seconds(), f)
			}
		}
	})

	// The effects: the HTTP request, and the chained script's output on the console.
	var got pxeHTTPRequest
	gotReq := false
	waitFor(t, pxeBootLimit, "iPXE's HTTP request and vde-pxe-done on the console", func() (bool, string) {
		if qemu.Exited() {
			t.Fatalf("QEMU exited: %v\n%s", qemu.waitErr, qemu.Stderr.String())
		}
		w.checkAlive(t)
		if !gotReq {
			select {
			case got = <-reqs:
				gotReq = true
			default:
			}
		}
		s := pxeSerial(serial)
		return gotReq && strings.Contains(s, "vde-pxe-done"), fmt.Sprintf("request seen: %v; console tail: %q", gotReq, s[max(0, len(s)-600):])
	})
	booted := time.Since(qemuStart)
	qemu.Stop() // by PID

	console := pxeSerial(serial)
	wantConsole := []string{
		"net0: " + slirpFirst + "/255.255.255.0 gw " + slirpRouter,
		"Next server: " + slirpRouter, "Filename: " + pxeBootFile,
		"vde-pxe-ok " + slirpFirst, "vde-http-ok", "vde-pxe-done",
	}
	if ipv6 {
		wantConsole = append(wantConsole, "net0: "+pxeGuestSLAAC+"/64 gw fe80::2")
	}
	for _, want := range wantConsole {
		if !strings.Contains(console, want) {
			t.Errorf("serial console lacks %q", want)
		}
	}
	if strings.Contains(console, "vde-chain-failed") {
		t.Errorf("the script's chain command failed")
	}
	wantPath := "/vde-pxe-marker/" + pxeGuestMAC + "/" + slirpFirst
	if got.Method != "GET" || got.Path != wantPath || !strings.Contains(got.UserAgent, "iPXE") {
		t.Errorf("HTTP request %+v, want GET %s from an iPXE user agent", got, wantPath)
	}
	if h, _, _ := net.SplitHostPort(got.Remote); h != "127.0.0.1" {
		t.Errorf("HTTP request came from %s, want 127.0.0.1 (slirp's host loopback)", got.Remote)
	}

	pxeCheckWire(t, rec.all(), script, ipv6)
	w.checkAlive(t)
	t.Logf("iPXE booted through slirpvde and fetched %s %v after QEMU started (test %v)",
		wantPath, booted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// pxeCheckWire checks the recorded frames: DHCP, ARP, TFTP, TCP/HTTP, and the checksums
// of everything slirpvde sent.
func pxeCheckWire(t *testing.T, frames []pxeFrame, script []byte, ipv6 bool) {
	guest, _ := net.ParseMAC(pxeGuestMAC)
	router, first := net.ParseIP(slirpRouter).To4(), net.ParseIP(slirpFirst).To4()
	t.Logf("recorded %d frames", len(frames))

	// DHCP: the guest's requests, and an OFFER and an ACK for it from 10.0.2.2.
	xids := map[uint32]bool{}
	var slirpMAC net.HardwareAddr
	var offer, ack bool
	for _, f := range frames {
		if !f.UDP {
			continue
		}
		if bytes.Equal(f.Src, guest) && f.SPort == 68 && f.DPort == 67 {
			if m, ok := parsePXEBootp(f.Payload); ok && m.Op == 1 && bytes.Equal(m.CHAddr, guest) {
				xids[m.XID] = true
			}
		}
	}
	if len(xids) == 0 {
		t.Fatalf("no DHCP request from %s on the wire", guest)
	}
	for _, f := range frames {
		if !f.UDP || f.SPort != 67 || f.DPort != 68 {
			continue
		}
		m, ok := parsePXEBootp(f.Payload)
		if !ok || m.Op != 2 || !xids[m.XID] {
			continue
		}
		if m.Type != dhcpOffer && m.Type != dhcpAck {
			t.Errorf("DHCP reply of type %d to the guest, want OFFER/ACK", m.Type)
			continue
		}
		name := map[byte]string{dhcpOffer: "OFFER", dhcpAck: "ACK"}[m.Type]
		if m.Type == dhcpOffer {
			offer = true
		} else {
			ack = true
		}
		slirpMAC = f.Src
		if !f.SIP.Equal(router) {
			t.Errorf("DHCP %s from IP %s, want %s", name, f.SIP, router)
		}
		if !bytes.Equal(m.CHAddr, guest) || !m.YIAddr.Equal(first) {
			t.Errorf("DHCP %s chaddr=%s yiaddr=%s, want %s and %s", name, m.CHAddr, m.YIAddr, guest, first)
		}
		if !bytes.Equal(f.Dst, guest) && !bytes.Equal(f.Dst, broadcast) {
			t.Errorf("DHCP %s to MAC %s, want %s or broadcast", name, f.Dst, guest)
		}
		if m.File != pxeBootFile || string(m.Opts[67]) != pxeBootFile {
			t.Errorf("DHCP %s file=%q option 67=%q, want %q in both", name, m.File, m.Opts[67], pxeBootFile)
		}
		if !m.SIAddr.Equal(router) || !net.IP(m.Opts[54]).Equal(router) {
			t.Errorf("DHCP %s siaddr=%s server id=%v, want %s", name, m.SIAddr, net.IP(m.Opts[54]), router)
		}
	}
	if !offer || !ack {
		t.Fatalf("DHCP to the guest: OFFER %v, ACK %v; want both", offer, ack)
	}

	// ARP: slirpvde tells the guest where 10.0.2.2 is.
	arp := false
	for _, f := range frames {
		if f.EType == 0x0806 && f.ARPOp == 2 && f.ARPSender.Equal(router) && bytes.Equal(f.Dst, guest) {
			arp = true
			if !bytes.Equal(f.ARPSenderMAC, slirpMAC) || !bytes.Equal(f.Src, slirpMAC) {
				t.Errorf("ARP reply for %s says %s (from %s), DHCP came from %s", router, f.ARPSenderMAC, f.Src, slirpMAC)
			}
		}
	}
	if !arp {
		t.Errorf("no ARP reply for %s to the guest", router)
	}

	// TFTP: the RRQ, then DATA blocks that add up to the script, each acknowledged.
	var tid uint16
	for _, f := range frames {
		if f.UDP && f.SIP.Equal(first) && f.DIP.Equal(router) && f.DPort == 69 && len(f.Payload) > 2 &&
			binary.BigEndian.Uint16(f.Payload) == 1 {
			fields := strings.Split(string(f.Payload[2:]), "\x00")
			t.Logf("TFTP RRQ from %s:%d: %q", f.SIP, f.SPort, fields)
			if len(fields) < 2 || fields[0] != pxeBootFile || !strings.EqualFold(fields[1], "octet") {
				t.Errorf("TFTP RRQ %q, want %s octet", fields, pxeBootFile)
			}
			tid = f.SPort
			break
		}
	}
	if tid == 0 {
		t.Fatalf("no TFTP RRQ from %s to %s:69", first, router)
	}
	blocks := map[uint16][]byte{}
	acked := map[uint16]bool{}
	var oack string
	for _, f := range frames {
		if !f.UDP || len(f.Payload) < 4 {
			continue
		}
		op, n := binary.BigEndian.Uint16(f.Payload), binary.BigEndian.Uint16(f.Payload[2:])
		switch {
		case f.SIP.Equal(router) && f.DIP.Equal(first) && f.DPort == tid:
			switch op {
			case 3:
				if prev, ok := blocks[n]; ok && !bytes.Equal(prev, f.Payload[4:]) {
					t.Errorf("TFTP block %d sent twice with different contents", n)
				}
				blocks[n] = f.Payload[4:]
			case 5:
				t.Errorf("TFTP ERROR from slirpvde: %q", f.Payload[4:])
			case 6:
				oack = strings.ReplaceAll(string(f.Payload[2:]), "\x00", " ")
			}
		case f.SIP.Equal(first) && f.DIP.Equal(router) && f.SPort == tid && op == 4:
			acked[n] = true
		}
	}
	var data []byte
	for n := uint16(1); ; n++ {
		b, ok := blocks[n]
		if !ok {
			break
		}
		data = append(data, b...)
	}
	t.Logf("TFTP: OACK %q, %d DATA blocks, %d bytes, script %d bytes", oack, len(blocks), len(data), len(script))
	if !bytes.Equal(data, script) {
		t.Errorf("TFTP DATA blocks 1..%d carry %d bytes, want the %d-byte script", len(blocks), len(data), len(script))
	}
	if len(blocks) < 2 {
		t.Errorf("TFTP transfer of %d blocks, want several", len(blocks))
	}
	if !acked[uint16(len(blocks))] {
		t.Errorf("the guest did not acknowledge the last TFTP block %d", len(blocks))
	}

	// TCP: the guest's connection to 10.0.2.2, the GET, and the answer through the NAT.
	var syn, synack, get, resp bool
	for _, f := range frames {
		if !f.TCP {
			continue
		}
		out := f.SIP.Equal(first) && f.DIP.Equal(router)
		in := f.SIP.Equal(router) && f.DIP.Equal(first)
		switch {
		case out && f.TCPFlags&0x12 == 0x02:
			syn = true
		case in && f.TCPFlags&0x12 == 0x12:
			synack = true
		case out && bytes.HasPrefix(f.Payload, []byte("GET /vde-pxe-marker/")):
			get = true
		case in && bytes.Contains(f.Payload, []byte("vde-http-ok")):
			resp = true
		}
	}
	if !syn || !synack || !get || !resp {
		t.Errorf("TCP on the wire: guest SYN %v, SYN-ACK %v, GET %v, HTTP answer %v; want all", syn, synack, get, resp)
	}

	// IPv6: iPXE solicits routers; slirpvde answers with RAs only with -6.
	var rs, ra, other6 int
	for _, f := range frames {
		switch {
		case f.EType != 0x86dd:
		case bytes.Equal(f.Src, guest) && f.ICMP6 && f.ICMP6Type == 133:
			rs++
		case bytes.Equal(f.Src, slirpMAC) && f.ICMP6 && f.ICMP6Type == 134 && bytes.Equal(f.Dst, guest):
			ra++
		case bytes.Equal(f.Src, slirpMAC):
			other6++
		}
	}
	t.Logf("IPv6: %d router solicitations, %d advertisements to the guest, %d other IPv6 frames from slirpvde", rs, ra, other6)
	if rs == 0 {
		t.Errorf("no router solicitation from iPXE on the wire")
	}
	if ipv6 && ra == 0 {
		t.Errorf("slirpvde -6 sent no router advertisement to the guest")
	}
	if !ipv6 && ra+other6 > 0 {
		t.Errorf("slirpvde without -6 sent %d IPv6 frames", ra+other6)
	}

	// Everything slirpvde sent has correct checksums.
	bad := 0
	for _, f := range frames {
		if (f.IPv4 || f.ICMP6) && bytes.Equal(f.Src, slirpMAC) {
			if err := f.checksumsOK(); err != nil {
				if bad++; bad <= 5 {
					t.Errorf("frame from slirpvde %v: %v", f, err)
				}
			}
		}
	}
}
