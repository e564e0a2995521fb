package tftp

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loopbackDial is the transfer-socket factory the tests give Serve: a kernel UDP socket
// on a fresh port of 127.0.0.1, connected to the peer.
func loopbackDial(peer net.Addr) (net.Conn, error) {
	return net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, peer.(*net.UDPAddr))
}

// startServer serves root on a loopback port and returns its address; cleanup closes the
// port-69 socket and checks that Serve returned.
func startServer(t *testing.T, c Config) *net.UDPAddr {
	t.Helper()
	if c.Logf == nil {
		c.Logf = t.Logf
	}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(pc, loopbackDial) }()
	t.Cleanup(func() {
		pc.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Serve returned %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after its socket closed")
		}
	})
	return pc.LocalAddr().(*net.UDPAddr)
}

// testRoot makes a directory with the files the tests fetch.
func testRoot(t *testing.T) (root string, files map[string][]byte) {
	t.Helper()
	root = t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	content := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files = map[string][]byte{
		"small.txt":      []byte("hello, pxe\n"),
		"empty":          nil,
		"exact1536":      content(3 * 512),
		"exact2936":      content(2 * 1468),
		"boot/kernel":    content(200_000),
		"boot/initrd.gz": content(33_333),
	}
	for name, b := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("boot/kernel", filepath.Join(root, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	files["vmlinuz"] = files["boot/kernel"]
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("outside the root"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"escape-abs": secret,
		"escape-rel": "../" + filepath.Base(filepath.Dir(secret)) + "/secret",
		"passwd":     "/etc/passwd",
		"boot/up":    "../..",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, files
}

// result is what a test client saw of one transfer.
type result struct {
	data     []byte
	oack     []Option // nil if the server sent none
	errCode  ErrorCode
	errMsg   string
	gotError bool
	datas    int  // DATA packets received, repeats included
	sawZero  bool // a DATA block numbered 0 arrived (the counter wrapped)
	fromPort int  // port of the first reply
}

// clientOpts adjust the test client's behaviour.
type clientOpts struct {
	ignoreData int           // leave this many first DATA packets unanswered
	refuseOACK bool          // answer an OACK with ERROR 8
	wait       time.Duration // how long to wait for each packet (default 3s)
}

// get fetches with req from srv as an RFC 1350 client would and returns what it saw.
func get(t *testing.T, srv *net.UDPAddr, req Request, o clientOpts) result {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if o.wait == 0 {
		o.wait = 3 * time.Second
	}
	if _, err := c.WriteToUDP(AppendRequest(nil, req), srv); err != nil {
		t.Fatal(err)
	}
	var (
		res     result
		tid     *net.UDPAddr
		blksize = BlockSize
		next    = uint16(1)
		buf     = make([]byte, 70000)
	)
	for {
		c.SetReadDeadline(time.Now().Add(o.wait))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(res.data), err)
		}
		if tid == nil {
			tid = from
			res.fromPort = from.Port
		} else if from.Port != tid.Port {
			continue // another transfer ID: not ours
		}
		b := buf[:n]
		op, _ := OpcodeOf(b)
		switch op {
		case OpERROR:
			res.errCode, res.errMsg, _ = ParseError(b)
			res.gotError = true
			return res
		case OpOACK:
			if res.oack, err = ParseOACK(b); err != nil {
				t.Fatalf("OACK %q: %v", b, err)
			}
			if o.refuseOACK {
				c.WriteToUDP(AppendError(nil, CodeOptionRefused, "no thanks"), tid)
				return res
			}
			for _, opt := range res.oack {
				if strings.EqualFold(opt.Name, "blksize") {
					blksize, _ = strconv.Atoi(opt.Value)
				}
			}
			c.WriteToUDP(AppendAck(nil, 0), tid)
		case OpDATA:
			blk, data, err := ParseData(b)
			if err != nil {
				t.Fatalf("DATA %q: %v", b, err)
			}
			res.datas++
			if blk != next {
				if blk == next-1 { // a repeat: our ACK was lost, say it again
					c.WriteToUDP(AppendAck(nil, blk), tid)
					continue
				}
				t.Fatalf("DATA block %d, want %d", blk, next)
			}
			if o.ignoreData > 0 {
				o.ignoreData--
				continue
			}
			if len(data) > blksize {
				t.Fatalf("block %d has %d bytes, blksize %d", blk, len(data), blksize)
			}
			if blk == 0 {
				res.sawZero = true
			}
			res.data = append(res.data, data...)
			c.WriteToUDP(AppendAck(nil, blk), tid)
			next++
			if len(data) < blksize {
				return res
			}
		default:
			t.Fatalf("unexpected packet %q", b)
		}
	}
}

func rrq(name string, opts ...string) Request {
	r := Request{Op: OpRRQ, Filename: name, Mode: "octet"}
	for i := 0; i+1 < len(opts); i += 2 {
		r.Options = append(r.Options, Option{opts[i], opts[i+1]})
	}
	return r
}

func TestTransfers(t *testing.T) {
	root, files := testRoot(t)
	srv := startServer(t, Config{Root: root, Timeout: 200 * time.Millisecond})
	tests := []struct {
		desc    string
		req     Request
		file    string   // expected content, from files
		oack    []Option // expected OACK
		errCode ErrorCode
		isError bool
		datas   int // expected DATA packets, if not zero
	}{
		{desc: "small file", req: rrq("small.txt"), file: "small.txt", datas: 1},
		{desc: "empty file", req: rrq("empty"), file: "empty", datas: 1},
		{desc: "multiple of 512 ends with an empty block", req: rrq("exact1536"), file: "exact1536", datas: 4},
		{desc: "leading slash", req: rrq("/boot/initrd.gz"), file: "boot/initrd.gz"},
		{desc: "mode in capitals", req: Request{Op: OpRRQ, Filename: "small.txt", Mode: "OcTeT"}, file: "small.txt"},
		{desc: "symlink inside the root", req: rrq("vmlinuz"), file: "vmlinuz"},
		{desc: "larger file", req: rrq("boot/kernel"), file: "boot/kernel", datas: 200_000/512 + 1},
		{
			desc: "tsize and blksize",
			req:  rrq("boot/kernel", "tsize", "0", "blksize", "1024"),
			file: "boot/kernel",
			oack: []Option{{"tsize", "200000"}, {"blksize", "1024"}},
		},
		{
			desc:  "blksize clamped to 1468; multiple of it",
			req:   rrq("exact2936", "BlkSize", "65464"),
			file:  "exact2936",
			oack:  []Option{{"BlkSize", "1468"}},
			datas: 3,
		},
		{
			desc: "option order kept, unknown and repeated options dropped",
			req:  rrq("small.txt", "windowsize", "4", "timeout", "2", "tsize", "0", "timeout", "9"),
			file: "small.txt",
			oack: []Option{{"timeout", "2"}, {"tsize", "11"}},
		},
		{
			desc: "values out of range ignored",
			req:  rrq("small.txt", "blksize", "7", "timeout", "0", "timeout", "256", "tsize", "x", "blksize", "-1"),
			file: "small.txt",
		},
		{desc: "only unknown options: no OACK", req: rrq("small.txt", "multicast", ""), file: "small.txt"},
		{desc: "missing file", req: rrq("nope"), errCode: CodeFileNotFound, isError: true},
		{desc: "missing directory", req: rrq("no/such/file"), errCode: CodeFileNotFound, isError: true},
		{desc: "directory", req: rrq("boot"), errCode: CodeFileNotFound, isError: true},
		{desc: "directory with slash", req: rrq("boot/"), errCode: CodeAccessViolation, isError: true},
		{desc: "root itself", req: rrq("/"), errCode: CodeAccessViolation, isError: true},
		{desc: "FIFO does not block", req: rrq("fifo"), errCode: CodeFileNotFound, isError: true},
		{desc: "../etc/passwd", req: rrq("../etc/passwd"), errCode: CodeAccessViolation, isError: true},
		{desc: "/../x", req: rrq("/../x"), errCode: CodeAccessViolation, isError: true},
		{desc: "..", req: rrq(".."), errCode: CodeAccessViolation, isError: true},
		{desc: "a/../../x", req: rrq("boot/../../x"), errCode: CodeAccessViolation, isError: true},
		{desc: "absolute symlink out", req: rrq("escape-abs"), errCode: CodeAccessViolation, isError: true},
		{desc: "relative symlink out", req: rrq("escape-rel"), errCode: CodeAccessViolation, isError: true},
		{desc: "symlink to /etc/passwd", req: rrq("passwd"), errCode: CodeAccessViolation, isError: true},
		{desc: "symlinked directory out", req: rrq("boot/up/etc/passwd"), errCode: CodeAccessViolation, isError: true},
		{
			desc:    "WRQ refused",
			req:     Request{Op: OpWRQ, Filename: "new", Mode: "octet"},
			errCode: CodeAccessViolation, isError: true,
		},
		{
			desc:    "netascii refused",
			req:     Request{Op: OpRRQ, Filename: "small.txt", Mode: "netascii"},
			errCode: CodeIllegalOperation, isError: true,
		},
		{
			desc:    "mail refused",
			req:     Request{Op: OpRRQ, Filename: "small.txt", Mode: "mail"},
			errCode: CodeIllegalOperation, isError: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			res := get(t, srv, tt.req, clientOpts{})
			if res.fromPort == srv.Port {
				t.Errorf("reply came from port 69's socket, want a fresh transfer ID")
			}
			if tt.isError {
				if !res.gotError || res.errCode != tt.errCode {
					t.Fatalf("got error=%v code %d %q, want ERROR %d", res.gotError, res.errCode, res.errMsg, tt.errCode)
				}
				return
			}
			if res.gotError {
				t.Fatalf("ERROR %d %q", res.errCode, res.errMsg)
			}
			if !bytes.Equal(res.data, files[tt.file]) {
				t.Errorf("got %d bytes, want %d (content differs)", len(res.data), len(files[tt.file]))
			}
			if !reflect.DeepEqual(res.oack, tt.oack) {
				t.Errorf("OACK %v, want %v", res.oack, tt.oack)
			}
			if tt.datas != 0 && res.datas != tt.datas {
				t.Errorf("%d DATA packets, want %d", res.datas, tt.datas)
			}
		})
	}
}

