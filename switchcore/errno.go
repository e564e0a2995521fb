package switchcore

import (
	"strings"

	"golang.org/x/sys/unix"
)

// strerror is glibc's text for errno, as the C switch prints it in status lines: Go's
// table has glibc's words with a lower-case first letter.
func strerror(e unix.Errno) string {
	s := e.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
