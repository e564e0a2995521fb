package switchcore

import "fmt"

// debugCat is a debug event category sessions can subscribe to with debug/add.
type debugCat struct {
	path string
	tag  int
	help string
}

// The listable categories, in the C switch's debug/list order.
var (
	catHashAdd   = &debugCat{"hash/+", 011, "hash: new element"}
	catHashDel   = &debugCat{"hash/-", 012, "hash: discarded element"}
	catFSTStatus = &debugCat{"fstp/status", 044, "fstp: status change"}
	catFSTRoot   = &debugCat{"fstp/root", 045, "fstp: rootswitch/port change"}
	catFSTAdd    = &debugCat{"fstp/+", 041, "fstp: port becomes active"}
	catFSTDel    = &debugCat{"fstp/-", 042, "fstp: port becomes inactive"}
	catPortAdd   = &debugCat{"port/+", 021, "new port"}
	catPortDel   = &debugCat{"port/-", 022, "closed port"}
	catPortDescr = &debugCat{"port/descr", 023, "set port description"}
	catEPAdd     = &debugCat{"port/ep/+", 031, "new endpoint"}
	catEPDel     = &debugCat{"port/ep/-", 032, "closed endpoint"}
)

var debugCats = []*debugCat{catHashAdd, catHashDel, catFSTStatus, catFSTRoot, catFSTAdd, catFSTDel,
	catPortAdd, catPortDel, catPortDescr, catEPAdd, catEPDel}

// event sends an asynchronous "3TAG category message" line to every subscribed session.
func (s *Switch) event(c *debugCat, msg string) {
	if s.debugSubs.Load() == 0 {
		return
	}
	line := []byte(fmt.Sprintf("3%03o %s %s\n", c.tag, c.path, msg))
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	for ss := range s.sessions {
		if ss.subscribed(c) {
			ss.async(line)
		}
	}
}

func (s *Switch) hashEvent(c *debugCat, e *macEntry) {
	if s.debugSubs.Load() > 0 {
		s.event(c, hashEventText(e.key, e.port))
	}
}