// TestWraparound sends more than 65535 blocks of 8 bytes: the block number goes 65535, 0, 1.
func TestWraparound(t *testing.T) {
	if testing.Short() {
		t.Skip("65537 round trips")
	}
	root := t.TempDir()
	want := make([]byte, 65536*8+3)
	for i := range want {
		want[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(root, "big"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, Config{Root: root})
	res := get(t, srv, rrq("big", "blksize", "8", "tsize", "0"), clientOpts{})
	if res.gotError {
		t.Fatalf("ERROR %d %q", res.errCode, res.errMsg)
	}
	if !reflect.DeepEqual(res.oack, []Option{{"blksize", "8"}, {"tsize", strconv.Itoa(len(want))}}) {
		t.Errorf("OACK %v", res.oack)
	}
	if !bytes.Equal(res.data, want) {
		t.Errorf("got %d bytes, want %d", len(res.data), len(want))
	}
	if !res.sawZero || res.datas != 65537 {
		t.Errorf("sawZero=%v datas=%d, want a block 0 among 65537", res.sawZero, res.datas)
	}
}

func TestRetransmit(t *testing.T) {
	root, files := testRoot(t)
	srv := startServer(t, Config{Root: root, Timeout: 50 * time.Millisecond})
	t.Run("first DATA unanswered", func(t *testing.T) {
		res := get(t, srv, rrq("small.txt"), clientOpts{ignoreData: 1})
		if !bytes.Equal(res.data, files["small.txt"]) || res.datas != 2 {
			t.Errorf("got %q in %d DATA packets, want it in 2", res.data, res.datas)
		}
	})
	t.Run("mid-file DATA unanswered", func(t *testing.T) {
		res := get(t, srv, rrq("exact1536"), clientOpts{ignoreData: 2})
		if !bytes.Equal(res.data, files["exact1536"]) || res.datas != 6 {
			t.Errorf("got %d bytes in %d DATA packets, want 1536 in 6", len(res.data), res.datas)
		}
	})
	t.Run("OACK unanswered", func(t *testing.T) {
		c := dialServer(t, srv)
		c.Write(AppendRequest(nil, rrq("small.txt", "tsize", "0")))
		first := readFrom(t, c, time.Second)
		again := readFrom(t, c, time.Second)
		if !bytes.Equal(first, again) || first[1] != byte(OpOACK) {
			t.Errorf("got %q then %q, want the OACK twice", first, again)
		}
	})
}

// testClient is an unconnected client socket that remembers the server's port-69
// address (for Write) and the transfer ID of the last reply (tid).
type testClient struct {
	*net.UDPConn
	srv *net.UDPAddr
	tid *net.UDPAddr
}

// dialServer opens a testClient towards srv.
func dialServer(t *testing.T, srv *net.UDPAddr) *testClient {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{UDPConn: c, srv: srv}
}

func (c *testClient) Write(b []byte) (int, error) { return c.WriteToUDP(b, c.srv) }

// readFrom returns the next packet, or nil after wait; it records the sender as the TID.
func readFrom(t *testing.T, c *testClient, wait time.Duration) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(wait))
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		t.Fatal(err)
	}
	c.tid = from
	return buf[:n]
}

