package switchcore

import "fmt"

// refuseRestore is a test seam for the way back of an upgrade: the upgrade itests build a
// new binary with
//
//	go build -ldflags "-X github.com/vde-go/vde/switchcore.refuseRestore=REASON"
//
// which passes the upgrade's check (it reads this switch's state version) but whose
// Restore refuses every state with REASON once it has taken up the listeners and
// endpoints, so that its failure cleanup runs and vde_switch goes back to the previous
// binary (VDE_HANDOVER_PREV) as it would for a real failure. No ordinary binary takes
// that path on purpose. It is set at link time only and never written by the program, a
// constant in effect (-X takes string variables, not constants); it is not an environment
// variable or an option on purpose: a user, or a stray environment, must not be able to
// make a switch refuse its own state.
var refuseRestore string

// restoreRefusedByBuild is the refusal refuseRestore asks for, nil in every ordinary build.
func restoreRefusedByBuild() error {
	if refuseRestore == "" {
		return nil
	}
	return fmt.Errorf("restore: this build refuses every handed-over state (test seam switchcore.refuseRestore): %s", refuseRestore)
}
