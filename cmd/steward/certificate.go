package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
)

const certificateUsage = `usage:
  steward certificate verify FILE [--public-key BASE64]
      check a deletion certificate's signature; without --public-key the key
      comes from the key file (--key-file, --data or the configuration)
  steward certificate public-key
      print the key that verifies this deployment's certificates
Exit status: 0 verified, 1 not verified (the reason is printed), 2 usage.
`

func runCertificate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, certificateUsage)
		return 2
	}
	switch args[0] {
	case "verify":
		return runCertificateVerify(args[1:], stdout, stderr)
	case "public-key":
		fs := flag.NewFlagSet("steward certificate public-key", flag.ContinueOnError)
		fs.SetOutput(stderr)
		configPath := registerConfigFlags(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		pub, code := keyFilePublicKey(fs, *configPath, "steward certificate public-key", stderr)
		if pub == nil {
			return code
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(steward.PublicKeyInfo{Algorithm: steward.CertificateAlgorithm, KeyID: steward.SigningKeyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub)})
		return 0
	}
	fmt.Fprint(stderr, certificateUsage)
	return 2
}

// keyFilePublicKey loads the configured key file and returns its certificate
// verification key, or nil and an exit status.
func keyFilePublicKey(fs *flag.FlagSet, configPath, prefix string, stderr io.Writer) (ed25519.PublicKey, int) {
	cfg, err := loadConfig(fs, configPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return nil, 2
	}
	kf, err := keyring.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		printError(stderr, prefix, err)
		return nil, 1
	}
	return kf.SigningKey().Public().(ed25519.PublicKey), 0
}

func runCertificateVerify(args []string, stdout, stderr io.Writer) int {
	const prefix = "steward certificate verify"
	fs := flag.NewFlagSet(prefix, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := registerConfigFlags(fs)
	pubFlag := fs.String("public-key", "", "the controller's certificate public key, base64 (GET /v1/certificates/public-key); default: derived from the key file")
	// Flags may come before or after FILE.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files, args = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	if len(files) != 1 {
		fmt.Fprint(stderr, certificateUsage)
		return 2
	}
	var pub ed25519.PublicKey
	if *pubFlag != "" {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*pubFlag))
		if err != nil || len(b) != ed25519.PublicKeySize {
			fmt.Fprintf(stderr, "%s: --public-key must be a base64 Ed25519 public key (32 bytes)\n", prefix)
			return 2
		}
		pub = b
	} else {
		var code int
		if pub, code = keyFilePublicKey(fs, *configPath, prefix, stderr); pub == nil {
			return code
		}
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
		return 1
	}
	c, err := steward.VerifyCertificate(data, pub)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: NOT VERIFIED: %s\n", prefix, files[0], steward.ErrorMessage(err))
		return 1
	}
	printCertificate(stdout, c, steward.SigningKeyID(pub))
	return 0
}

// printCertificate writes the summary of a verified certificate.
func printCertificate(w io.Writer, c *steward.DeletionCertificate, keyID string) {
	list := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	fmt.Fprintf(w, "certificate %s verified: signed by %s (Ed25519)\n", c.CertificateID, keyID)
	request := string(c.RequestType)
	if c.DeletionGround != "" {
		request += ", ground " + string(c.DeletionGround)
	}
	fmt.Fprintf(w, "  controller:      %s\n", c.Controller)
	fmt.Fprintf(w, "  request:         %s (%s)\n", c.RequestID, request)
	fmt.Fprintf(w, "  subject:         %s\n", c.SubjectID)
	fmt.Fprintf(w, "  erased at:       %s\n", c.ErasedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "  fields erased:   %s\n", list(c.FieldsErased))
	if len(c.FieldsRetained) == 0 {
		fmt.Fprintf(w, "  fields retained: none\n")
	}
	for _, r := range c.FieldsRetained {
		until := ""
		if !r.Until.IsZero() {
			until = ", until " + r.Until.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  field retained:  %s under legal hold %s (%s: %s; purpose %s%s)\n", r.Field, r.HoldID, r.Case, r.Reference, r.Purpose, until)
	}
	fmt.Fprintf(w, "  keys destroyed:  %s\n", list(c.KeyIDsDestroyed))
	for _, s := range c.Stores {
		fmt.Fprintf(w, "  store:           %s: %s\n", s.Store, s.Effect)
	}
	for _, r := range c.RecipientsNotified {
		fmt.Fprintf(w, "  recipient told:  %s (%s, %s), notice %s, fields %s, to acknowledge by %s\n", r.Name, r.Kind, r.RecipientID, r.NoticeID,
			list(r.Fields), r.AcknowledgeBy.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "  backups:         %s\n", c.Backups.Statement)
}