func TestGiveUp(t *testing.T) {
	root, _ := testRoot(t)
	var (
		mu   sync.Mutex
		logs []string
	)
	logf := func(format string, args ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(format, args...))
		mu.Unlock()
		t.Logf(format, args...)
	}
	srv := startServer(t, Config{Root: root, Timeout: 30 * time.Millisecond, Retries: 2, Logf: logf})
	c := dialServer(t, srv)
	c.Write(AppendRequest(nil, rrq("small.txt")))
	n := 0
	for readFrom(t, c, 500*time.Millisecond) != nil {
		n++
	}
	if n != 3 {
		t.Errorf("got DATA %d times, want 1 + 2 retries", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logs) == 0 || !bytes.Contains([]byte(logs[len(logs)-1]), []byte(errTimeout.Error())) {
		t.Errorf("logs %q: want a give-up line", logs)
	}
}

func TestClientRefusesOACK(t *testing.T) {
	root, _ := testRoot(t)
	srv := startServer(t, Config{Root: root, Timeout: 30 * time.Millisecond})
	c := dialServer(t, srv)
	c.Write(AppendRequest(nil, rrq("small.txt", "tsize", "0")))
	b := readFrom(t, c, time.Second)
	if opts, err := ParseOACK(b); err != nil || !reflect.DeepEqual(opts, []Option{{"tsize", "11"}}) {
		t.Fatalf("got %q, want OACK tsize 11", b)
	}
	c.WriteToUDP(AppendError(nil, CodeOptionRefused, "size probe done"), c.tid)
	if b := readFrom(t, c, 200*time.Millisecond); b != nil {
		t.Errorf("after the client's ERROR the server sent %q", b)
	}
}

