package switchcore

import (
	"bufio"
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// pdump writes the frames the switch receives and sends to a pcap file, as VDE2's pdump.so
// does: each frame once as it comes in and once for each port it leaves by.

var (
	catPdumpIn  = &debugCat{"pdump/packetin", 0101, "dump incoming packet to file"}
	catPdumpOut = &debugCat{"pdump/packetout", 0102, "dump outgoing packet to file"}
)

// pdumpDefaultFile is the file pdump writes to unless pdump/filename names another
// (relative to the switch's start directory).
const pdumpDefaultFile = "vde_dump.cap"

// pcapSnaplen is the snapshot length the file header declares. Debian's pdump declares 96
// but records whole frames, which readers that trust the header may cut; ours declares
// what it records.
const pcapSnaplen = 65535

var pdumpPlugin = &pluginDef{
	name: "pdump",
	help: "dump packets to file, in pcap format",
	commands: []command{
		menu("pdump", "DUMP Packets to file"),
		{path: "pdump/active", syntax: "0/1", help: "start dumping data", withFile: true, run: cmdPdumpActive},
		{path: "pdump/filename", syntax: "<file>", help: "set/show output filename (default: vde_dump.cap)", withFile: true, run: cmdPdumpFilename},
		{path: "pdump/buffered", syntax: "0/1", help: "set buffered/unbuffered dump", run: cmdPdumpBuffered},
	},
	cats:  []*debugCat{catPdumpIn, catPdumpOut},
	start: func(s *Switch) pluginState { return &pdumpState{s: s, name: pdumpDefaultFile} },
}

// pdumpState is a loaded pdump. Readers write records under mu into one buffered writer;
// unbuffered (the default), each reader flushes it at the end of its batch, so the file
// holds every frame by the time the reader goes back for more (C flushes per frame).
type pdumpState struct {
	s        *Switch
	active   atomic.Bool
	buffered atomic.Bool

	mu    sync.Mutex
	name  string // as given, for "dumpfile="
	f     *os.File
	w     *bufio.Writer
	dirty bool // records not flushed yet
	rec   [16]byte
}

func (p *pdumpState) watching() bool { return p.active.Load() }

// open creates the dump file and writes its header; call with mu held.
func (p *pdumpState) openLocked(c *cmdCtx) error {
	f, _, err := openForSession(c.ss, inStartDir(p.name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0600)
	if err != nil {
		c.printf("set_dumper() open(%s): %s\n", p.name, errText(err))
		c.printf("ERROR: cannot dump to %s\n", p.name)
		return unix.EINVAL
	}
	p.f = f
	if p.w == nil {
		p.w = bufio.NewWriterSize(f, 64<<10)
	} else {
		p.w.Reset(f)
	}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], pcapSnaplen)
	binary.LittleEndian.PutUint32(h[20:], 1) // LINKTYPE_ETHERNET
	p.w.Write(h[:])
	p.w.Flush()
	return nil
}

// closeLocked flushes and closes the file; call with mu held.
func (p *pdumpState) closeLocked() {
	if p.f == nil {
		return
	}
	if err := p.w.Flush(); err != nil {
		p.s.logf("pdump: %s: %s", p.name, errText(err))
	}
	p.f.Close()
	p.f = nil
	p.dirty = false
}

func (p *pdumpState) flush() {
	p.mu.Lock()
	if p.f != nil && p.dirty {
		if err := p.w.Flush(); err != nil {
			p.s.logf("pdump: %s: %s", p.name, errText(err))
		}
		p.dirty = false
	}
	p.mu.Unlock()
}

// record appends one frame to the file (no allocation: the writer's buffer takes it).
func (p *pdumpState) record(f []byte) {
	now := time.Now()
	p.mu.Lock()
	if p.f != nil {
		binary.LittleEndian.PutUint32(p.rec[0:], uint32(now.Unix()))
		binary.LittleEndian.PutUint32(p.rec[4:], uint32(now.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(p.rec[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(p.rec[12:], uint32(len(f)))
		p.w.Write(p.rec[:])
		p.w.Write(f)
		p.dirty = true
	}
	p.mu.Unlock()
}

func (p *pdumpState) batchDone() {
	if !p.buffered.Load() {
		p.flush()
	}
}

func (p *pdumpState) stop() {
	p.active.Store(false)
	p.mu.Lock()
	p.closeLocked()
	p.mu.Unlock()
}

func pdumpOf(c *cmdCtx) *pdumpState {
	c.s.plugins.mu.Lock()
	defer c.s.plugins.mu.Unlock()
	return c.s.plugins.pdump
}

// cmdPdumpActive starts (opening the file if none is open) or stops dumping; stopping
// flushes the file and keeps it open, so that a restart appends.
func cmdPdumpActive(c *cmdCtx) error {
	p := pdumpOf(c)
	if p == nil {
		return unix.ENOSYS
	}
	if atoi(c.arg) != 0 {
		p.mu.Lock()
		if p.f == nil {
			if err := p.openLocked(c); err != nil {
				p.mu.Unlock()
				return err
			}
		}
		p.mu.Unlock()
		if p.active.Swap(true) {
			return unix.EEXIST
		}
	} else {
		if !p.active.Swap(false) {
			return unix.ENOENT
		}
		p.flush()
	}
	c.s.retap()
	return nil
}

// cmdPdumpFilename shows the file name, or sets it and creates the file at once (C does).
func cmdPdumpFilename(c *cmdCtx) error {
	p := pdumpOf(c)
	if p == nil {
		return unix.ENOSYS
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.arg != "" {
		p.closeLocked()
		p.name = c.arg
		if err := p.openLocked(c); err != nil {
			return err
		}
	}
	c.printf("dumpfile=%s\n", p.name)
	return nil
}

func cmdPdumpBuffered(c *cmdCtx) error {
	p := pdumpOf(c)
	if p == nil {
		return unix.ENOSYS
	}
	p.buffered.Store(atoi(c.arg) != 0)
	if !p.buffered.Load() {
		p.flush()
	}
	return nil
}
