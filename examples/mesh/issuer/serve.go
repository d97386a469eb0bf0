package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// jwksPath is where serve publishes the key set.
const jwksPath = "/jwks.json"

// serve publishes the key set of keyFile (and keyFile.prev) on listen,
// a loopback address, with a discovery document for issuer, until ctx
// ends. It writes a key first if keyFile does not exist. The first line
// on stdout is the issuer's URL.
func serve(ctx context.Context, listen, keyFile, issuer string, stdout, stderr io.Writer) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("serve: --listen %.80q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("serve: --listen %.80q is not a loopback address: this issuer mints tokens for anyone, keep it local", listen)
	}
	k, created, err := loadOrCreateKey(keyFile)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if created {
		fmt.Fprintf(stderr, "wrote a new ES256 key %s to %s\n", k.kid, keyFile)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}
	srv := &http.Server{Handler: handler(issuer, keyFile, stderr), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
	fmt.Fprintln(stdout, issuer)
	fmt.Fprintf(stderr, "issuer %s: discovery at %s/.well-known/openid-configuration, keys at %s%s\n", issuer, issuer, issuer, jwksPath)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shut)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handler answers the discovery document and the key set, read from the
// key files at each request so that a rotation shows at once.
func handler(issuer, keyFile string, stderr io.Writer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuer, "jwks_uri": issuer + jwksPath,
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET "+jwksPath, func(w http.ResponseWriter, r *http.Request) {
		set, err := jwks(keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "issuer: key set:", err)
			http.Error(w, "no key set", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(stderr, "issuer: key set fetched by %s\n", r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		// Fresh for five minutes, as providers say (Keycloak says nothing,
		// Google hours): the host refreshes then, or sooner when a token
		// names a key it does not know.
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(set)
	})
	return mux
}
