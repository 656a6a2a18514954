package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"healthhub/auth"
	"healthhub/store"
)

const authUsage = `
Authorization (SMART backend services; auth is on by default):
  healthhub clients add --data DIR --id ID --scope 'system/*.rs' (--generate-key OUT.pem | --public-key PEM | --jwks FILE | --jwks-uri URL)
  healthhub clients list|disable|enable|remove --data DIR [ID]
                              manage registered clients (the server must be stopped)
  healthhub keys rotate --data DIR
                              add a new token signing key; old ones keep verifying for an hour
  healthhub token --client-id ID --key private.pem --token-url URL [--scope S] [--patient ID]
                              sign an assertion, ask for an access token, print it
`

// authFlags adds serve's auth flags to fs.
func authFlags(fs *flag.FlagSet, cfg *Config) {
	fs.Func("auth", "on (default) or off: off runs every request as an all-powerful local principal, for local experiments only", func(v string) error {
		switch v {
		case "on":
			cfg.AuthOff = false
		case "off":
			cfg.AuthOff = true
		default:
			return errors.New("use on or off")
		}
		return nil
	})
	fs.StringVar(&cfg.ClientsFile, "clients", "", "JSON file of clients to register at start (array of {client_id, name, organization, jwks | jwks_uri, scope, break_glass}); loading it again changes nothing")
	fs.DurationVar(&cfg.TokenLifetime, "token-lifetime", auth.DefaultTokenLifetime, "lifetime of the access tokens issued (at most 1h)")
}

func authCommand(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	switch cmd {
	case "clients":
		return clientsCommand(ctx, args, stdout, stderr)
	case "keys":
		if len(args) == 0 || args[0] != "rotate" {
			fmt.Fprint(stderr, "Usage: healthhub keys rotate --data DIR\n")
			return 2
		}
		return keysRotate(ctx, args[1:], stdout, stderr)
	case "token":
		return tokenCommand(ctx, args, stdout, stderr)
	}
	return 2
}

// parseFlags parses args with fs; a non-negative code means "exit now".
func parseFlags(fs *flag.FlagSet, args []string, nargs int) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != nargs {
		fmt.Fprintf(fs.Output(), "healthhub %s: want %d argument(s), got %d\n", fs.Name(), nargs, fs.NArg())
		fs.Usage()
		return 2
	}
	return -1
}

