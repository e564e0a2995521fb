package tap

import "github.com/vde-go/vde/switchcore/wire"

// tap://NAME opens the TAP NAME as vdeplug4's tap module does: create it if needed, leave
// the link down, no options.
func init() {
	wire.RegisterScheme("tap", func(arg string, _ wire.OpenOptions) (wire.Endpoint, error) {
		d, err := Open(arg)
		if err != nil {
			return nil, err
		}
		return d, nil
	})
}
