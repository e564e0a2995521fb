package switchcore

import (
	"strings"

	"golang.org/x/sys/unix"
)

// glibcText holds glibc's strerror texts where Go's differ by more than the capital letter.
var glibcText = map[unix.Errno]string{
	unix.ENOSYS: "Function not implemented",
	unix.ENOMEM: "Cannot allocate memory",
	unix.EPERM:  "Operation not permitted",
}

// strerror is glibc's text for errno, as the C switch prints it in status lines.
func strerror(e unix.Errno) string {
	if s, ok := glibcText[e]; ok {
		return s
	}
	s := e.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
