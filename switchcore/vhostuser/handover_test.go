package vhostuser

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/vhostuser/vhosttest"
)

// handoverRig is a server with one frontend, a reader of what the guest sends, and the
// device the server made for the frontend.
type handoverRig struct {
	t       *testing.T
	path    string
	srv     *Server
	dev     *Device
	devices chan *Device
	frames  chan []byte
	ended   chan error
}

func newHandoverRig(t *testing.T) (*handoverRig, *vhosttest.Frontend) {
	r := &handoverRig{t: t, path: filepath.Join(t.TempDir(), "vhost.sock"), devices: make(chan *Device, 4),
		frames: make(chan []byte, 256), ended: make(chan error, 1)}
	var err error
	if r.srv, err = Listen(r.path, 0o600, -1, Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.srv.Close() })
	r.start(r.srv)
	f := vhosttest.Dial(t, r.path, vhosttest.FeatVersion1|vhosttest.FeatMrgRxbuf|vhosttest.FeatEventIdx|vhosttest.FeatProtocolFeatures)
	r.dev = <-r.devices
	r.read(r.dev)
	return r, f
}

func (r *handoverRig) start(s *Server) {
	s.Start(func(d *Device, _ Peer) error { r.devices <- d; return nil }, func(*Device) {})
}

// read runs d's frame reader until it stops, as the switch's reader does.
func (r *handoverRig) read(d *Device) {
	go func() {
		bufs, sizes := make([][]byte, 32), make([]int, 32)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		for {
			n, err := d.ReadBatch(bufs, sizes)
			if err != nil {
				r.ended <- err
				return
			}
			for i := 0; i < n; i++ {
				r.frames <- append([]byte(nil), bufs[i][:sizes[i]]...)
			}
		}
	}()
}

// stopReader stops the reader as the switch's Handover does.
func (r *handoverRig) stopReader(d *Device) {
	d.SetReadDeadline(time.Unix(1, 0))
	if err := <-r.ended; !errors.Is(err, os.ErrDeadlineExceeded) {
		r.t.Fatalf("reader ended with %v, want a deadline", err)
	}
}

// expect waits for the frames numbered from..to-1 (numbered(i)), in order, and nothing else.
func (r *handoverRig) expect(from, to int) {
	r.t.Helper()
	for i := from; i < to; i++ {
		select {
		case got := <-r.frames:
			if !bytes.Equal(got, numbered(i)) {
				r.t.Fatalf("frame %d: got %q", i, got)
			}
		case <-time.After(10 * time.Second):
			r.t.Fatalf("frame %d never came", i)
		}
	}
	select {
	case got := <-r.frames:
		r.t.Fatalf("after frame %d: unexpected %q", to-1, got)
	case <-time.After(50 * time.Millisecond):
	}
}

func numbered(i int) []byte {
	return []byte(fmt.Sprintf("\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x00frame %04d....................................", i))
}

func numberedFrames(from, to int) [][]byte {
	var fs [][]byte
	for i := from; i < to; i++ {
		fs = append(fs, numbered(i))
	}
	return fs
}

// A hand-over carries a frontend to a restored server: frames it sent while the switch was
// stopped arrive once, in order; frames for it land in the buffers it posted; its protocol
// goes on; the listener takes the next frontend; the counters go on.
func TestHandover(t *testing.T) {
	r, f := newHandoverRig(t)
	f.Transmit(0, numberedFrames(0, 10)...)
	r.expect(0, 10)
	f.PostRx(0, 64, vhosttest.BufSize)
	if n, err := r.dev.WriteBatch(numberedFrames(100, 103)); n != 3 || err != nil {
		t.Fatalf("WriteBatch: %d, %v", n, err)
	}
	if got, _ := f.Received(); len(got) != 3 {
		t.Fatalf("guest received %d frames before the hand-over, want 3", len(got))
	}
	r.dev.Faults.Add(3)
	key := r.dev.HandoverKey()

	s2 := snapshotRestore(t, r, func() {
		f.Transmit(10, numberedFrames(10, 20)...) // waits in the ring, as frames wait in sockets
	})
	ds := s2.Devices()
	if len(ds) != 1 || ds[0].HandoverKey() != key {
		t.Fatalf("restored devices %v, want one with key %q", ds, key)
	}
	d2 := ds[0]
	if d2.Faults.Load() != 3 {
		t.Fatalf("faults after the hand-over: %d, want 3", d2.Faults.Load())
	}
	r.read(d2)
	r.start(s2)
	r.expect(10, 20)
	f.Transmit(20, numberedFrames(20, 30)...)
	r.expect(20, 30)
	if n, err := d2.WriteBatch(numberedFrames(103, 105)); n != 2 || err != nil {
		t.Fatalf("WriteBatch after the hand-over: %d, %v", n, err)
	}
	got, _ := f.Received()
	if len(got) != 2 || !bytes.Equal(got[0], numbered(103)) || !bytes.Equal(got[1], numbered(104)) {
		t.Fatalf("guest received %d frames after the hand-over, want frames 103 and 104", len(got))
	}
	f.Sync() // the protocol goes on with the restored server
	f2 := vhosttest.Dial(t, r.path, vhosttest.FeatVersion1|vhosttest.FeatProtocolFeatures)
	if d := <-r.devices; d.HandoverKey() == key {
		t.Fatalf("a new frontend got the handed-over device's key %q", key)
	}
	f2.Sync()
	if _, err := os.Stat(r.path); err != nil {
		t.Fatalf("the socket went with the released server: %v", err)
	}
}

