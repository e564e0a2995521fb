package switchcore

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/capture"
)

// Live capture (`vde capture`, Wireshark's extcap): a management session that runs
// capture/pcapng becomes a pcapng stream of the frames of the ports it names. The stream
// rides on the management connection itself rather than on a descriptor passed with
// SCM_RIGHTS, so it goes wherever a management socket can be reached (ssh forwards Unix
// sockets, socat relays them) and needs nothing but the console protocol up to the
// status line: after "1000 Success" no prompt comes, pcapng does; the client's
// half-close ends it. Every other session keeps Debian's protocol.
//
// The frame path pays nothing while nobody captures: the sessions join the plugins'
// frame tap (plugin.go), which is nil then. A capture copies each frame into its own
// preallocated ring and a writer goroutine drains it to the client, so a slow client
// loses frames (counted in the stream) and never slows the switch.

var captureCommands = []command{
	menu("capture", "LIVE CAPTURE"),
	{path: capture.Command, syntax: "[count=N] [ring=N] [port...]",
		help: "stream the ports' frames (all if none) as pcapng on this session, which ends it", run: cmdCapture},
	{path: capture.PortsCommand, help: "list the ports in use and their descriptions", withFile: true, run: cmdCapturePorts},
}

// captureRun is a capture in progress.
type captureRun struct {
	sess     *capture.Session
	conn     net.Conn
	stop     chan struct{}
	stopOnce sync.Once
}

func (c *captureRun) end() { c.stopOnce.Do(func() { close(c.stop) }) }

func cmdCapture(c *cmdCtx) error {
	if c.ss == nil || c.ss.conn == nil {
		c.printf("capture: only a management socket's session can carry the stream\n")
		return unix.EINVAL
	}
	a, err := capture.ParseArgs(c.arg)
	if err != nil {
		c.printf("%v\n", err)
		return unix.EINVAL
	}
	s := c.s
	cfg := capture.Config{NumPorts: s.numPorts, Ports: a.Ports, Count: a.Count, Slots: a.Slots,
		Describe: s.capturePortName, Application: "vde_switch " + s.cfg.Version}
	s.mu.Lock()
	for _, p := range s.ports {
		if p != nil && p.active() {
			cfg.Active = append(cfg.Active, p.num)
		}
	}
	s.mu.Unlock()
	sess, err := capture.New(cfg)
	if err != nil {
		c.printf("%v\n", err)
		return unix.EINVAL
	}
	c.ss.handoff = func(conn net.Conn, in io.Reader) { s.runCapture(sess, conn, in) }
	return nil
}

// cmdCapturePorts lists the active ports for the extcap's interface list.
func cmdCapturePorts(c *cmdCtx) error {
	s := c.s
	s.mu.Lock()
	var ports []int
	for _, p := range s.ports {
		if p != nil && p.active() {
			ports = append(ports, p.num)
		}
	}
	s.mu.Unlock()
	for _, p := range ports {
		_, d := s.portUserDescrs(p)
		c.printf("%d %s\n", p, strings.Join(d, ", "))
	}
	return nil
}

// capturePortName names a port's pcapng interface "portN", described by its clients'
// descriptions and the switch it belongs to.
func (s *Switch) capturePortName(port int) (name, descr string) {
	_, d := s.portUserDescrs(port)
	descr = "VDE switch " + s.cfg.MgmtPath + " port " + strconv.Itoa(port)
	if len(d) > 0 {
		descr += ": " + strings.Join(d, ", ")
	}
	return "port" + strconv.Itoa(port), descr
}

// runCapture streams sess to conn until the client half-closes or goes, the count is
// reached or the switch closes; it runs on the session's goroutine after the status line.
func (s *Switch) runCapture(sess *capture.Session, conn net.Conn, in io.Reader) {
	defer conn.Close()
	run := &captureRun{sess: sess, conn: conn, stop: make(chan struct{})}
	p := &s.plugins
	p.mu.Lock()
	if s.closing.Load() {
		p.mu.Unlock()
		return
	}
	p.captures = append(p.captures[:len(p.captures):len(p.captures)], run)
	p.retapLocked()
	p.mu.Unlock()
	go func() {
		io.Copy(io.Discard, in) // the client sends nothing more: EOF is its request to end
		run.end()
	}()
	st, err := sess.Run(conn, run.stop)
	s.dropCapture(run)
	if err != nil && !s.closing.Load() {
		s.logf("capture: %s: %v (after %d frames)", s.cfg.MgmtPath, err, st.Frames)
	}
}

// dropCapture takes run off the frame tap.
func (s *Switch) dropCapture(run *captureRun) {
	p := &s.plugins
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.captures {
		if r == run {
			p.captures = append(p.captures[:i:i], p.captures[i+1:]...)
			p.retapLocked()
			return
		}
	}
}

// endCaptures ends every capture (the switch is closing): each writes what it holds and
// its statistics, and a client that stopped reading gets a second to take them.
func (s *Switch) endCaptures() {
	p := &s.plugins
	p.mu.Lock()
	runs := p.captures
	p.mu.Unlock()
	for _, r := range runs {
		r.conn.SetWriteDeadline(time.Now().Add(time.Second))
		r.end()
	}
}