func TestDuplicateAckIgnored(t *testing.T) {
	root, _ := testRoot(t)
	srv := startServer(t, Config{Root: root, Timeout: time.Second})
	c := dialServer(t, srv)
	c.Write(AppendRequest(nil, rrq("exact1536")))
	b := readFrom(t, c, time.Second)
	if blk, _, err := ParseData(b); err != nil || blk != 1 {
		t.Fatalf("got %q, want DATA 1", b)
	}
	c.WriteToUDP(AppendAck(nil, 1), c.tid)
	b = readFrom(t, c, time.Second)
	if blk, _, err := ParseData(b); err != nil || blk != 2 {
		t.Fatalf("got %q, want DATA 2", b)
	}
	// A late repeat of ACK 1 and a stray ACK must not make the server resend.
	c.WriteToUDP(AppendAck(nil, 1), c.tid)
	c.WriteToUDP(AppendAck(nil, 77), c.tid)
	c.WriteToUDP([]byte{0}, c.tid)
	if b := readFrom(t, c, 300*time.Millisecond); b != nil {
		t.Errorf("duplicate ACK answered with %q", b)
	}
	c.WriteToUDP(AppendAck(nil, 2), c.tid)
	if blk, _, err := ParseData(readFrom(t, c, time.Second)); err != nil || blk != 3 {
		t.Errorf("want DATA 3 after ACK 2")
	}
}

func TestBadRequests(t *testing.T) {
	root, _ := testRoot(t)
	srv := startServer(t, Config{Root: root})
	tests := []struct {
		desc  string
		b     []byte
		reply []byte // nil: none
	}{
		{"unterminated", []byte("\x00\x01small.txt"), AppendError(nil, CodeIllegalOperation, "Illegal TFTP operation")},
		{"empty mode", []byte("\x00\x01small.txt\x00\x00"), AppendError(nil, CodeIllegalOperation, "Illegal TFTP operation")},
		{"unknown opcode", []byte("\x00\x09x\x00octet\x00"), AppendError(nil, CodeIllegalOperation, "Illegal TFTP operation")},
		{"one byte", []byte{1}, nil},
		{"empty datagram", []byte{}, nil},
		{"stray ACK", AppendAck(nil, 1), nil},
		{"stray DATA", AppendData(nil, 1, []byte("x")), nil},
		{"stray ERROR", AppendError(nil, CodeUnknownTID, "?"), nil},
		{"stray OACK", AppendOACK(nil, nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			c := dialServer(t, srv)
			c.Write(tt.b)
			wait := time.Second
			if tt.reply == nil {
				wait = 100 * time.Millisecond
			}
			got := readFrom(t, c, wait)
			if !bytes.Equal(got, tt.reply) {
				t.Errorf("got %q, want %q", got, tt.reply)
			}
		})
	}
	// The server still works after all that.
	if res := get(t, srv, rrq("small.txt"), clientOpts{}); string(res.data) != "hello, pxe\n" {
		t.Errorf("after bad requests: %+v", res)
	}
}

