// Command patientpass runs Patient Pass: a secure, real-time platform for
// referring patients between hospital specialities.
//
//	patientpass [serve] [flags]   run a node (the default)
//	patientpass migrate           apply database migrations and exit
//	patientpass user create …     create an account (bootstrap an admin)
//	patientpass audit verify      check the audit log's hash chains
//	patientpass version           print the version
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if len(os.Args) < 2 || os.Args[1] == "serve" || strings.HasPrefix(os.Args[1], "-") {
		execWithSmallStacks()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(a.run(ctx, os.Args[1:]))
}

// app is one invocation of the command, with its environment and outputs
// injected so tests run it in-process.
type app struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	// onListen, when set, is told the address serve listens on.
	onListen func(net.Addr)
}

const usage = `usage: patientpass [command] [flags]

commands:
  serve          run a node (the default)
  migrate        apply database migrations and exit
  user create    create an account (bootstrap the first admin)
  audit verify   check the audit log; exit 1 naming the first broken entry
  version        print the version

Run "patientpass serve -h" for the configuration flags.
`

// run executes the command line and returns the process exit code.
func (a *app) run(ctx context.Context, args []string) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = a.serve(ctx, args)
	case "migrate":
		err = a.migrate(ctx, args)
	case "user":
		if len(args) == 0 || args[0] != "create" {
			fmt.Fprintln(a.stderr, "usage: patientpass user create --email … --name … --org … --body GMC|NMC|HCPC --number … --role …")
			return 2
		}
		err = a.userCreate(ctx, args[1:])
	case "audit":
		if len(args) == 0 || args[0] != "verify" {
			fmt.Fprintln(a.stderr, "usage: patientpass audit verify")
			return 2
		}
		return a.auditVerify(ctx, args[1:])
	case "version":
		fmt.Fprintf(a.stdout, "patientpass %s (%s)\n", version, runtime.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(a.stdout, usage)
		return 0
	default:
		fmt.Fprintf(a.stderr, "patientpass: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == errUsage {
		return 2
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "patientpass %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
