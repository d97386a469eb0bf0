package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Bounds on what a token may be minted with.
const (
	defaultTTL = time.Hour
	maxTTL     = 24 * time.Hour
	maxField   = 256  // sub, aud, one role
	maxScope   = 1024 // the whole scope string
	maxRoles   = 32
)

// mintRequest is what mint is asked for.
type mintRequest struct {
	sub, scope, roles, aud, issuer string
	ttl                            time.Duration
	now                            time.Time // zero: the clock's
}

// mint signs an ES256 access token with k: iss, sub, aud, iat, exp, and
// when asked scope and realm_access.roles, as Keycloak writes them.
func mint(k signingKey, m mintRequest) (string, error) {
	if err := m.check(); err != nil {
		return "", err
	}
	now := m.now
	if now.IsZero() {
		now = time.Now()
	}
	claims := jwt.MapClaims{
		"iss": m.issuer, "sub": m.sub, "aud": m.aud,
		"iat": now.Unix(), "exp": now.Add(m.ttl).Unix(),
	}
	if m.scope != "" {
		claims["scope"] = strings.Join(strings.Fields(m.scope), " ")
	}
	if m.roles != "" {
		var roles []string
		for _, r := range strings.Split(m.roles, ",") {
			if r = strings.TrimSpace(r); r != "" {
				roles = append(roles, r)
			}
		}
		claims["realm_access"] = map[string]any{"roles": roles}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = k.kid
	return t.SignedString(k.priv)
}

// check refuses what no token should say: an empty or oversized subject,
// control characters, too many roles, a lifetime out of (0, 24h].
func (m mintRequest) check() error {
	if m.sub == "" {
		return errors.New("mint: --sub is required")
	}
	for _, f := range []struct{ name, v string }{{"sub", m.sub}, {"aud", m.aud}, {"issuer", m.issuer}} {
		if len(f.v) > maxField {
			return fmt.Errorf("mint: --%s of %d bytes, at most %d", f.name, len(f.v), maxField)
		}
		if strings.IndexFunc(f.v, isControl) >= 0 {
			return fmt.Errorf("mint: --%s holds a control character", f.name)
		}
	}
	if len(m.scope) > maxScope || strings.IndexFunc(m.scope, isControl) >= 0 {
		return fmt.Errorf("mint: --scope must be at most %d bytes of text", maxScope)
	}
	roles := strings.Split(m.roles, ",")
	if len(roles) > maxRoles {
		return fmt.Errorf("mint: %d roles, at most %d", len(roles), maxRoles)
	}
	for _, r := range roles {
		if len(r) > maxField || strings.IndexFunc(r, isControl) >= 0 {
			return fmt.Errorf("mint: a role must be at most %d bytes of text", maxField)
		}
	}
	if m.ttl <= 0 || m.ttl > maxTTL {
		return fmt.Errorf("mint: --ttl %s is not between 0 and %s", m.ttl, maxTTL)
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
