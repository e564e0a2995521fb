package switchcore

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/vde-go/vde/switchcore/wire"
	"golang.org/x/sys/unix"
)

// The request names the client's data socket by path, and the switch connects to it. The C
// switch connects to whatever the path names, so a local user can aim a root switch's frames
// at any datagram socket on the host (/dev/log, the journal). connectClient refuses a socket
// that the client on the control connection does not own, and it connects to the very inode
// it checked, through /proc/self/fd, so renaming or swapping the path between the check and
// the connect changes nothing.

// dataSocketError is a refused client data socket: one log line says which and why.
type dataSocketError struct {
	path string
	why  string
	err  error // the system call's error, if one failed
}

func (e *dataSocketError) Error() string {
	return fmt.Sprintf("client data socket %s: %s", e.path, e.why)
}

func (e *dataSocketError) Unwrap() error { return e.err }

// peerCred is the uid and gid of the process at the other end of a unix connection.
func peerCred(c *net.UnixConn) (uid, gid int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, -1, err
	}
	if cerr != nil {
		return -1, -1, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return int(cred.Uid), int(cred.Gid), nil
}

// connectClient opens the switch side of a client's data socket: a non-blocking datagram
// socket connected to path. peer is the client's uid (SO_PEERCRED); uid is the owner of the
// socket file, the client's identity for port ownership and ACLs, as in the C switch.
func connectClient(path string, peer int) (fd, uid int, err error) {
	// The C check: only sockets the switch's real uid may read and write.
	if err := unix.Access(path, unix.R_OK|unix.W_OK); err != nil {
		return -1, -1, &dataSocketError{path, errText(err), err}
	}
	file, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, -1, &dataSocketError{path, errText(err), err}
	}
	defer unix.Close(file)
	var st unix.Stat_t
	if err := unix.Fstat(file, &st); err != nil {
		return -1, -1, &dataSocketError{path, errText(err), err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return -1, -1, &dataSocketError{path, "not a socket", nil}
	}
	uid = int(st.Uid)
	if peer != 0 && peer != uid {
		return -1, -1, &dataSocketError{path, fmt.Sprintf("owned by uid %d, not by the client (uid %d): refused", uid, peer), nil}
	}
	fd, err = wire.SocketDatagram()
	if err != nil {
		return -1, -1, err
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: "/proc/self/fd/" + strconv.Itoa(file)})
	if errors.Is(err, unix.ENOENT) && !procMounted() {
		// Without /proc the inode checked cannot be named; connecting by path could be
		// raced by a client that swaps the name, so only root's clients get that.
		if peer != 0 {
			unix.Close(fd)
			return -1, -1, &dataSocketError{path, "cannot be checked without /proc: refused", nil}
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	}
	if err != nil {
		unix.Close(fd)
		return -1, -1, fmt.Errorf("Connecting to client data socket %s: %s", path, errText(err))
	}
	return fd, uid, nil
}

func procMounted() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/self/fd", &st) == nil
}