// openRegistry opens a stopped server's data and its client registry.
func openRegistry(ctx context.Context, dir string) (*store.Bolt, *auth.Registry, error) {
	st, err := OpenStore(dir, store.Options{})
	if err != nil {
		return nil, nil, err
	}
	reg, err := auth.OpenRegistry(ctx, st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, reg, nil
}

func clientsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "Usage: healthhub clients add|list|disable|enable|remove --data DIR ...\n")
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("clients "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", DefaultDataDir, "directory of the database file (the server must be stopped)")
	var c auth.Client
	var jwksFile, pubFile, genFile string
	nargs := 1
	switch sub {
	case "add":
		nargs = 0
		fs.StringVar(&c.ID, "id", "", "client_id (required)")
		fs.StringVar(&c.Name, "name", "", "display name")
		fs.StringVar(&c.Organization, "org", "", "the Organization the client acts for (e.g. Organization/hospital-a)")
		fs.StringVar(&c.Scope, "scope", "", "scopes the client may be granted, space-separated (required), e.g. 'system/*.rs system/Observation.c'")
		fs.BoolVar(&c.BreakGlass, "break-glass", false, "the client may break the glass")
		fs.StringVar(&c.PurposeOfUse, "purpose-of-use", "", "default purpose of use (TREAT when empty)")
		fs.StringVar(&jwksFile, "jwks", "", "file with the client's public JWK Set")
		fs.StringVar(&c.JWKSURI, "jwks-uri", "", "URL of the client's JWK Set (https), fetched and cached")
		fs.StringVar(&pubFile, "public-key", "", "PEM public key file of the client (RSA or EC P-256/P-384)")
		fs.StringVar(&genFile, "generate-key", "", "generate an EC P-384 key pair, write the private key (PEM) to this new file, register the public key")
	case "list":
		nargs = 0
	case "disable", "enable", "remove":
	default:
		fmt.Fprintf(stderr, "healthhub clients: unknown sub-command %q: use add, list, disable, enable or remove\n", sub)
		return 2
	}
	if code := parseFlags(fs, args[1:], nargs); code >= 0 {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "healthhub clients %s: %v\n", sub, err)
		return 1
	}
	if sub == "add" {
		if n := countSet(jwksFile, c.JWKSURI, pubFile, genFile); n != 1 {
			return fail(errors.New("give exactly one of --jwks, --jwks-uri, --public-key, --generate-key"))
		}
		var err error
		switch {
		case jwksFile != "":
			c.JWKS, err = os.ReadFile(jwksFile)
		case pubFile != "":
			var pemData []byte
			if pemData, err = os.ReadFile(pubFile); err == nil {
				var pub any
				if pub, err = auth.ParsePublicKeyPEM(pemData); err == nil {
					c.JWKS, err = auth.KeySet(pub)
				}
			}
		}
		if err != nil {
			return fail(err)
		}
		if genFile == "" {
			if err := c.Validate(); err != nil {
				return fail(err)
			}
		}
	}
	st, reg, err := openRegistry(ctx, *dataDir)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	switch sub {
	case "add":
		if _, err := reg.Get(c.ID); err == nil {
			return fail(fmt.Errorf("client %q is already registered (remove it first)", c.ID))
		}
		if genFile != "" {
			if c.JWKS, err = generateKeyFile(genFile); err != nil {
				return fail(err)
			}
		}
		if err := reg.Put(ctx, c); err != nil {
			if genFile != "" {
				os.Remove(genFile)
			}
			return fail(err)
		}
		fmt.Fprintf(stdout, "registered client %s (scope: %s)\n", c.ID, c.Scope)
		if genFile != "" {
			patient := ""
			if auth.HasPatientScope(strings.Fields(c.Scope)) {
				patient = " --patient <Patient id>" // patient/ scopes are refused without one
			}
			fmt.Fprintf(stdout, "private key written to %s; get a token with:\n  healthhub token --client-id %s --key %s --token-url http://127.0.0.1:8080/auth/token --scope '%s'%s\n", genFile, c.ID, genFile, c.Scope, patient)
		}
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tNAME\tORGANIZATION\tKEYS\tSCOPE\tBREAK_GLASS\tSTATUS")
		for _, c := range reg.List() {
			keys, status := "inline", "enabled"
			if c.JWKSURI != "" {
				keys = c.JWKSURI
			}
			if c.Disabled {
				status = "disabled"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", c.ID, c.Name, c.Organization, keys, c.Scope, c.BreakGlass, status)
		}
		tw.Flush()
	case "disable", "enable":
		if err := reg.SetDisabled(ctx, fs.Arg(0), sub == "disable"); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "client %s %sd\n", fs.Arg(0), sub)
	case "remove":
		if err := reg.Remove(ctx, fs.Arg(0)); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "client %s removed\n", fs.Arg(0))
	}
	return 0
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// generateKeyFile writes a new EC P-384 private key to path (which must not
// exist; mode 0600) and returns its public JWK Set.
func generateKeyFile(path string) ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return auth.KeySet(&priv.PublicKey)
}

func keysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", DefaultDataDir, "directory of the database file (the server must be stopped)")
	if code := parseFlags(fs, args, 0); code >= 0 {
		return code
	}
	st, err := OpenStore(*dataDir, store.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "healthhub keys rotate: %v\n", err)
		return 1
	}
	defer st.Close()
	kid, err := auth.RotateKeys(ctx, st, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "healthhub keys rotate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "new signing key %s; the previous keys verify tokens for %s more\n", kid, auth.MaxTokenLifetime)
	return 0
}

func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clientID := fs.String("client-id", "", "the registered client_id (required)")
	keyFile := fs.String("key", "", "the client's private key, PEM (required)")
	tokenURL := fs.String("token-url", "http://127.0.0.1:8080/auth/token", "the server's token endpoint")
	scope := fs.String("scope", "system/*.rs", "scopes to ask for, space-separated")
	patient := fs.String("patient", "", "the Patient id patient/ scopes are confined to (required with them)")
	kid := fs.String("kid", "", "the key's kid (default: its RFC 7638 thumbprint, as clients add registers it)")
	if code := parseFlags(fs, args, 0); code >= 0 {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "healthhub token: %v\n", err)
		return 1
	}
	if *clientID == "" || *keyFile == "" {
		fmt.Fprintln(stderr, "healthhub token: --client-id and --key are required (healthhub token --help)")
		return 2 // a usage error, as a bad flag is
	}
	pemData, err := os.ReadFile(*keyFile)
	if err != nil {
		return fail(err)
	}
	key, err := auth.ParsePrivateKeyPEM(pemData)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", *keyFile, err))
	}
	assertion, err := auth.SignAssertion(key, *kid, *clientID, *tokenURL, time.Now())
	if err != nil {
		return fail(err)
	}
	tok, granted, err := auth.RequestToken(ctx, &http.Client{Timeout: 30 * time.Second}, *tokenURL, assertion, *scope, *patient)
	if err != nil {
		return fail(err)
	}
	if granted != strings.Join(strings.Fields(*scope), " ") {
		fmt.Fprintf(stderr, "granted scope: %s\n", granted)
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
