// Package jwks fetches, checks, caches and refreshes JSON Web Key Sets (RFC
// 7517) for policies that verify tokens, such as the built-in auth policy:
// the host fetches the keys so that the plugin needs no network access,
// and hands each set to the policy as a config value.
//
// A set is fetched from its URL, or found first through an OpenID Connect
// discovery document (ISSUER/.well-known/openid-configuration, whose issuer
// must be the one configured). What reaches the policy is the set reduced
// to the public members of its signature keys, re-encoded: a private or
// symmetric key published by mistake never gets further than here. Every
// input is bounded: the size of a response (MaxSetLen, MaxDiscoveryLen),
// the number of keys (MaxKeys), the time a fetch may take.
//
// A Watcher refreshes a set when its Cache-Control max-age says it is stale
// (kept within MinRefresh and MaxRefresh), retries a failed fetch with
// backoff while keeping the last good set, and refetches on demand
// (Refresh, when a token names a key the set lacks) at most once per
// MinRefresh, so that forged kids cannot make it hammer the provider.
package jwks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trellis-mesh/trellis/abi"
)

// Limits on what a provider sends.
const (
	// MaxSetLen is the largest key set accepted, in bytes: a set reaches
	// its policy as one config value.
	MaxSetLen = abi.MaxConfigValueLen
	// MaxKeys is the most keys a set may hold.
	MaxKeys = 64
	// MaxDiscoveryLen is the largest discovery document read, in bytes.
	MaxDiscoveryLen = 64 << 10
	// MaxURLLen is the longest URL accepted, configured or discovered.
	MaxURLLen = 2048
)

// Defaults for a Source's zero fields.
const (
	// DefaultTimeout bounds one fetch, discovery included.
	DefaultTimeout = 10 * time.Second
	// DefaultMinRefresh is the shortest time between two fetches of a set.
	DefaultMinRefresh = time.Minute
	// DefaultMaxRefresh is the longest a set is kept without a refetch,
	// whatever its max-age says, and the refresh interval of a set without one.
	DefaultMaxRefresh = time.Hour
)

// DiscoveryPath is where an OpenID provider publishes its configuration,
// below its issuer URL (OpenID Connect Discovery 1.0, section 4).
const DiscoveryPath = "/.well-known/openid-configuration"

// Errors a fetch can end with.
var (
	ErrTooLarge = errors.New("jwks: response too large")
	ErrInvalid  = errors.New("jwks: invalid key set")
	ErrStatus   = errors.New("jwks: unexpected HTTP status")
	ErrIssuer   = errors.New("jwks: discovery document names another issuer")
)

// Source says where a key set comes from and how often to refresh it.
type Source struct {
	// URI is the key set's URL (jwks_uri). When empty, Issuer's discovery
	// document names it.
	URI string
	// Issuer is an OpenID Connect issuer URL, used to discover URI.
	Issuer string
	// Timeout bounds each fetch (default DefaultTimeout).
	Timeout time.Duration
	// MinRefresh and MaxRefresh bound the time between fetches (defaults
	// DefaultMinRefresh and DefaultMaxRefresh).
	MinRefresh, MaxRefresh time.Duration
	// Client makes the requests (default: a client of its own that follows
	// no redirect to another scheme than https or http).
	Client *http.Client
}

// Check reports a Source that cannot work: no URL, a URL that is not
// http(s), bounds in the wrong order.
func (s Source) Check() error {
	if (s.URI == "") == (s.Issuer == "") {
		return errors.New("set one of a JWKS URL and an OpenID issuer")
	}
	for _, u := range []string{s.URI, s.Issuer} {
		if u == "" {
			continue
		}
		if err := checkURL(u); err != nil {
			return err
		}
	}
	if s.Timeout < 0 || s.MinRefresh < 0 || s.MaxRefresh < 0 {
		return errors.New("negative duration")
	}
	if s.MinRefresh > 0 && s.MaxRefresh > 0 && s.MinRefresh > s.MaxRefresh {
		return fmt.Errorf("min refresh %s is longer than max refresh %s", s.MinRefresh, s.MaxRefresh)
	}
	return nil
}

func checkURL(raw string) error {
	if len(raw) > MaxURLLen {
		return fmt.Errorf("URL of %d bytes, at most %d (MaxURLLen)", len(raw), MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%.100q is not an http or https URL", raw)
	}
	return nil
}

func (s Source) withDefaults() Source {
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.MinRefresh <= 0 {
		s.MinRefresh = DefaultMinRefresh
	}
	if s.MaxRefresh <= 0 {
		s.MaxRefresh = DefaultMaxRefresh
	}
	if s.MaxRefresh < s.MinRefresh {
		s.MaxRefresh = s.MinRefresh
	}
	if s.Client == nil {
		s.Client = defaultClient
	}
	return s
}

// defaultClient follows at most three redirects, to http(s) only.
var defaultClient = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("too many redirects")
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return fmt.Errorf("redirect to %s", req.URL.Scheme)
	}
	return nil
}}

