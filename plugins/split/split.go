package main

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/trellis-mesh/trellis/abi"
	"github.com/trellis-mesh/trellis/plugins/internal/policyconf"
)

// maxTotal bounds the sum of the weights, so that the modulo of a 64-bit
// hash is as good as uniform over it.
const maxTotal = 1_000_000_000

// Target is one subject of a split and its weight.
type Target struct {
	Subject string
	Weight  uint64
}

// Split shares messages among targets in proportion to their weights.
type Split struct {
	Targets []Target
	total   uint64
}

// ParseSplit parses "subject=weight" items: "orders.get.v1=90,orders.get.v2=10".
// Weights are whole numbers; a weight of 0 keeps a target listed but idle.
// At least one weight must be positive.
func ParseSplit(s string) (Split, error) {
	pairs, err := policyconf.Pairs(s)
	if err != nil {
		return Split{}, err
	}
	var sp Split
	for _, p := range pairs {
		if err := abi.ValidSubject(p.Name, false); err != nil {
			return Split{}, fmt.Errorf("%s: %w", p.Name, err)
		}
		w, err := strconv.ParseUint(p.Value, 10, 64)
		if err != nil || w > maxTotal {
			return Split{}, fmt.Errorf("%s: weight %q is not a whole number from 0 to %d", p.Name, p.Value, maxTotal)
		}
		sp.total += w
		if sp.total > maxTotal {
			return Split{}, fmt.Errorf("weights add up to more than %d", maxTotal)
		}
		sp.Targets = append(sp.Targets, Target{Subject: p.Name, Weight: w})
	}
	if sp.total == 0 {
		return Split{}, errors.New("no target has a positive weight")
	}
	return sp, nil
}

// pick returns the target that n, in [0, total), falls on when the targets'
// weights are laid end to end.
func (sp Split) pick(n uint64) string {
	for _, t := range sp.Targets {
		if n < t.Weight {
			return t.Subject
		}
		n -= t.Weight
	}
	return sp.Targets[len(sp.Targets)-1].Subject // unreachable for n < total
}

// Sticky returns the target for key: a function of SHA-256(key) alone, so
// one key always lands on one target while the targets and weights stay
// the same, and keys spread over the targets by weight.
func (sp Split) Sticky(key string) string {
	sum := sha256.Sum256([]byte(key))
	return sp.pick(binary.BigEndian.Uint64(sum[:8]) % sp.total)
}

// Random returns a target drawn by weight. math/rand/v2's generator is
// seeded by the runtime from the host's WASI random_get.
func (sp Split) Random() string { return sp.pick(rand.Uint64N(sp.total)) }
