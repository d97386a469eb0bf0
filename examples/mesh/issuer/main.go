// Command issuer is a tiny OpenID provider for the mesh example: it
// serves a key set (JWKS) and a discovery document on loopback, from a key
// file, and mints ES256 access tokens signed with that key, shaped as
// Keycloak writes them (scope, realm_access.roles). It is a demo: it
// authenticates nobody and mints whatever it is asked for. Point the
// config at a real provider for anything else (README.md beside the
// config says how).
//
//	go run ./examples/mesh/issuer serve                    # http://127.0.0.1:8090, key in .trellis/mesh/issuer.pem
//	go run ./examples/mesh/issuer mint --sub alice --scope orders:write
//	go run ./examples/mesh/issuer rotate                   # a new key; the old one stays published
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Defaults: where the mesh example's config expects the issuer.
const (
	defaultListen = "127.0.0.1:8090"
	defaultKey    = ".trellis/mesh/issuer.pem"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "issuer:", err)
		os.Exit(2)
	}
}

const usage = `usage:
  issuer serve  [--listen 127.0.0.1:8090] [--key FILE] [--issuer URL]
  issuer mint   --sub NAME [--scope "a b"] [--roles r1,r2] [--aud orders] [--ttl 1h] [--key FILE] [--issuer URL]
  issuer rotate [--key FILE]`

// run runs one command with args, writing its output to stdout and what
// it has to say to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", defaultKey, "the signing key, PKCS #8 PEM (serve writes one if there is none)")
	switch args[0] {
	case "serve":
		listen := fs.String("listen", defaultListen, "loopback address to serve on (port 0: any free port)")
		issuer := fs.String("issuer", "", "the issuer URL (default: http:// and the address it listens on)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return serve(ctx, *listen, *key, *issuer, stdout, stderr)
	case "mint":
		var m mintRequest
		fs.StringVar(&m.sub, "sub", "", "the subject (who the token is for); required")
		fs.StringVar(&m.scope, "scope", "", "space-separated scopes, such as \"orders:read orders:write\"")
		fs.StringVar(&m.roles, "roles", "", "comma-separated realm roles, in realm_access.roles")
		fs.StringVar(&m.aud, "aud", "orders", "the audience")
		fs.DurationVar(&m.ttl, "ttl", defaultTTL, "how long the token is valid, at most 24h")
		fs.StringVar(&m.issuer, "issuer", "http://"+defaultListen, "the issuer URL (iss), as serve's")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		k, err := loadKey(*key)
		if err != nil {
			return fmt.Errorf("%w (run issuer serve first: it writes the key)", err)
		}
		tok, err := mint(k, m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, tok)
		return err
	case "rotate":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		k, err := rotate(*key)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "new key %s in %s; the previous one stays published from %s.prev\n", k.kid, *key, *key)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %.40q\n%s", args[0], usage)
}
