package switchcore

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/vde-go/vde/switchcore/capture"
)

// The C switch loads plugins (shared objects) with plugin/add; Debian ships three: pdump,
// iplog and dump. Ours are built in: plugin/add takes the names and paths Debian's switch
// takes for them and enables the built-in module, whose commands and debug categories
// then join the console as the .so's would (after every built-in command, in load order)
// until plugin/del.

// pluginDef is a built-in stand-in for one of VDE2's switch plugins.
type pluginDef struct {
	name, help string
	commands   []command
	cats       []*debugCat
	// start makes the plugin's state for a switch at plugin/add; stop ends it at plugin/del
	// and when the switch closes.
	start func(s *Switch) pluginState
}

// pluginState is one loaded plugin of one switch.
type pluginState interface{ stop() }

// builtinPlugins are the plugins plugin/add can load, by the name their .so declares.
var builtinPlugins = []*pluginDef{pdumpPlugin, iplogPlugin, dumpPlugin}

// pluginDir is where Debian's vde2 installs its plugins. Debian's switch (2.3.2+r586)
// tries "<dir><name>" (no slash) and then "<dir>/<name>.so" for a bare name.
const pluginDir = "/usr/lib/vde2/plugins"

// knownPluginDirs hold VDE2 plugins on some system: a path naming one of our plugins there
// loads it even when the file is absent (a Debian rc file keeps working once vde2 is gone).
var knownPluginDirs = []string{pluginDir, "/usr/lib/x86_64-linux-gnu/vde2/plugins",
	"/usr/local/lib/vde2/plugins", "/usr/lib64/vde2/plugins"}

// startDir is the directory the switch started in: relative file names given to the
// plugins (pdump/filename, iplog/logfile) are relative to it, as in Debian's switch, which
// keeps its start directory as a daemon (ours moves to / once running).
var startDir, _ = os.Getwd()

func inStartDir(name string) string {
	if filepath.IsAbs(name) || startDir == "" {
		return name
	}
	return filepath.Join(startDir, name)
}

// plugins is a switch's set of loaded plugins.
type plugins struct {
	mu     sync.Mutex
	loaded []*loadedPlugin // in load order
	// tap is what the frame path calls for each frame while a plugin watches frames; nil
	// (the usual case) costs a reader one atomic load per batch.
	tap atomic.Pointer[frameTap]

	pdump *pdumpState // the states of the loaded plugins, nil when not loaded
	iplog *iplogState
	dump  *dumpState

	captures []*captureRun // live captures (capture.go); replaced, never changed in place
}

type loadedPlugin struct {
	def   *pluginDef
	state pluginState
}

// frameTap is the set of plugins that watch frames. It is replaced, never changed, when
// one starts or stops.
type frameTap struct {
	pdump *pdumpState
	iplog *iplogState
	dump  *dumpState
	caps  []*capture.Session
}

// in is called for every frame a port receives, before any check (the C switch's
// packet/in event).
func (t *frameTap) in(port int, f []byte) {
	if t.pdump != nil {
		t.pdump.record(f)
	}
	if t.iplog != nil {
		t.iplog.frame(port, f)
	}
	if t.dump != nil {
		t.dump.frame(catDumpIn, port, f)
	}
	for _, c := range t.caps {
		c.Frame(port, capture.In, f)
	}
}

// out is called once for each port a frame is sent to, as it leaves that port (packet/out).
func (t *frameTap) out(port int, f []byte) {
	if t.pdump != nil {
		t.pdump.record(f)
	}
	if t.dump != nil {
		t.dump.frame(catDumpOut, port, f)
	}
	for _, c := range t.caps {
		c.Frame(port, capture.Out, f)
	}
}

// done ends a reader's batch.
func (t *frameTap) done() {
	if t.pdump != nil {
		t.pdump.batchDone()
	}
	for _, c := range t.caps {
		c.Wake()
	}
}

// retap publishes the frame watchers of the loaded plugins; call with p.mu held.
func (p *plugins) retapLocked() {
	t := &frameTap{}
	if p.pdump != nil && p.pdump.watching() {
		t.pdump = p.pdump
	}
	if p.iplog != nil && p.iplog.watching() {
		t.iplog = p.iplog
	}
	if p.dump != nil && p.dump.active.Load() {
		t.dump = p.dump
	}
	for _, c := range p.captures {
		t.caps = append(t.caps, c.sess)
	}
	if t.pdump == nil && t.iplog == nil && t.dump == nil && len(t.caps) == 0 {
		t = nil
	}
	p.tap.Store(t)
}

func (s *Switch) retap() {
	s.plugins.mu.Lock()
	s.plugins.retapLocked()
	s.plugins.mu.Unlock()
}

// setState keeps (or, with nil, forgets) the state of plugin def where its commands find it.
func (p *plugins) setState(def *pluginDef, st pluginState) {
	switch def {
	case pdumpPlugin:
		p.pdump, _ = st.(*pdumpState)
	case iplogPlugin:
		p.iplog, _ = st.(*iplogState)
	case dumpPlugin:
		p.dump, _ = st.(*dumpState)
	}
}

