package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/contacts"
)

const contactsUsage = `usage: steward contacts inspect FILE [--region CN]

Reads a vCard (.vcf) or CSV address book and prints, as JSON, how many cards and phone
numbers it holds, how many numbers are valid, and the distinct valid numbers in E.164.
Numbers without a country code are read as dialled in --region (ISO 3166 alpha-2).
Exit status: 0 success, 1 the file cannot be read or is not an address book, 2 usage.
`

// runContacts runs "steward contacts …"; args excludes the word "contacts". It returns
// the exit status: 0 on success, 1 when the address book cannot be read or parsed (the
// error is written to stderr as {"error":{"code":…,"message":…}}), 2 on a usage error.
func runContacts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, contactsUsage)
		return 2
	}
	switch args[0] {
	case "inspect":
		return runContactsInspect(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, contactsUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "steward contacts: unknown subcommand %q\n%s", args[0], contactsUsage)
		return 2
	}
}

func runContactsInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("steward contacts inspect", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	region := fset.String("region", "CN", "ISO 3166 alpha-2 region for numbers without a country code")
	// FILE may come before or after the flags.
	var files []string
	for rest := args; ; {
		if err := fset.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, contactsUsage)
				return 0
			}
			fmt.Fprintf(stderr, "steward contacts inspect: %v\n%s", err, contactsUsage)
			return 2
		}
		if fset.NArg() == 0 {
			break
		}
		files = append(files, fset.Arg(0))
		rest = fset.Args()[1:]
	}
	if len(files) != 1 {
		fmt.Fprintf(stderr, "steward contacts inspect: want exactly one FILE, got %d\n%s", len(files), contactsUsage)
		return 2
	}
	if !contacts.ValidRegion(*region) {
		fmt.Fprintf(stderr, "steward contacts inspect: --region must be a two-letter country code such as CN or US\n%s", contactsUsage)
		return 2
	}
	if err := ctx.Err(); err != nil {
		return writeContactsError(stderr, steward.WrapError(steward.EUNAVAILABLE, "interrupted", err))
	}

	f, err := os.Open(files[0])
	if err != nil {
		code := steward.EINVALID
		if errors.Is(err, fs.ErrNotExist) {
			code = steward.ENOTFOUND
		}
		// The path is left out: it may name a person.
		return writeContactsError(stderr, steward.WrapError(code, "cannot open the address book file", err))
	}
	defer f.Close()
	rep, err := contacts.Parse(f, contacts.Options{Region: *region})
	if err != nil {
		return writeContactsError(stderr, err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return writeContactsError(stderr, err)
	}
	b = append(b, '\n')
	if _, err := stdout.Write(b); err != nil {
		return 1
	}
	return 0
}

// writeContactsError writes err as {"error":{"code":…,"message":…}} and returns 1. Only
// the user-facing message is written, never the cause.
func writeContactsError(stderr io.Writer, err error) int {
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Error body `json:"error"`
	}{body{steward.ErrorCode(err), steward.ErrorMessage(err)}})
	fmt.Fprintf(stderr, "%s\n", b)
	return 1
}
