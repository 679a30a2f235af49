package main

import (
	"os"

	"context"
	"encoding/json"
	"flag"
	"fmt"
	stsql "github.com/stewardhq/steward/sql"
	"io"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// openAdmin opens the app for an operator command, acting as the system.
func openAdmin(ctx context.Context, name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*app, context.Context, *flag.FlagSet, int) {
	fs := flag.NewFlagSet("steward "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := registerConfigFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, 2
	}
	cfg, err := loadConfig(fs, *configPath)
	if err != nil {
		fmt.Fprintf(stderr, "steward %s: %v\n", name, err)
		return nil, nil, nil, 2
	}
	a, err := openApp(ctx, cfg, newLogger(stderr, "warn"), false)
	if err != nil {
		printError(stderr, "steward "+name, err)
		return nil, nil, nil, 1
	}
	return a, steward.SystemContext(ctx, "cli:"+name), fs, 0
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: steward audit verify [--data DIR | --database URL]")
		return 2
	}
	fs := flag.NewFlagSet("steward audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := registerConfigFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := loadConfig(fs, *configPath)
	if err != nil {
		fmt.Fprintln(stderr, "steward audit verify:", err)
		return 2
	}
	// Verifying needs no keys and must not create what it checks: on SQLite both
	// chains' files must be there already.
	if cfg.Database == "" {
		for _, path := range []string{cfg.DataDSN(), stsql.AccessDSN(cfg.DataDSN())} {
			if _, err := os.Stat(path); err != nil {
				fmt.Fprintf(stderr, "steward audit verify: BROKEN: %s is missing: the chain it holds cannot be verified\n", path)
				return 1
			}
		}
	}
	st, err := stsql.OpenStore(ctx, cfg.DataDSN(), stsql.Options{Synchronous: cfg.Synchronous})
	if err != nil {
		printError(stderr, "steward audit verify", err)
		return 1
	}
	defer st.Close()
	n, err := steward.VerifyChains(ctx, st)
	if err != nil {
		fmt.Fprintf(stderr, "steward audit verify: BROKEN: %v\n", err)
		return 1
	}
	trail, access, err := steward.ChainHeads(ctx, st)
	if err != nil {
		printError(stderr, "steward audit verify", err)
		return 1
	}
	fmt.Fprintf(stdout, "audit trail intact: %d entries verified\nheads (record them elsewhere to anchor the chains): trail %s, access log %s\n", n, trail, access)
	return 0
}

const tokenUsage = `usage:
  steward token create --app APP_ID [--ttl 720h]
  steward token create --staff NAME --role support|privacy_officer|auditor|admin[,ROLE…] [--ttl 720h]
  steward token list
  steward token revoke TOKEN_ID
The secret is printed once; only its keyed hash is stored.
`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	switch args[0] {
	case "create":
		var appID, staff, roles string
		var ttl time.Duration
		var asJSON bool
		a, sctx, _, code := openAdmin(ctx, "token create", args[1:], stderr, func(fs *flag.FlagSet) {
			fs.StringVar(&appID, "app", "", "client app id from the declaration")
			fs.StringVar(&staff, "staff", "", "staff member's handle (no personal data needed)")
			fs.StringVar(&roles, "role", "", "comma-separated staff roles")
			fs.DurationVar(&ttl, "ttl", 0, "lifetime; 0 for no expiry")
			fs.BoolVar(&asJSON, "json", false, "print the token as JSON")
		})
		if a == nil {
			return code
		}
		defer a.Close()
		kind, name := steward.TokenApp, appID
		var rl []string
		if staff != "" {
			kind, name = steward.TokenStaff, staff
			for _, r := range strings.Split(roles, ",") {
				if r = strings.TrimSpace(r); r != "" {
					rl = append(rl, r)
				}
			}
		}
		if (appID == "") == (staff == "") {
			fmt.Fprint(stderr, "steward token create: give exactly one of --app or --staff\n"+tokenUsage)
			return 2
		}
		k, secret, err := a.svc.CreateAPIToken(sctx, kind, name, rl, ttl)
		if err != nil {
			printError(stderr, "steward token create", err)
			return 1
		}
		if asJSON {
			json.NewEncoder(stdout).Encode(map[string]any{"id": k.ID, "kind": k.Kind, "name": k.Name, "roles": k.Roles, "token": secret})
			return 0
		}
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "created %s token %s for %s; the secret above is shown only once\n", k.Kind, k.ID, k.Name)
		return 0
	case "list":
		a, sctx, _, code := openAdmin(ctx, "token list", args[1:], stderr, nil)
		if a == nil {
			return code
		}
		defer a.Close()
		ks, err := a.svc.ListAPITokens(sctx)
		if err != nil {
			printError(stderr, "steward token list", err)
			return 1
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if ks == nil {
			ks = []steward.APIToken{}
		}
		enc.Encode(ks)
		return 0
	case "revoke":
		if len(args) < 2 {
			fmt.Fprint(stderr, tokenUsage)
			return 2
		}
		id := args[1]
		a, sctx, _, code := openAdmin(ctx, "token revoke", args[2:], stderr, nil)
		if a == nil {
			return code
		}
		defer a.Close()
		if err := a.svc.RevokeAPIToken(sctx, id); err != nil {
			printError(stderr, "steward token revoke", err)
			return 1
		}
		fmt.Fprintln(stdout, "revoked", id)
		return 0
	}
	fmt.Fprint(stderr, tokenUsage)
	return 2
}
