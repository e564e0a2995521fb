package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// FuzzParse checks that Parse never panics and that what it accepts appends back to a
// message that parses to the same thing. Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		out, err := m.Append(nil)
		if err != nil {
			t.Fatalf("parsed message does not append: %v", err)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("appended message does not parse: %v", err)
		}
		if !equalMessages(m, m2) {
			t.Fatalf("round trip changed the message\n got %+v\nwant %+v", m2, m)
		}
	})
}

// FuzzHandle checks that Handle never panics and that every reply is a well-formed answer
// to the request. Each input gets a fresh server, so a failure reproduces from its input
// alone; the request is handled twice, the second time with the client known to the pool.
// Seeds are in testdata/fuzz/FuzzHandle.
func FuzzHandle(f *testing.F) {
	f.Fuzz(func(t *testing.T, req []byte) {
		s := newServer(t, slirpConfig())
		for range 2 {
			checkAnswer(t, req)(s.Handle(req))
		}
	})
}

// checkAnswer returns a checker of Handle's results for req.
func checkAnswer(t *testing.T, req []byte) func([]byte, net.HardwareAddr, netip.Addr, bool) {
	return func(reply []byte, mac net.HardwareAddr, yi netip.Addr, ok bool) {
		t.Helper()
		if !ok {
			if reply != nil || mac != nil || yi.IsValid() {
				t.Fatalf("no answer but reply % x, mac %v, yiaddr %v", reply, mac, yi)
			}
			return
		}
		if len(reply) != replyLen {
			t.Fatalf("reply of %d bytes, want %d", len(reply), replyLen)
		}
		m, err := Parse(reply)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		r, err := Parse(req)
		if err != nil {
			t.Fatalf("answered a request that does not parse: %v", err)
		}
		if m.Op != OpReply || m.XID != r.XID || !bytes.Equal(m.CHAddr[:6], r.CHAddr[:6]) || !bytes.Equal(mac, r.CHAddr[:6]) {
			t.Fatalf("reply op %d xid %#x chaddr % x is not an answer to xid %#x chaddr % x", m.Op, m.XID, m.CHAddr, r.XID, r.CHAddr)
		}
		typ, _ := m.Option(optMessageType)
		switch {
		case len(typ) == 1 && typ[0] == typeNak:
			if yi.IsValid() {
				t.Fatalf("NAK returns yiaddr %v", yi)
			}
		case len(typ) == 1 && (typ[0] == typeOffer || typ[0] == typeAck):
			if yi != m.YIAddr || !inPool(yi.As4()) {
				t.Fatalf("yiaddr %v (reply %v) outside the pool", yi, m.YIAddr)
			}
		default:
			t.Fatalf("reply message type % x", typ)
		}
	}
}

// inPool reports whether a is in slirpConfig's pool 10.0.2.15-30.
func inPool(a [4]byte) bool {
	return a[0] == 10 && a[1] == 0 && a[2] == 2 && a[3] >= 15 && a[3] <= 30
}
