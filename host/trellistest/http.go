package trellistest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// HTTPTimeout bounds each request HTTP sends, so that a test that would
// hang fails instead.
const HTTPTimeout = 30 * time.Second

// HTTP sends a request with method to url, with body and the headers
// given as name, value pairs, on client (http.DefaultClient when nil),
// and returns the response with its body read and closed. The test fails
// if no response comes within HTTPTimeout.
func HTTP(tb testing.TB, client *http.Client, method, url, body string, header ...string) (*http.Response, string) {
	tb.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(context.Background(), HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, string(b)
}