// TestServeCloses checks that closing the port-69 socket ends Serve even with a transfer
// waiting for an ACK that will never come.
func TestServeCloses(t *testing.T) {
	root, _ := testRoot(t)
	s, err := New(Config{Root: root, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(pc, loopbackDial) }()
	c := dialServer(t, pc.LocalAddr().(*net.UDPAddr))
	c.Write(AppendRequest(nil, rrq("small.txt")))
	if readFrom(t, c, time.Second) == nil {
		t.Fatal("no DATA")
	}
	pc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve still running")
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		desc string
		c    Config
		ok   bool
	}{
		{"directory", Config{Root: dir}, true},
		{"relative", Config{Root: "."}, true},
		{"all set", Config{Root: dir, Timeout: time.Second, Retries: 1, MaxBlockSize: 512}, true},
		{"no root", Config{}, false},
		{"missing", Config{Root: filepath.Join(dir, "nope")}, false},
		{"file", Config{Root: file}, false},
		{"negative timeout", Config{Root: dir, Timeout: -1}, false},
		{"negative retries", Config{Root: dir, Retries: -1}, false},
		{"block too small", Config{Root: dir, MaxBlockSize: 7}, false},
		{"block too large", Config{Root: dir, MaxBlockSize: 65465}, false},
	}
	for _, tt := range tests {
		s, err := New(tt.c)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.desc, err)
			continue
		}
		if err == nil && !filepath.IsAbs(s.root) {
			t.Errorf("%s: root %q not absolute", tt.desc, s.root)
		}
	}
}

func TestMaxBlockSize(t *testing.T) {
	root, files := testRoot(t)
	srv := startServer(t, Config{Root: root, MaxBlockSize: 600})
	res := get(t, srv, rrq("boot/initrd.gz", "blksize", "1468"), clientOpts{})
	if !reflect.DeepEqual(res.oack, []Option{{"blksize", "600"}}) || !bytes.Equal(res.data, files["boot/initrd.gz"]) {
		t.Errorf("OACK %v, %d bytes", res.oack, len(res.data))
	}
}

// TestMaxTransfers: clients that never ACK hold MaxTransfers transfers; one more request
// is answered with ERROR 0 from port 69 and counted, and once the held transfers give
// up, requests are served again.
func TestMaxTransfers(t *testing.T) {
	root, _ := testRoot(t)
	var refused atomic.Int64
	srv := startServer(t, Config{Root: root, Timeout: 200 * time.Millisecond, Retries: 1, MaxTransfers: 3, Refused: func() { refused.Add(1) }})
	for range 3 {
		c := dialServer(t, srv)
		c.Write(AppendRequest(nil, rrq("small.txt")))
		if p := readFrom(t, c, 2*time.Second); p == nil {
			t.Fatal("no DATA for a transfer under the bound")
		}
	}
	c := dialServer(t, srv)
	c.Write(AppendRequest(nil, rrq("small.txt")))
	p := readFrom(t, c, 2*time.Second)
	code, msg, err := ParseError(p)
	if err != nil || code != CodeNotDefined || c.tid.Port != srv.Port {
		t.Fatalf("over the bound: %q from %v (err %v), want ERROR 0 from port 69", p, c.tid, err)
	}
	if refused.Load() != 1 {
		t.Fatalf("refused %d times, want 1", refused.Load())
	}
	t.Logf("refused with %q", msg)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialServer(t, srv)
		c.Write(AppendRequest(nil, rrq("small.txt")))
		p := readFrom(t, c, 2*time.Second)
		if _, _, err := ParseData(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no transfer after the held ones gave up: %q", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
