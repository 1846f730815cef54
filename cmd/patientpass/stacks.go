package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// smallStacks is the runtime setting a node runs with: every goroutine
// starts on the runtime's smallest stack (2 KiB) and grows as it needs to.
//
// By default the runtime starts new goroutines at the average stack size
// it saw at the last garbage collection, rounded up to a power of two. A
// node's average is pulled up by its request handlers and store calls, so
// each connection's reader, created while those run, starts at 4 KiB or
// more; and a stack never shrinks below four times what it uses plus the
// runtime's 800-byte reserve, so the reader, blocked in its read for as
// long as the connection is idle, keeps that stack for good. Its read
// needs under 1.1 KiB: on 2 KiB, 15,000 idle connections took about
// 2 KiB less each (loadtest idle). The cost is a few stack copies for the
// goroutines that grow, each once.
const smallStacks = "adaptivestackstart=0"

// withSmallStacks returns $GODEBUG with smallStacks added, and whether it
// had to be: a GODEBUG that already says how stacks start is the
// operator's choice and is kept.
func withSmallStacks(godebug string) (string, bool) {
	for _, kv := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "adaptivestackstart=") {
			return godebug, false
		}
	}
	if strings.TrimSpace(godebug) == "" {
		return smallStacks, true
	}
	return godebug + "," + smallStacks, true
}

// execWithSmallStacks replaces the process with itself under smallStacks,
// the same process id, arguments and environment, unless $GODEBUG already
// decides. The runtime reads the setting only as the process starts, so
// this must run first, before anything is opened. When the exec fails the
// node runs on with the runtime's default, and says so.
func execWithSmallStacks() {
	godebug, need := withSmallStacks(os.Getenv("GODEBUG"))
	if !need {
		return
	}
	exe, err := os.Executable()
	if err == nil {
		env := make([]string, 0, len(os.Environ())+1)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GODEBUG=") {
				env = append(env, kv)
			}
		}
		err = syscall.Exec(exe, os.Args, append(env, "GODEBUG="+godebug))
	}
	fmt.Fprintf(os.Stderr, "patientpass: could not restart with GODEBUG=%s (%v); goroutines start at the runtime's adaptive stack size\n", godebug, err)
}
