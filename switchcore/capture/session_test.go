package capture

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// frameOf is a 60-byte Ethernet frame whose last byte is n.
func frameOf(n byte) []byte {
	f := make([]byte, 60)
	copy(f, "\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x00")
	f[59] = n
	return f
}

// readBack parses a stream with gopacket's pcapng reader: the packets, their options,
// and each interface's last statistics.
type readBack struct {
	ifaces []pcapgo.NgInterface
	frames []packet
	stats  map[int]pcapgo.NgInterfaceStatistics
}

type packet struct {
	iface int
	data  []byte
	ts    time.Time
	dir   pcapgo.NgEpbFlag
	drops uint64
}

func parse(t *testing.T, b []byte) readBack {
	t.Helper()
	rb := readBack{stats: map[int]pcapgo.NgInterfaceStatistics{}}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{
		StatisticsCallback: func(i int, s pcapgo.NgInterfaceStatistics) { rb.stats[i] = s },
	})
	if err != nil {
		t.Fatalf("pcapng reader: %v", err)
	}
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("pcapng reader after %d frames: %v", len(rb.frames), err)
		}
		p := packet{iface: ci.InterfaceIndex, data: append([]byte(nil), data...), ts: ci.Timestamp}
		if opts.Flags != nil {
			p.dir = opts.Flags.Direction
		}
		if opts.DropCount != nil {
			p.drops = *opts.DropCount
		}
		rb.frames = append(rb.frames, p)
	}
	for i := 0; i < r.NInterfaces(); i++ {
		f, _ := r.Interface(i)
		rb.ifaces = append(rb.ifaces, f)
	}
	return rb
}

func runStopped(t *testing.T, s *Session) []byte {
	t.Helper()
	var out bytes.Buffer
	stop := make(chan struct{})
	close(stop)
	if _, err := s.Run(&out, stop); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return out.Bytes()
}

