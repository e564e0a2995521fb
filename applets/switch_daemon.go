package applets

import "os"

// The switch daemonizes as daemon.go describes; it is ready once its sockets accept
// connections and its rc file has run.

// daemonReadyEnv marks the re-executed switch daemon and names its readiness fd.
const daemonReadyEnv = "_VDE_SWITCH_DAEMON_READY_FD"

var switchDaemon = daemonSpec{Name: "vde_switch", ReadyEnv: daemonReadyEnv}

// takeDaemonReadyFile returns the readiness pipe if this process is the re-executed
// switch daemon.
func takeDaemonReadyFile() *os.File { return switchDaemon.takeReadyFile() }

// spawnSwitchDaemon starts the switch daemon with the same arguments and waits until it
// is ready or dead.
func spawnSwitchDaemon(args []string, stdio Stdio) error { return switchDaemon.spawn(args, stdio) }
