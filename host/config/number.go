package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Bounds on the numbers a configuration may hold. Each is checked where the
// attribute is read, and a value outside it refuses the file with a
// diagnostic that names the attribute and the bound.
const (
	// MaxPoolSize is the most instances a plugin's pool may have: each one
	// holds its own linear memory (up to memory_limit), so a typo of one
	// digit should not reserve a thousand times more than meant.
	MaxPoolSize = 4096
	// MaxInFlight is the largest max_in_flight: the host keeps one slot per
	// call it lets run.
	MaxInFlight = 1 << 20
	// MaxRetries is the most retries a handler may ask for.
	MaxRetries = 10
	// MaxBreakerFailures is the largest breaker failures count.
	MaxBreakerFailures = 1 << 20
	// MinMemoryLimit is the smallest memory_limit: one 64 KiB Wasm page.
	MinMemoryLimit = 64 << 10
	// MaxMemoryLimit is the largest memory_limit: 4 GiB, all a wasm32
	// module can address.
	MaxMemoryLimit = 4 << 30
	// MaxNATSPayload is the largest max_payload NATS allows, 64 MiB.
	MaxNATSPayload = 64 << 20
	// MaxHTTPBody is the largest max_body: the ingress reads a body whole
	// into memory before it goes on the bus.
	MaxHTTPBody = 1 << 30
	// MaxHTTPHeader is the largest max_header.
	MaxHTTPHeader = 16 << 20
	// MaxHTTPConns is the largest max_conns.
	MaxHTTPConns = 1 << 20
)

// MaxNumberLiteral is the longest number literal a file may hold, in bytes,
// and MaxNumberExponent the largest exponent it may write (1e308 is about
// the largest float64). Past them, HCL's exact arithmetic and the decimal
// text of a value take seconds: 1e-99999 takes several to print.
const (
	MaxNumberLiteral  = 64
	MaxNumberExponent = 400
)

// checkNumberLiterals refuses number literals beyond MaxNumberLiteral and
// MaxNumberExponent before HCL computes with them.
func checkNumberLiterals(src []byte, filename string) hcl.Diagnostics {
	toks, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos)
	var diags hcl.Diagnostics
	for _, tok := range toks {
		if tok.Type != hclsyntax.TokenNumberLit {
			continue
		}
		lit := string(tok.Bytes)
		ok := len(lit) <= MaxNumberLiteral
		if i := strings.IndexAny(lit, "eE"); ok && i >= 0 {
			exp, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
			ok = err == nil && exp >= -MaxNumberExponent && exp <= MaxNumberExponent
		}
		if !ok {
			r := tok.Range
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Number out of range",
				Detail: fmt.Sprintf("%.20q: a number may have at most %d characters and an exponent from -%d to %d",
					lit, MaxNumberLiteral, MaxNumberExponent, MaxNumberExponent), Subject: &r})
		}
	}
	return diags
}

// written returns e as the file writes it, shortened, to quote in an error.
func (d *decoder) written(e hcl.Expression) string {
	r := e.Range()
	if !r.CanSliceBytes(d.src) {
		return "the value"
	}
	text := string(r.SliceBytes(d.src))
	if len(text) > 40 {
		text = text[:40] + "..."
	}
	return text
}

// ErrSize is wrapped by every ParseSize error.
var ErrSize = errors.New("invalid size")

// sizeUnits are the suffixes ParseSize knows, longest first, so that "MiB"
// is not read as "B".
var sizeUnits = []struct {
	suffix string
	mult   uint64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseSize parses a byte size: a positive whole number of bytes ("1048576")
// or one followed by a unit, binary ("512KiB", "64MiB", "1GiB", "1TiB") or
// decimal ("1KB", "2MB", "1GB", "1TB"), with at most one space between.
// Signs, fractions, other characters and values over 2^64-1 bytes are
// refused with an error that wraps ErrSize and says which it was.
func ParseSize(s string) (uint64, error) {
	num, mult := s, uint64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSuffix(n, " "), u.mult
			break
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, fmt.Errorf(`%w: %q is not a size such as "64MiB", "512KiB" or "1048576"`, ErrSize, s)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > math.MaxUint64/mult {
		return 0, fmt.Errorf("%w: %q is more than 2^64-1 bytes", ErrSize, s)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: %q is zero", ErrSize, s)
	}
	return n * mult, nil
}

// FormatSize writes n the way ParseSize reads it, in the largest binary
// unit that divides it exactly: 64<<20 is "64MiB", 1000 is "1000".
func FormatSize(n uint64) string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatUint(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10)
}

