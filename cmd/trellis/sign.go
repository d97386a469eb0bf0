package main

import (
	"crypto/ed25519"
	"fmt"
	"io"

	"github.com/trellis-mesh/trellis/host/sign"
)

func cmdKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("keygen", "Usage: trellis keygen [-o FILE]\n\nWrites a new Ed25519 signing key pair: the private key to FILE (mode 0600),\nthe public key to FILE.pub, in the form the config's trusted_keys takes.", stderr)
	out := fs.String("o", "trellis-signing.key", "private key file; the public key goes to this name + .pub")
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 0 {
		fs.Usage()
		return 2
	}
	pub, err := sign.WriteKeyPair(*out)
	if err != nil {
		fmt.Fprintln(stderr, "trellis keygen:", err)
		return 1
	}
	fmt.Fprintf(stdout, "private key: %s (keep it secret)\npublic key:  %s.pub\n\ntrusted_keys = [%q]\n", *out, *out, sign.FormatPublicKey(pub))
	return 0
}

func cmdSign(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sign", "Usage: trellis sign FILE.wasm --key KEY [-o OUT.wasm]\n\nSigns a module with an Ed25519 private key (from trellis keygen): the signature\nis appended as a trellis.signature custom section, in place unless -o says otherwise.", stderr)
	key := fs.String("key", "", "private key file (PEM, from trellis keygen)")
	out := fs.String("o", "", "write the signed module here (default: FILE.wasm itself)")
	pos, err := parse(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 || *key == "" {
		fs.Usage()
		return 2
	}
	if *out == "" {
		*out = pos[0]
	}
	priv, err := sign.LoadPrivateKey(*key)
	if err != nil {
		fmt.Fprintln(stderr, "trellis sign:", err)
		return 1
	}
	if err := sign.SignFile(pos[0], *out, priv); err != nil {
		fmt.Fprintln(stderr, "trellis sign:", err)
		return 1
	}
	fmt.Fprintf(stdout, "signed %s with %s\n", *out, sign.FormatPublicKey(priv.Public().(ed25519.PublicKey)))
	return 0
}
