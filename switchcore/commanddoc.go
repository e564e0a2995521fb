package switchcore

// CommandDoc is a management command as the console's help lists it.
type CommandDoc struct {
	// Path is the command ("port/setvlan"), or a menu's name ("port").
	Path string
	// Syntax names its arguments ("N VLAN"); empty for none.
	Syntax string
	// Help is its one-line description.
	Help string
	// Menu marks a menu heading, which help lists but nobody runs.
	Menu bool
}

// Commands lists the console's commands in help's order, without those a switch adds
// when it loads a plugin. vde_switch(1) documents them from here.
func Commands() []CommandDoc {
	out := make([]CommandDoc, 0, len(registry))
	for _, c := range registry {
		d := CommandDoc{Path: c.path, Syntax: c.syntax, Help: c.help, Menu: c.menu}
		if c.menu {
			d.Syntax = ""
		}
		out = append(out, d)
	}
	return out
}