// lookupCommand finds the command a console line runs: the built-in registry first, then
// the commands of the loaded plugins, each matched by prefix in order (as the C switch's
// one list is).
func (s *Switch) lookupCommand(line string) *command {
	if c := lookupCommand(line); c != nil {
		return c
	}
	s.plugins.mu.Lock()
	defer s.plugins.mu.Unlock()
	for _, lp := range s.plugins.loaded {
		for i := range lp.def.commands {
			c := &lp.def.commands[i]
			if !c.menu && strings.HasPrefix(line, c.path) {
				return c
			}
		}
	}
	return nil
}

// commands lists every command help shows: the registry, then the plugins' commands.
func (s *Switch) commands() []*command {
	out := make([]*command, 0, len(registry)+16)
	for i := range registry {
		out = append(out, &registry[i])
	}
	s.plugins.mu.Lock()
	defer s.plugins.mu.Unlock()
	for _, lp := range s.plugins.loaded {
		for i := range lp.def.commands {
			out = append(out, &lp.def.commands[i])
		}
	}
	return out
}

// debugCategories lists the debug categories: the switch's, then the loaded plugins'.
func (s *Switch) debugCategories() []*debugCat {
	s.plugins.mu.Lock()
	defer s.plugins.mu.Unlock()
	if len(s.plugins.loaded) == 0 {
		return debugCats
	}
	out := append([]*debugCat(nil), debugCats...)
	for _, lp := range s.plugins.loaded {
		out = append(out, lp.def.cats...)
	}
	return out
}

var pluginCommands = []command{
	menu("plugin", "PLUGINS MENU"),
	{path: "plugin/list", help: "list plugins", withFile: true, run: cmdPluginList},
	{path: "plugin/add", syntax: "library", help: "load a plugin", run: cmdPluginAdd},
	{path: "plugin/del", syntax: "name", help: "unload a plugin", run: cmdPluginDel},
}

func cmdPluginList(c *cmdCtx) error {
	c.printf("%-22s %s\n", "NAME", "HELP")
	c.printf("%-22s %s\n", "------------", "----")
	p := &c.s.plugins
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error = unix.ENOENT
	for _, lp := range p.loaded {
		if strings.HasPrefix(lp.def.name, c.arg) {
			c.printf("%-22s %s\n", lp.def.name, lp.def.help)
			err = nil
		}
	}
	return err
}

func cmdPluginAdd(c *cmdCtx) error {
	def, err := resolvePlugin(c.arg, os.Getenv("HOME"))
	if err != nil {
		if err == errForeignPlugin {
			c.s.logf("plugin/add %s: a plugin built for the C switch cannot be loaded here; built in: pdump, iplog, dump", c.arg)
			return unix.ENOENT
		}
		return err
	}
	p := &c.s.plugins
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, lp := range p.loaded {
		if lp.def == def {
			return unix.EEXIST
		}
	}
	st := def.start(c.s)
	p.loaded = append(p.loaded, &loadedPlugin{def: def, state: st})
	p.setState(def, st)
	p.retapLocked()
	return nil
}

// cmdPluginDel unloads the first loaded plugin whose name starts with the argument (an
// empty one names the first plugin), as the C switch does.
func cmdPluginDel(c *cmdCtx) error {
	s := c.s
	p := &s.plugins
	p.mu.Lock()
	var gone *loadedPlugin
	for i, lp := range p.loaded {
		if strings.HasPrefix(lp.def.name, c.arg) {
			gone = lp
			p.loaded = append(p.loaded[:i:i], p.loaded[i+1:]...)
			p.setState(lp.def, nil)
			p.retapLocked()
			break
		}
	}
	p.mu.Unlock()
	if gone == nil {
		return unix.ENOENT
	}
	gone.state.stop() // after retap: readers that still hold the old tap find it stopped
	s.dropDebugCats(gone.def.cats)
	return nil
}

// closePlugins stops every loaded plugin (the switch is closing).
func (s *Switch) closePlugins() {
	p := &s.plugins
	p.mu.Lock()
	loaded := p.loaded
	p.loaded = nil
	for _, lp := range loaded {
		p.setState(lp.def, nil)
	}
	p.retapLocked()
	p.mu.Unlock()
	for _, lp := range loaded {
		lp.state.stop()
	}
	s.endCaptures()
}

// dropDebugCats ends every session's subscription to cats (their plugin is gone).
func (s *Switch) dropDebugCats(cats []*debugCat) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	for ss := range s.sessions {
		before := len(ss.subs) > 0
		for _, c := range cats {
			delete(ss.subs, c)
		}
		if before && len(ss.subs) == 0 {
			s.debugSubs.Add(-1)
		}
	}
}

