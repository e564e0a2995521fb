package slirp

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tcpFrame is a TCP segment from guest A (10.0.2.15:sport) to dst:dport with the
// checksums a guest's kernel computes.
func tcpFrame(dst netip.Addr, sport, dport uint16, seq, ack uint32, flags header.TCPFlags, data []byte) []byte {
	seg := make([]byte, header.TCPMinimumSize+len(data))
	tcp := header.TCP(seg)
	tcp.Encode(&header.TCPFields{SrcPort: sport, DstPort: dport, SeqNum: seq, AckNum: ack,
		DataOffset: header.TCPMinimumSize, Flags: flags, WindowSize: 65535})
	copy(seg[header.TCPMinimumSize:], data)
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, tcpAddr(guestIP), tcpAddr(dst), uint16(len(seg)))
	tcp.SetChecksum(^onesSumFrom(seg, xsum))
	return ethernet(MACFor(routerIP), guestA, etherTypeIPv4, buildIPv4(guestIP, dst, uint8(header.TCPProtocolNumber), 64, seg))
}

// TestGROJoinsARun: the segments of one flow that come in one run of reads reach the
// netstack joined (fewer segments than frames), a run that is out of order or ends
// with a segment held for the next still delivers every byte in order once flushed,
// and the host sees exactly the guest's stream.
func TestGROJoinsARun(t *testing.T) {
	h := newHostileRouter(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	const sport = 40123

	h.input(tcpFrame(routerIP, sport, port, 1000, 0, header.TCPFlagSyn, nil))
	synack := h.lan.next(5*time.Second, isTCPTo(sport, header.TCPFlagSyn|header.TCPFlagAck))
	if synack == nil {
		t.Fatal("no SYN-ACK from the router for a connection to host loopback")
	}
	ack := header.TCP(synack[34:]).SequenceNumber() + 1
	h.input(tcpFrame(routerIP, sport, port, 1001, ack, header.TCPFlagAck, nil))

	const mss = 1000
	var want []byte
	seq := uint32(1001)
	segment := func(i int) []byte { // the i-th MSS of the stream, from seq 1001
		data := bytes.Repeat([]byte{byte('a' + i%26)}, mss)
		return tcpFrame(routerIP, sport, port, 1001+uint32(i*mss), ack, header.TCPFlagAck, data)
	}
	run := func(order ...int) {
		for _, i := range order {
			h.take(segment(i))
		}
		h.link.flush()
	}
	stats := h.stack.Stats().TCP.ValidSegmentsReceived
	before := stats.Value()
	run(0, 1, 2, 3, 4, 5, 6, 7)
	if n := stats.Value() - before; n >= 8 {
		t.Errorf("8 consecutive segments in one run reached the netstack as %d segments, want them joined", n)
	}
	run(10, 8, 9)      // out of order: the netstack's TCP puts them back in order
	run(11, 12, 13)    // held in GRO until the flush, with no next segment coming
	run(14, 15, 15, 3) // a duplicate and an old segment: dropped by TCP, not joined twice
	for i := 0; i < 16; i++ {
		want = append(want, bytes.Repeat([]byte{byte('a' + i%26)}, mss)...)
	}
	seq += 16 * mss
	h.input(tcpFrame(routerIP, sport, port, seq, ack, header.TCPFlagAck|header.TCPFlagFin, nil))

	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("host read %d bytes, want the guest's %d in order", len(b), len(want))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the host did not see the guest's stream end")
	}
}