// The frames come back in order, each on its port's interface with its direction; the
// active ports' interfaces come first, another's when its first frame comes.
func TestStreamInterfacesAndDirections(t *testing.T) {
	s, err := New(Config{NumPorts: 8, Active: []int{2, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	s.Frame(1, In, frameOf(1))
	s.Frame(2, Out, frameOf(2))
	s.Frame(5, In, frameOf(3))
	s.Frame(8, In, frameOf(4)) // no such port: ignored
	rb := parse(t, runStopped(t, s))
	var names []string
	for _, f := range rb.ifaces {
		names = append(names, f.Name)
	}
	if fmt.Sprint(names) != "[port1 port2 port5]" {
		t.Errorf("interfaces %v, want [port1 port2 port5]", names)
	}
	want := []struct {
		iface int
		dir   pcapgo.NgEpbFlag
	}{{0, pcapgo.NgEpbFlagDirectionInbound}, {1, pcapgo.NgEpbFlagDirectionOutbound}, {2, pcapgo.NgEpbFlagDirectionInbound}}
	if len(rb.frames) != len(want) {
		t.Fatalf("%d frames, want %d", len(rb.frames), len(want))
	}
	for i, w := range want {
		p := rb.frames[i]
		if p.iface != w.iface || p.dir != w.dir || !bytes.Equal(p.data, frameOf(byte(i+1))) {
			t.Errorf("frame %d: interface %d direction %d data %x; want interface %d direction %d", i, p.iface, p.dir, p.data, w.iface, w.dir)
		}
		if p.ts.Before(before.Add(-time.Microsecond)) || p.ts.After(time.Now()) {
			t.Errorf("frame %d: timestamp %v not within the test", i, p.ts)
		}
	}
	for i := range rb.ifaces {
		if st := rb.stats[i]; st.PacketsDropped != 0 || st.PacketsReceived != 1 {
			t.Errorf("interface %d statistics: received %d dropped %d, want 1 and 0", i, st.PacketsReceived, st.PacketsDropped)
		}
	}
}

// Only the named ports are captured, each its own interface even before any frame.
func TestStreamNamedPorts(t *testing.T) {
	s, err := New(Config{NumPorts: 8, Ports: []int{3, 6}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{NumPorts: 8, Ports: []int{8}}); err == nil {
		t.Error("port 8 of 8 accepted")
	}
	s.Frame(1, In, frameOf(1))
	s.Frame(6, Out, frameOf(2))
	rb := parse(t, runStopped(t, s))
	if len(rb.ifaces) != 2 || rb.ifaces[0].Name != "port3" || rb.ifaces[1].Name != "port6" {
		t.Errorf("interfaces %+v, want port3 and port6", rb.ifaces)
	}
	if len(rb.frames) != 1 || rb.frames[0].iface != 1 {
		t.Errorf("frames %+v, want one on interface 1", rb.frames)
	}
}

// A full ring drops and counts: the packet after a loss carries the count, and the
// interface statistics hold the total.
func TestStreamDropsCounted(t *testing.T) {
	s, err := New(Config{NumPorts: 4, Slots: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		s.Frame(1, In, frameOf(byte(i)))
	}
	var out bytes.Buffer
	stop := make(chan struct{})
	close(stop)
	// The writer drains the first 4, then the producers lose 6 more before it comes back.
	st, err := s.Run(&out, stop)
	if err != nil {
		t.Fatal(err)
	}
	if st.Frames != 4 || st.Dropped != 6 {
		t.Errorf("stats %+v, want 4 frames and 6 dropped", st)
	}
	rb := parse(t, out.Bytes())
	if got := rb.stats[0]; got.PacketsDropped != 6 || got.PacketsReceived != 10 {
		t.Errorf("statistics: received %d dropped %d, want 10 and 6", got.PacketsReceived, got.PacketsDropped)
	}
	// A loss between two frames is counted in the packet after it: the writer makes room
	// (it has written frames 1 and 2 when it flushes them), then frame 4 comes.
	s2, _ := New(Config{NumPorts: 4, Slots: 2})
	s2.Frame(1, In, frameOf(1))
	s2.Frame(1, In, frameOf(2))
	s2.Frame(1, In, frameOf(3)) // lost
	var out2 bytes.Buffer
	writes := 0
	w := writerFunc(func(b []byte) (int, error) {
		if writes++; writes == 2 { // the first flush is the header
			s2.Frame(1, In, frameOf(4))
			s2.Wake()
		}
		return out2.Write(b)
	})
	stop2 := make(chan struct{})
	close(stop2)
	if _, err := s2.Run(w, stop2); err != nil {
		t.Fatal(err)
	}
	rb = parse(t, out2.Bytes())
	if len(rb.frames) != 3 || rb.frames[2].drops != 1 || rb.frames[0].drops != 0 || rb.frames[2].data[59] != 4 {
		t.Errorf("frames %+v: want 1, 2 and 4, the last with a drop count of 1", rb.frames)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// count=N ends the stream after N frames, without a stop.
func TestStreamCount(t *testing.T) {
	s, _ := New(Config{NumPorts: 4, Count: 3})
	for i := 0; i < 5; i++ {
		s.Frame(2, Out, frameOf(byte(i)))
	}
	s.Wake()
	var out bytes.Buffer
	st, err := s.Run(&out, nil)
	if err != nil || st.Frames != 3 {
		t.Fatalf("Run = %+v, %v; want 3 frames", st, err)
	}
	if rb := parse(t, out.Bytes()); len(rb.frames) != 3 {
		t.Errorf("%d frames in the stream, want 3", len(rb.frames))
	}
}

// Many producers at once (the port readers) and one writer: every frame is written or
// counted as dropped, none twice, none torn.
func TestStreamConcurrentProducers(t *testing.T) {
	const producers, each = 4, 5000
	s, _ := New(Config{NumPorts: producers + 1, Slots: 64})
	stop := make(chan struct{})
	var out bytes.Buffer
	done := make(chan Stats)
	go func() {
		st, err := s.Run(&out, stop)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	var wg sync.WaitGroup
	for p := 1; p <= producers; p++ {
		wg.Add(1)
		go func(port int) {
			defer wg.Done()
			f := frameOf(byte(port))
			for i := 0; i < each; i++ {
				s.Frame(port, In, f)
				if i%32 == 31 {
					s.Wake()
				}
			}
			s.Wake()
		}(p)
	}
	wg.Wait()
	close(stop)
	st := <-done
	if st.Frames+st.Dropped != producers*each {
		t.Errorf("%d written + %d dropped, want %d", st.Frames, st.Dropped, producers*each)
	}
	rb := parse(t, out.Bytes())
	if uint64(len(rb.frames)) != st.Frames {
		t.Errorf("%d frames in the stream, Run says %d", len(rb.frames), st.Frames)
	}
	for _, p := range rb.frames {
		if port := int(p.data[59]); rb.ifaces[p.iface].Name != fmt.Sprintf("port%d", port) {
			t.Fatalf("a frame of port %d on interface %s", port, rb.ifaces[p.iface].Name)
		}
	}
}

// A reader that fails (the client went away) ends Run with the error.
func TestStreamWriteError(t *testing.T) {
	s, _ := New(Config{NumPorts: 2})
	if _, err := s.Run(failWriter{}, nil); err == nil {
		t.Error("Run on a failing writer returned nil")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// Frame allocates nothing: it is on the switch's frame path.
func TestFrameAllocatesNothing(t *testing.T) {
	s, _ := New(Config{NumPorts: 4, Slots: 1024})
	f := frameOf(1)
	if n := testing.AllocsPerRun(500, func() { s.Frame(1, In, f); s.Wake() }); n != 0 {
		t.Errorf("Frame allocates %v times a frame", n)
	}
	// A full ring drops without allocating either.
	if n := testing.AllocsPerRun(500, func() { s.Frame(1, In, f) }); n != 0 {
		t.Errorf("Frame on a full ring allocates %v times a frame", n)
	}
}

// BenchmarkFrame is what each frame costs the frame path while a capture runs (a copy
// into the ring and a timestamp); without a capture the path pays nothing of it. The
// allocations it reports would be the writer goroutine's, which runs beside the frame
// path and encodes a frame without allocating either (TestWriterAllocatesNothing);
// TestFrameAllocatesNothing checks Frame's own.
func BenchmarkFrame(b *testing.B) {
	s, _ := New(Config{NumPorts: 4, Slots: 1024})
	stop := make(chan struct{})
	go s.Run(io.Discard, stop)
	defer close(stop)
	f := frameOf(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Frame(1, In, f)
		if i%32 == 31 {
			s.Wake()
		}
	}
}
