// Command steward runs Steward, the service that keeps a privacy policy's promises,
// and its operator commands.
//
//	steward serve [--addr HOST:PORT] [--data DIR] [--database postgres://…]
//	steward migrate
//	steward audit verify
//	steward token create --app ID | --staff NAME --role ROLE[,ROLE]
//	steward token list | steward token revoke ID
//	steward declaration check FILE | show
//	steward contacts inspect FILE [--region CN]
//	steward config
//	steward certificate verify FILE [--public-key B64] | public-key
//	steward recipients add|list|notices
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // legal time zones must resolve on hosts without zoneinfo
)

const usage = `usage: steward COMMAND [flags]

commands:
  serve         run the API server (SQLite in ./data and a development key by default)
  migrate       apply database migrations and exit
  audit verify  check the audit trail's hash chain; exit 1 naming the first bad entry
  token         create, list or revoke staff and client-app tokens
  declaration   check or show a policy declaration
  contacts      inspect an address book without storing it
  retention run delete data kept past its declared retention (schedule daily)
  config        print the configuration in force, secrets redacted
  requests      the rights-request queue: list, show, assign, refuse, fulfil, extend…
  certificate   verify a deletion certificate, or print the key that verifies them
  recipients    register recipients, list them and their notices

Run 'steward COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], stdout, stderr)
	case "token":
		return runToken(ctx, args[1:], stdout, stderr)
	case "declaration":
		return runDeclaration(ctx, args[1:], stdout, stderr)
	case "contacts":
		return runContacts(ctx, args[1:], stdout, stderr)
	case "retention":
		return runRetention(ctx, args[1:], stdout, stderr)
	case "config":
		return runConfig(ctx, args[1:], stdout, stderr)
	case "requests":
		return runRequests(ctx, args[1:], stdout, stderr)
	case "certificate":
		return runCertificate(ctx, args[1:], stdout, stderr)
	case "recipients":
		return runRecipients(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "steward: unknown command %q\n%s", args[0], usage)
	return 2
}
