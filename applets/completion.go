package applets

import (
	"errors"
	"io"
)

func renderBash(w io.Writer) error { return errors.New("not yet") }
func renderZsh(w io.Writer) error  { return errors.New("not yet") }
