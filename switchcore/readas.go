package switchcore

import (
	"os"
	"os/user"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// `load FILE` echoes every line of FILE to the session. The C switch reads the file with
// its own rights, so any user of the mgmt socket of a root switch could read /etc/shadow.
// readScript reads it with the rights of the session's user instead: the console and rc
// files, root's and the switch's own user's sessions read as the switch; another user's
// session reads as that user (a root switch takes on the user's filesystem identity on a
// thread of its own for the open), or, in a switch that cannot do that, reads only files
// that every user may read.
func (s *Switch) readScript(ss *session, path string) ([]byte, error) {
	if ss == nil || ss.peer < 0 || ss.peer == 0 || ss.peer == os.Geteuid() {
		return os.ReadFile(path)
	}
	if os.Geteuid() != 0 {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return nil, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		if st.Mode&0o004 == 0 {
			return nil, &os.PathError{Op: "open", Path: path, Err: unix.EACCES}
		}
		return os.ReadFile(path)
	}
	return readFileAs(path, ss.peer, ss.peerGID)
}

// readFileAs reads path with the filesystem identity of uid, gid and uid's groups (asUser).
func readFileAs(path string, uid, gid int) ([]byte, error) {
	var data []byte
	err := asUser(uid, gid, path, func() (err error) {
		data, err = os.ReadFile(path)
		return err
	})
	return data, err
}

// asUser runs f with the filesystem identity of uid, gid and uid's groups (path names
// what f works on, for errors). The identity is set on a locked thread that is never
// unlocked, so it dies with the goroutine and no other code ever runs with it.
func asUser(uid, gid int, path string, f func() error) error {
	groups := []uint32{uint32(gid)}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if n, err := strconv.Atoi(id); err == nil {
					groups = append(groups, uint32(n))
				}
			}
		}
	}
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes when this goroutine ends
		// Raw system calls change this thread only (Go's wrappers change every thread).
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(unsafe.Pointer(&groups[0])), 0); e != 0 {
			ch <- &os.PathError{Op: "setgroups", Path: path, Err: e}
			return
		}
		unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
		unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
		// setfsuid reports the previous identity, not failure: ask again to be sure.
		if cur, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0); int(cur) != uid {
			ch <- &os.PathError{Op: "setfsuid", Path: path, Err: unix.EPERM}
			return
		}
		ch <- f()
	}()
	return <-ch
}