// Set is a fetched key set.
type Set struct {
	// JSON is the set reduced to the public members of its signature keys
	// ({"keys":[...]}), at most MaxSetLen bytes.
	JSON []byte
	// Keys is how many keys JSON holds; Dropped how many the provider sent
	// that were left out (symmetric, for encryption, or of no known type).
	Keys, Dropped int
	// MaxAge is how long the provider said the set stays fresh, 0 if it
	// did not say.
	MaxAge time.Duration
}

// Empty is the JSON of a set with no keys: what a policy gets before the
// first fetch of its set succeeds, so that it refuses that issuer's tokens.
var Empty = []byte(`{"keys":[]}`)

// Fetch fetches src's key set once, through discovery when src has no URI.
func Fetch(ctx context.Context, src Source) (Set, error) {
	src = src.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, src.Timeout)
	defer cancel()
	uri := src.URI
	if uri == "" {
		var err error
		if uri, err = discover(ctx, src); err != nil {
			return Set{}, err
		}
	}
	body, header, err := get(ctx, src.Client, uri, MaxSetLen)
	if err != nil {
		return Set{}, err
	}
	set, err := Parse(body)
	if err != nil {
		return Set{}, err
	}
	set.MaxAge = maxAge(header.Get("Cache-Control"))
	return set, nil
}

// discover reads src.Issuer's discovery document and returns its jwks_uri.
func discover(ctx context.Context, src Source) (string, error) {
	body, _, err := get(ctx, src.Client, strings.TrimSuffix(src.Issuer, "/")+DiscoveryPath, MaxDiscoveryLen)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery: %w: not a JSON object", ErrInvalid)
	}
	// OpenID Connect Discovery 1.0 section 4.3: the issuer must be
	// exactly the one asked for, or anyone who can serve the document
	// could speak for another issuer.
	if doc.Issuer != src.Issuer {
		return "", fmt.Errorf("discovery: %w: %.200q", ErrIssuer, doc.Issuer)
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

// get reads uri's body, refusing a status other than 200 and a body of
// more than limit bytes.
func get(ctx context.Context, c *http.Client, uri string, limit int) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%w: %s", ErrStatus, resp.Status)
	}
	if resp.ContentLength > int64(limit) {
		return nil, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > limit {
		return nil, nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	return body, resp.Header, nil
}

// publicMembers are the members of a JWK kept for the policy: what a
// public signature key is made of. Private members (d, p, q, dp, dq, qi,
// oth, k) are left out.
var publicMembers = []string{"kty", "kid", "use", "alg", "crv", "n", "e", "x", "y"}

// Parse checks a key set and reduces it to the public members of its
// signature keys (kty RSA, EC or OKP; no use, or use "sig"), each a
// string. It refuses anything but one JSON object with a keys array of at
// most MaxKeys objects in at most MaxSetLen bytes.
func Parse(data []byte) (Set, error) {
	if len(data) > MaxSetLen {
		return Set{}, fmt.Errorf("%w: %d bytes, at most %d (MaxSetLen)", ErrTooLarge, len(data), MaxSetLen)
	}
	var doc struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil || dec.More() {
		return Set{}, fmt.Errorf("%w: not one JSON object", ErrInvalid)
	}
	if doc.Keys == nil {
		return Set{}, fmt.Errorf("%w: no keys array", ErrInvalid)
	}
	if len(doc.Keys) > MaxKeys {
		return Set{}, fmt.Errorf("%w: %d keys, at most %d (MaxKeys)", ErrInvalid, len(doc.Keys), MaxKeys)
	}
	set := Set{}
	out := make([]map[string]string, 0, len(doc.Keys))
	for _, raw := range doc.Keys {
		k, ok := publicKey(raw)
		if !ok {
			set.Dropped++
			continue
		}
		out = append(out, k)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"keys": out}); err != nil {
		return Set{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxSetLen {
		// Re-encoding can lengthen strings (escapes): the bound holds on
		// what the policy gets, too.
		return Set{}, fmt.Errorf("%w: %d bytes once re-encoded, at most %d (MaxSetLen)", ErrTooLarge, len(b), MaxSetLen)
	}
	set.JSON, set.Keys = b, len(out)
	return set, nil
}

// publicKey keeps the public members of a signature key, or reports false
// for a key of another kind.
func publicKey(raw map[string]json.RawMessage) (map[string]string, bool) {
	k := map[string]string{}
	for _, name := range publicMembers {
		v, ok := raw[name]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, false
		}
		k[name] = s
	}
	switch k["kty"] {
	case "RSA", "EC", "OKP":
	default:
		return nil, false
	}
	if use, ok := k["use"]; ok && use != "sig" {
		return nil, false
	}
	return k, true
}

// maxAge reads max-age from a Cache-Control value; 0 when absent, or when
// no-store or no-cache says not to keep the response.
func maxAge(cc string) time.Duration {
	var age time.Duration
	for _, d := range strings.Split(cc, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			n, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
			if err == nil && n > 0 && n < int64(365*24*time.Hour/time.Second) {
				age = time.Duration(n) * time.Second
			}
		}
	}
	return age
}