// portGone is told when a port's last endpoint left (the C switch's port/- event); call
// with s.mu held.
func (s *Switch) portGone(port int) {
	s.plugins.mu.Lock()
	ip := s.plugins.iplog
	s.plugins.mu.Unlock()
	if ip != nil {
		ip.portGone(port)
	}
}

// errForeignPlugin: the file is a VDE2 plugin, but not one of ours.
var errForeignPlugin = errors.New("a plugin built for the C switch")

// resolvePlugin finds the plugin plugin/add ARG loads, trying the names Debian's switch
// passes to dlopen, in its order: ARG, ARG.so, ~/.vde2/plugins/ARG[.so], then the plugin
// directory. A name without a slash is a library the dynamic linker would search for
// (never one of the plugins); a file is "loaded" when it is an ELF shared object: without
// a vde_plugin_data symbol it is EINVAL, as in C. No candidate: ENOENT.
func resolvePlugin(arg, home string) (*pluginDef, error) {
	if arg == "" {
		return nil, unix.EINVAL // dlopen("") is the program itself, which is no plugin
	}
	if home == "" {
		home = "/"
	}
	userDir := home + "/.vde2/plugins/"
	for _, c := range []string{arg, arg + ".so", userDir + arg, userDir + arg + ".so",
		pluginDir + arg, pluginDir + "/" + arg + ".so"} {
		if def, ok, err := tryPluginFile(c); ok {
			return def, err
		}
	}
	return nil, unix.ENOENT
}

// tryPluginFile says what dlopen(path) would give: ok is false when dlopen would fail.
func tryPluginFile(path string) (def *pluginDef, ok bool, err error) {
	if !strings.Contains(path, "/") {
		for _, dir := range libraryDirs() {
			if isSharedObject(filepath.Join(dir, path)) {
				return nil, true, unix.EINVAL // a library, not a plugin
			}
		}
		return nil, false, nil
	}
	path = inStartDir(path) // dlopen opens it from the working directory, Debian's daemon's start one
	clean := filepath.Clean(path)
	if !isSharedObject(path) {
		for _, dir := range knownPluginDirs {
			for _, d := range builtinPlugins {
				if clean == dir+"/"+d.name+".so" {
					if _, err := os.Stat(path); err != nil {
						return d, true, nil // our stand-in for a plugin this system lacks
					}
				}
			}
		}
		return nil, false, nil
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		clean = real
	}
	if !hasPluginSymbol(path) {
		return nil, true, unix.EINVAL
	}
	base := strings.TrimSuffix(filepath.Base(clean), ".so")
	for _, d := range builtinPlugins {
		if base == d.name {
			return d, true, nil
		}
	}
	return nil, true, errForeignPlugin
}

// libraryDirs are where the dynamic linker looks for a bare library name.
func libraryDirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("LD_LIBRARY_PATH")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return append(dirs, "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// isSharedObject reports whether path is a regular file that is an ELF shared object.
func isSharedObject(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Type == elf.ET_DYN
}

func hasPluginSymbol(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return false
	}
	for _, s := range syms {
		if s.Name == "vde_plugin_data" && s.Section != elf.SHN_UNDEF {
			return true
		}
	}
	return false
}

// fileUser is whose rights a plugin opens a file with: the switch's (uid -1), or those of
// the user of the mgmt session that named the file.
type fileUser struct{ uid, gid int }

var asSwitch = fileUser{-1, -1}

// fileUserOf says whose rights the files a session names (pdump/filename, iplog/logfile)
// are opened with, as load reads its script (readScript): the console, rc files, root's and
// the switch's own user's sessions open as the switch; another user's session opens as
// that user in a root switch, and in a switch of another user it may not name files at
// all (EACCES). The C switch opens them as itself, so any user of a root switch's mgmt
// socket could truncate /etc/shadow with pdump/filename.
func fileUserOf(ss *session) (fileUser, error) {
	if ss == nil || ss.peer < 0 || ss.peer == 0 || ss.peer == os.Geteuid() {
		return asSwitch, nil
	}
	if os.Geteuid() != 0 {
		return asSwitch, unix.EACCES
	}
	return fileUser{ss.peer, ss.peerGID}, nil
}

// openFileAs opens a file with u's rights; a file it creates belongs to u.
func openFileAs(u fileUser, path string, flag int, perm os.FileMode) (*os.File, error) {
	if u == asSwitch {
		return os.OpenFile(path, flag, perm)
	}
	var f *os.File
	err := asUser(u.uid, u.gid, path, func() (err error) {
		f, err = os.OpenFile(path, flag, perm)
		return err
	})
	return f, err
}

// openForSession opens a file a session named, with the rights fileUserOf gives it.
func openForSession(ss *session, path string, flag int, perm os.FileMode) (*os.File, fileUser, error) {
	u, err := fileUserOf(ss)
	if err != nil {
		return nil, u, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f, err := openFileAs(u, path, flag, perm)
	return f, u, err
}
