package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

const retentionUsage = `usage: steward retention run [--json] [--data DIR | --database URL]

Deletes every value of a field whose declared retention is a number of days once
it is older than that (policy §8): locations, link clicks, and any other field with
a duration rule. Each deletion is audited. Safe to run at any time and repeatedly;
schedule it daily. Exit status: 0 success, 1 failure, 2 usage.
`

// runRetention runs "steward retention …"; args excludes the word "retention".
func runRetention(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprint(stderr, retentionUsage)
		return 2
	}
	var asJSON bool
	a, sctx, _, code := openAdmin(ctx, "retention run", args[1:], stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	})
	if a == nil {
		return code
	}
	defer a.Close()
	rep, err := a.svc.RunRetention(sctx)
	if err != nil {
		printError(stderr, "steward retention run", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return 0
	}
	fmt.Fprint(stdout, rep.String())
	return 0
}
