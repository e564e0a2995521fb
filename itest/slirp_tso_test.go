package itest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSlirpTSOGuest: a guest whose NIC takes TSO (our switch's own -t TAP, with offloads)
// uploads 32 MiB and downloads 8 MiB through our slirpvde to a server on the host's
// loopback. Our switch passes the guest's TSO packets whole to slirpvde, which asked for
// a data channel with offloads, and slirpvde's whole to the guest: its counters of GSO
// packets rise both ways, and the bytes arrive intact, also after an upgrade of the
// switch in place.
func TestSlirpTSOGuest(t *testing.T) {
	oursOnly(t, "data channels with offloads are between our switch and our slirpvde")
	requireTools(t, "ethtool")
	sw, guest := switchTapHost(t, implOurs, "10.0.2.15/24")
	run(t, "ip", "-n", guest.NS, "route", "add", "default", "via", "10.0.2.2")
	if out := run(t, "ip", "netns", "exec", guest.NS, "ethtool", "-k", guest.Tap); !strings.Contains(out, "tcp-segmentation-offload: on") {
		t.Fatalf("the switch's TAP does not take TSO:\n%s", out)
	}
	msock := filepath.Join(testDir(t), "slirp-metrics.sock")
	slirp := startProc(t, appletPath(t, "slirpvde"), "-s", sw.Dir, "--metrics", msock)
	slirp.Name = "slirpvde(ours)"
	waitFor(t, startTimeout, "slirpvde to join the switch", func() (bool, string) {
		raw := sw.Cmd(t, "port/print")
		return strings.Contains(raw, fmt.Sprintf(" pid=%d\n", slirp.PID())), raw
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	up := make([]byte, 32<<20)
	down := make([]byte, 8<<20)
	rng := rand.NewChaCha8([32]byte{7})
	rng.Read(up)
	rng.Read(down)
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h := sha256.New()
		io.CopyN(h, c, int64(len(up)))
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
		c.Write(down)
	}()

	c, err := dialIn(guest.NS, "tcp", fmt.Sprintf("10.0.2.2:%d", port), 10*time.Second)
	if err != nil {
		t.Fatalf("the guest's connection through slirpvde: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(up); err != nil {
		t.Fatalf("upload: %v", err)
	}
	select {
	case sum := <-got:
		if sum != sha256.Sum256(up) {
			t.Fatal("the host received other bytes than the guest sent")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the host did not receive the upload")
	}
	back := make([]byte, len(down))
	if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, down) {
		t.Fatalf("download: %v (bytes equal: %v)", err, bytes.Equal(back, down))
	}
	m := scrapeUnix(t, msock)
	gso, gsoOut := metricValue(t, m, `vde_slirp_lan_gso_packets_total{direction="in"}`), metricValue(t, m, `vde_slirp_lan_gso_packets_total{direction="out"}`)
	t.Logf("slirpvde took %.0f TSO packets whole for a 32 MiB upload and sent %.0f for an 8 MiB download", gso, gsoOut)
	if gso < 1 || gsoOut < 1 {
		t.Errorf("TSO packets whole: %v in, %v out; want some each way", gso, gsoOut)
	}
	if slirp.Exited() {
		t.Fatalf("slirpvde exited: %v\n%s", slirp.waitErr, slirp.Stderr.String())
	}

	// The channel crosses an upgrade of the switch in place: slirpvde stays attached and
	// TSO packets still come whole.
	upgradeInPlace(t, sw, 1)
	drained := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			drained <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		drained <- n
	}()
	c2, err := dialIn(guest.NS, "tcp", fmt.Sprintf("10.0.2.2:%d", port), 10*time.Second)
	if err != nil {
		t.Fatalf("a connection after the upgrade: %v", err)
	}
	c2.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c2.Write(up[:8<<20]); err != nil {
		t.Fatalf("upload after the upgrade: %v", err)
	}
	c2.Close()
	if n := <-drained; n != 8<<20 {
		t.Fatalf("the host received %d bytes after the upgrade, want %d", n, 8<<20)
	}
	if gso2 := metricValue(t, scrapeUnix(t, msock), `vde_slirp_lan_gso_packets_total{direction="in"}`); gso2 <= gso {
		t.Errorf("no TSO packet taken whole after the upgrade (%v, %v before)", gso2, gso)
	}
	if slirp.Exited() {
		t.Fatalf("slirpvde exited across the upgrade: %v\n%s", slirp.waitErr, slirp.Stderr.String())
	}
}