// A hand-over that fails resumes the server as it was.
func TestHandoverResume(t *testing.T) {
	r, f := newHandoverRig(t)
	if err := r.srv.Pause(); err != nil {
		t.Fatal(err)
	}
	r.stopReader(r.dev)
	f.Transmit(0, numberedFrames(0, 5)...)
	if err := r.srv.Resume(); err != nil {
		t.Fatal(err)
	}
	r.dev.SetReadDeadline(time.Time{})
	r.read(r.dev)
	r.expect(0, 5)
	f.Sync()
	f2 := vhosttest.Dial(t, r.path, vhosttest.FeatVersion1)
	<-r.devices
	f2.Sync()
}

// Decode refuses, with one line, what it cannot take.
func TestDecodeStateRefuses(t *testing.T) {
	good := `{"version":1,"files":["l"],"servers":[{"path":"/x","listener":0,"next_serial":0}]}`
	if _, err := Decode([]byte(good)); err != nil {
		t.Fatalf("good state: %v", err)
	}
	for _, c := range []struct{ desc, in, want string }{
		{"future version", `{"version":2}`, "version 2, this binary reads version 1"},
		{"unknown field", `{"version":1,"files":[],"servers":[],"packed":true}`, "unknown field"},
		{"descriptor out of range", `{"version":1,"files":[],"servers":[{"path":"/x","listener":0}]}`, "out of range"},
		{"descriptor twice", `{"version":1,"files":["l"],"servers":[{"path":"/x","listener":0,"devices":[{"key":"k","conn":0}]}]}`, "used twice"},
		{"stray descriptor", `{"version":1,"files":["l","x"],"servers":[{"path":"/x","listener":0}]}`, "belongs to nothing"},
		{"ring out of range", `{"version":1,"files":["l","c"],"servers":[{"path":"/x","listener":0,"devices":[{"key":"k","conn":1,"rings":[{"index":16,"kick":-1,"call":-1}]}]}]}`, "ring 16"},
		{"features not offered", `{"version":1,"files":["l","c"],"servers":[{"path":"/x","listener":0,"devices":[{"key":"k","conn":1,"features":4}]}]}`, "not offered"},
		{"not JSON", `VDESTATE`, "vhost-user hand-over state"},
	} {
		_, err := Decode([]byte(c.in))
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.want)) || bytes.Contains([]byte(err.Error()), []byte("\n")) {
			t.Errorf("%s: got %v, want one line with %q", c.desc, err, c.want)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":["l","c","m","k","c1"],"servers":[{"path":"/x","listener":0,"next_serial":1,` +
		`"devices":[{"key":"/x#0","name":"/x pid 1","conn":1,"features":4294967296,"protocol":9,"regions":[{"guest_addr":0,"size":4096,"user_addr":0,"mmap_offset":0,"file":2}],` +
		`"rings":[{"index":1,"num":256,"addr_set":true,"kick":3,"call":4,"started":true,"enabled":true}],"counters":{}}]}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Decode(b)
		if err != nil {
			if bytes.Contains([]byte(err.Error()), []byte("\n")) {
				t.Fatalf("error of more than one line: %q", err)
			}
			return
		}
		out, err := Encode(st)
		if err != nil {
			t.Fatalf("a decoded state does not encode: %v", err)
		}
		if _, err := Decode(out); err != nil {
			t.Fatalf("an encoded state does not decode: %v", err)
		}
	})
}

// sendNeedReply sends a request with NEED_REPLY and returns the reply's status.
func sendNeedReply(t *testing.T, f *vhosttest.Frontend, req uint32, p []byte) uint64 {
	t.Helper()
	b := make([]byte, 12+len(p))
	binary.LittleEndian.PutUint32(b, req)
	binary.LittleEndian.PutUint32(b[4:], 1|8) // version 1, NEED_REPLY
	binary.LittleEndian.PutUint32(b[8:], uint32(len(p)))
	copy(b[12:], p)
	if _, err := f.Conn.Write(b); err != nil {
		t.Fatal(err)
	}
	return f.Reply(req)
}

// snapshotRestore pauses the rig's server, runs paused (if any) once it stands still,
// takes its state through Encode and Decode and restores it into a new server (the old
// one released).
func snapshotRestore(t *testing.T, r *handoverRig, paused func()) *Server {
	t.Helper()
	if err := r.srv.Pause(); err != nil {
		t.Fatal(err)
	}
	r.stopReader(r.dev)
	if paused != nil {
		paused()
	}
	st := &State{}
	var files []*os.File
	if err := r.srv.Snapshot(st, &files); err != nil {
		t.Fatal(err)
	}
	b, err := Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var s2 *Server
	go func() {
		var err error
		s2, err = Restore(st2, st2.Servers[0], files, Options{Logf: t.Logf})
		done <- err
	}()
	select {
	case err := <-done:
		for _, f := range files {
			f.Close()
		}
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Restore hangs")
	}
	t.Cleanup(func() { s2.Close() })
	r.srv.Release()
	return s2
}

// A ring the frontend set up outside its memory (refused with status 1, the device goes
// on) crosses a hand-over as it was: Restore takes the state the old switch ran with, and
// the device's good rings go on.
func TestRestoreForgivesBadRing(t *testing.T) {
	r, f := newHandoverRig(t)
	f.Send(vhosttest.ReqSetVringNum, vhosttest.State(2, 256))
	a := make([]byte, 40)
	binary.LittleEndian.PutUint32(a, 2)
	binary.LittleEndian.PutUint64(a[8:], 0xdead0000)
	binary.LittleEndian.PutUint64(a[16:], 0xdead8000)
	binary.LittleEndian.PutUint64(a[24:], 0xdeadc000)
	if st := sendNeedReply(t, f, vhosttest.ReqSetVringAddr, a); st != 1 {
		t.Fatalf("SET_VRING_ADDR outside memory: status %d, want 1", st)
	}
	s2 := snapshotRestore(t, r, nil)
	d2 := s2.Devices()[0]
	r.read(d2)
	r.start(s2)
	f.Transmit(0, numberedFrames(0, 3)...)
	r.expect(0, 3)
}

// A device whose memory cannot be mapped again comes back closed instead of failing the
// server: its port is freed, the frontend sees the disconnect, the others go on.
func TestRestoreClosesWhatItCannotTake(t *testing.T) {
	r, f := newHandoverRig(t)
	s2 := snapshotRestore(t, r, func() {
		if err := unix.Ftruncate(f.MemFD, 0); err != nil { // now shorter than its region
			t.Fatal(err)
		}
	})
	ds := s2.Devices()
	if len(ds) != 1 || !ds[0].closed.Load() {
		t.Fatalf("restored devices %v: want the one device, closed", ds)
	}
	bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
	if _, err := ds[0].ReadBatch(bufs, sizes); err != io.EOF {
		t.Fatalf("ReadBatch on the closed device: %v, want EOF", err)
	}
	r.start(s2)
	f2 := vhosttest.Dial(t, r.path, vhosttest.FeatVersion1)
	<-r.devices
	f2.Sync()
}

// A frontend that sent part of a message and stopped does not hold a pause up: after
// resumeWait its device ends, and a Close after the pause ends every device once.
func TestPauseStalledMessage(t *testing.T) {
	r, _ := newHandoverRig(t)
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: r.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stalled := <-r.devices
	c.Write([]byte{1, 0, 0}) // 3 bytes of a 12-byte header
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- r.srv.Pause() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * resumeWait):
		t.Fatal("Pause waits for a frontend that stopped halfway through a message")
	}
	if !stalled.closed.Load() {
		t.Fatal("the stalled frontend's device is still open")
	}
	r.stopReader(r.dev)
	r.srv.Close()
	for _, d := range []*Device{stalled, r.dev} {
		if u := d.users.Load(); u != 0 {
			t.Errorf("device %s: %d users after Close, want 0", d.name, u)
		}
	}
}
