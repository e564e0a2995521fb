// Package netnode is vdeplug4's network nodes as URL schemes (libvdeplug_switch(1),
// libvdeplug_hub(1), libvdeplug_multi(1), libvdeplug_bonding(1)): the plug's process
// creates a control directory PATH that others join with vde://PATH, and its own
// endpoint is one more member. switch:// and hub:// are a switchcore switch hosted in
// the process; multi:// and bonding:// are the two nodes whose frames never go from one
// link to another, so they are a small fan-out of their own.
package netnode

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vde-go/vde/switchcore/wire"
)

// Defaults of vdeplug4's netnode.
const (
	DefaultHashSize = 256
	DefaultExpire   = 120
	DefaultMode     = 0600
	DefaultDirMode  = 02700
	// defaultPathPrefix is where an empty path puts the node: /tmp/vdenode_USER.
	defaultPathPrefix = "/tmp/vdenode_"
)

// Options is a parsed node argument, PATH[key=value/...] (vdeplug4's vde_parsepathparms).
type Options struct {
	// Path is the control directory as given; empty means /tmp/vdenode_USER.
	Path string
	// Mode is the mode of the ctl socket and of the data sockets (mode=, octal, its
	// execute bits cleared as vdeplug4 clears them).
	Mode uint32
	// DirMode is the mode of the directory (dirmode=, octal); without it, it follows
	// Mode (each class that may read or write may also search), or 02700.
	DirMode    uint32
	DirModeSet bool
	// Group owns the directory and the ctl socket (grp=, a name or a number), or -1.
	Group int
	// HashSize is the switch's MAC table size (hashsize=, 256).
	HashSize int
	// HashSeed is vdeplug4's hash seed (hashseed=): accepted, it means nothing here.
	HashSeed int
	// Expire is how many seconds a learned address lives (expiretime=, 120).
	Expire int
}

// ErrUnknownKey is a bracket parameter the node does not know.
var ErrUnknownKey = errors.New("unknown key")

// keys are the node's parameters in vdeplug4's order: a given key matches the first
// whose name it begins (so "m" is mode, "h" hashsize, "d" dirmode).
var keys = []string{"mode", "dirmode", "grp", "hashsize", "hashseed", "expiretime"}

// ParseArg parses a node argument. Values vdeplug4 would read as 0 or silently ignore
// (a mode that is not octal, a group that does not exist, a size that is not a number)
// are errors here.
func ParseArg(s string) (Options, error) {
	o := Options{Mode: DefaultMode, DirMode: DefaultDirMode, Group: -1, HashSize: DefaultHashSize, Expire: DefaultExpire}
	path, params := wire.SplitPathParams(s)
	o.Path = path
	modeSet := false
	for _, p := range params {
		key, val, _ := strings.Cut(p, "=")
		if key == "" {
			continue // vdeplug4 skips "" and "=value"
		}
		full := ""
		for _, k := range keys {
			if strings.HasPrefix(k, key) {
				full = k
				break
			}
		}
		switch full {
		case "mode":
			m, err := parseMode(full, val)
			if err != nil {
				return o, err
			}
			o.Mode, modeSet = m&^0111, true
		case "dirmode":
			m, err := parseMode(full, val)
			if err != nil {
				return o, err
			}
			o.DirMode, o.DirModeSet = m, true
		case "grp":
			gid, err := wire.LookupGroup(val)
			if err != nil {
				return o, fmt.Errorf("grp=%s: %w", val, err)
			}
			o.Group = gid
		case "hashsize", "hashseed", "expiretime":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return o, fmt.Errorf("%s=%s: not a number", full, val)
			}
			switch full {
			case "hashsize":
				o.HashSize = n
			case "hashseed":
				o.HashSeed = n
			default:
				o.Expire = n
			}
		default:
			return o, fmt.Errorf("%w: %s", ErrUnknownKey, key)
		}
	}
	if modeSet && !o.DirModeSet {
		o.DirMode = dirModeFor(o.Mode)
	}
	return o, nil
}

func parseMode(key, val string) (uint32, error) {
	m, err := strconv.ParseUint(val, 8, 32)
	if err != nil || m > 07777 {
		return 0, fmt.Errorf("%s=%s: not an octal mode", key, val)
	}
	return uint32(m), nil
}

// dirModeFor is the directory mode vdeplug4 derives from the socket mode: setgid, and
// search for each class that may read or write.
func dirModeFor(mode uint32) uint32 {
	return 02000 | mode | (mode&0444)>>2 | (mode&0222)>>1
}

// Dir is the control directory Options name: Path, or /tmp/vdenode_USER (the user's
// name, or u and the uid when it has none) when Path is empty.
func (o Options) Dir() string {
	if o.Path != "" {
		return filepath.Clean(o.Path)
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return defaultPathPrefix + u.Username
	}
	return defaultPathPrefix + "u" + strconv.Itoa(os.Geteuid())
}
