package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/stewardhq/steward/declaration"
)

const declarationUsage = `usage: steward declaration check FILE...
       steward declaration show

check  parses and validates each declaration FILE. A valid one prints
       "FILE: ok (N fields, M purposes)" on stdout; an invalid one prints every
       problem as "FILE:LINE: message" on stderr.
show   prints the built-in default declaration (the seed privacy policy) with its
       comments, a starting point for a deployment's own file.

The format is described in doc/declaration.md.
Exit status: 0 success, 1 a declaration is invalid or cannot be read, 2 usage.
`

// runDeclaration runs "steward declaration …"; args excludes the word "declaration".
// It returns the exit status: 0 when every checked file is valid (or after show),
// 1 when a file is invalid or cannot be read, 2 on a usage error.
func runDeclaration(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, declarationUsage)
		return 2
	}
	switch args[0] {
	case "check":
		if len(args) < 2 {
			fmt.Fprintf(stderr, "steward declaration check: no FILE given\n%s", declarationUsage)
			return 2
		}
		status := 0
		for _, file := range args[1:] {
			if err := ctx.Err(); err != nil {
				fmt.Fprintf(stderr, "steward declaration check: %v\n", err)
				return 1
			}
			if !checkDeclaration(file, stdout, stderr) {
				status = 1
			}
		}
		return status
	case "show":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "steward declaration show: takes no arguments\n%s", declarationUsage)
			return 2
		}
		if _, err := stdout.Write(declaration.DefaultYAML()); err != nil {
			fmt.Fprintf(stderr, "steward declaration show: %v\n", err)
			return 1
		}
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, declarationUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "steward declaration: unknown subcommand %q\n%s", args[0], declarationUsage)
		return 2
	}
}

// checkDeclaration validates one file and reports on it; it returns whether the file
// is valid.
func checkDeclaration(file string, stdout, stderr io.Writer) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "steward declaration check: %v\n", err)
		return false
	}
	d, err := declaration.Parse(data, file)
	var verr *declaration.ValidationError
	switch {
	case errors.As(err, &verr):
		fmt.Fprintln(stderr, verr.Error())
		return false
	case err != nil:
		fmt.Fprintf(stderr, "steward declaration check: %s: %v\n", file, err)
		return false
	}
	fmt.Fprintf(stdout, "%s: ok (%d fields, %d purposes)\n", file, len(d.Fields), len(d.Purposes))
	return true
}