// scalar reads an optional attribute given as a number or a string. ok is
// false when it is absent or already reported.
func (d *decoder) scalar(e hcl.Expression, name string) (s string, num *big.Float, ok bool) {
	if !set(e) {
		return "", nil, false
	}
	v, ok := d.value(e)
	if !ok {
		return "", nil, false
	}
	switch {
	case v.IsNull():
		return "", nil, false
	case v.Type() == cty.Number:
		return "", v.AsBigFloat(), true
	case v.Type() == cty.String:
		return v.AsString(), nil, true
	}
	d.exprErr(e, "Invalid "+name, "want a number or a string, not "+v.Type().FriendlyName())
	return "", nil, false
}

// integer reads a whole number in [min, max], given as a number (8) or a
// string of decimal digits ("8").
func (d *decoder) integer(e hcl.Expression, name string, min, max int64) (int64, bool) {
	s, num, ok := d.scalar(e, name)
	if !ok {
		return 0, false
	}
	bad := func(what string) (int64, bool) {
		d.exprErr(e, "Invalid "+name, fmt.Sprintf("%s; want a whole number from %d to %d", what, min, max))
		return 0, false
	}
	var n int64
	if num != nil {
		if num.IsInf() || !num.IsInt() {
			return bad(d.written(e) + " is not a whole number")
		}
		i, acc := num.Int64()
		if acc != big.Exact {
			return bad(d.written(e) + " is out of range")
		}
		n = i
	} else {
		i, err := strconv.ParseInt(s, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange):
			return bad(fmt.Sprintf("%q is out of range", s))
		case err != nil:
			return bad(fmt.Sprintf("%q is not a whole number", s))
		}
		n = i
	}
	if n < min || n > max {
		return bad(fmt.Sprintf("%d is out of range", n))
	}
	return n, true
}

// size reads a byte size in [min, max], given as a number of bytes or a
// string ParseSize reads.
func (d *decoder) size(e hcl.Expression, name string, min, max uint64) (uint64, bool) {
	s, num, ok := d.scalar(e, name)
	if !ok {
		return 0, false
	}
	var n uint64
	if num != nil {
		if num.IsInf() || !num.IsInt() || num.Sign() <= 0 {
			d.exprErr(e, "Invalid "+name, d.written(e)+` is not a positive whole number of bytes; want a size such as "64MiB" or 1048576`)
			return 0, false
		}
		u, acc := num.Uint64()
		if acc != big.Exact {
			d.exprErr(e, "Invalid "+name, d.written(e)+" is more than 2^64-1 bytes")
			return 0, false
		}
		n = u
	} else {
		u, err := ParseSize(s)
		if err != nil {
			d.exprErr(e, "Invalid "+name, strings.TrimPrefix(err.Error(), ErrSize.Error()+": "))
			return 0, false
		}
		n = u
	}
	if n < min || n > max {
		d.exprErr(e, "Invalid "+name, fmt.Sprintf("%s is out of range; want %s to %s", FormatSize(n), FormatSize(min), FormatSize(max)))
		return 0, false
	}
	return n, true
}

// duration reads a positive duration such as "500ms" or "2s". With
// allowNone, "none" is accepted and returned as -1.
func (d *decoder) duration(e hcl.Expression, name string, allowNone bool) (time.Duration, bool) {
	s, num, ok := d.scalar(e, name)
	if !ok {
		return 0, false
	}
	want := `want a positive duration such as "500ms" or "2s"`
	if allowNone {
		want += ` (or "none")`
	}
	if num != nil {
		d.exprErr(e, "Invalid "+name, d.written(e)+" has no unit; "+want)
		return 0, false
	}
	if allowNone && s == "none" {
		return -1, true
	}
	t, err := time.ParseDuration(s)
	if err != nil || t <= 0 {
		// ParseDuration also refuses what overflows int64 nanoseconds.
		d.exprErr(e, "Invalid "+name, fmt.Sprintf("%q is not a positive duration of at most 2562047h; %s", s, want))
		return 0, false
	}
	return t, true
}
