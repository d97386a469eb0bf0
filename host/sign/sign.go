// Package sign signs Trellis plugin modules and checks their signatures.
//
// A signature travels inside the module, as its last section: a WebAssembly
// custom section named "trellis.signature" (SectionName). Its payload is
//
//	byte      format version, 1
//	byte      algorithm, 1 = Ed25519
//	32 bytes  the signer's Ed25519 public key
//	64 bytes  the Ed25519 signature (RFC 8032, pure) of every byte of the
//	          module before the section
//
// so signing appends 116 bytes and changes nothing it signs, and any
// toolchain can produce it. The signature lives in the module rather than
// in a sidecar file because one file is what travels: copied into a dev
// directory, swapped in a ConfigMap, renamed over by a build. A sidecar
// would be swapped at another moment than its module and could be read with
// the wrong one.
//
// Verify walks the module's section headers (not their contents), so its
// cost is one pass over the section list plus one Ed25519 verification
// (about 50 µs, and SHA-512 over the module: about 2 ms per MB).
package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/trellis-mesh/trellis/host/internal/regfile"
)

// SectionName names the custom section that holds a module's signature.
const SectionName = "trellis.signature"

// The payload's first two bytes.
const (
	FormatVersion    = 1
	AlgorithmEd25519 = 1
)

// payloadSize is the size of the section's payload.
const payloadSize = 2 + ed25519.PublicKeySize + ed25519.SignatureSize

// KeyPrefix starts the text form of a public key: "ed25519:" and the key's
// 32 bytes in standard base64.
const KeyPrefix = "ed25519:"

// maxKeyFile is the largest key file LoadPrivateKey reads.
const maxKeyFile = 64 << 10

// Errors Verify returns, wrapped with details. A caller branches on them
// with errors.Is.
var (
	// ErrUnsigned: the module has no signature section.
	ErrUnsigned = errors.New("module is not signed")
	// ErrMalformed: the module's sections or its signature section cannot
	// be read, there is more than one signature section, or it is not last.
	ErrMalformed = errors.New("malformed signature")
	// ErrUntrustedKey: the signature was made with a key not trusted.
	ErrUntrustedKey = errors.New("signed by a key that is not trusted")
	// ErrBadSignature: the signature does not match the module's bytes,
	// which were changed after signing (or the signature was).
	ErrBadSignature = errors.New("signature does not match the module (changed after signing?)")
)

// GenerateKey returns a new Ed25519 key pair from crypto/rand.
func GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// FormatPublicKey returns pub's text form, "ed25519:" and base64, the form
// trusted_keys takes in the config.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return KeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses the text form FormatPublicKey returns; surrounding
// space is ignored.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, KeyPrefix)
	if !ok {
		return nil, fmt.Errorf("public key %q does not start with %q", s, KeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("public key %q: %w", s, err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: %d bytes, want %d", s, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// MarshalPrivateKey encodes priv as PEM ("PRIVATE KEY", PKCS #8), the form
// openssl and most tools read.
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadPrivateKey reads an Ed25519 private key written by MarshalPrivateKey
// (or `openssl genpkey -algorithm ed25519`). It refuses a file that others
// than its owner may read or write, as ssh does, and anything but a regular
// file.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: private key readable or writable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := regfile.Read(path, maxKeyFile, "sign.maxKeyFile")
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM \"PRIVATE KEY\" file", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not an Ed25519 key", path, key)
	}
	return priv, nil
}

// Sign returns module with its signature by priv appended as a last
// custom section. It refuses bytes that are not a module and a module that
// is signed already (sign the unsigned one again instead).
func Sign(module []byte, priv ed25519.PrivateKey) ([]byte, error) {
	sigs, err := scan(module)
	if err != nil {
		return nil, err
	}
	if sigs.count > 0 {
		return nil, errors.New("module is signed already")
	}
	payload := make([]byte, 0, payloadSize)
	payload = append(payload, FormatVersion, AlgorithmEd25519)
	payload = append(payload, priv.Public().(ed25519.PublicKey)...)
	payload = append(payload, ed25519.Sign(priv, module)...)

	name := appendULEB(nil, uint32(len(SectionName)))
	name = append(name, SectionName...)
	out := make([]byte, 0, len(module)+1+5+len(name)+len(payload))
	out = append(out, module...)
	out = append(out, 0) // custom section
	out = appendULEB(out, uint32(len(name)+len(payload)))
	out = append(out, name...)
	return append(out, payload...), nil
}

// Verify checks that module carries exactly one signature section, as its
// last section, made by one of trusted over every byte before it. It
// returns the signer's key, or an error wrapping ErrUnsigned, ErrMalformed,
// ErrUntrustedKey or ErrBadSignature that says which. It never panics, and
// it reads the module's section headers only, not what they hold.
func Verify(module []byte, trusted []ed25519.PublicKey) (ed25519.PublicKey, error) {
	sig, err := scan(module)
	switch {
	case err != nil:
		return nil, err
	case sig.count == 0:
		return nil, ErrUnsigned
	case sig.count > 1:
		return nil, fmt.Errorf("%w: %d %s sections", ErrMalformed, sig.count, SectionName)
	case !sig.last:
		return nil, fmt.Errorf("%w: the %s section is not the module's last", ErrMalformed, SectionName)
	}
	p := sig.payload
	switch {
	case len(p) != payloadSize:
		return nil, fmt.Errorf("%w: %d bytes of payload, want %d", ErrMalformed, len(p), payloadSize)
	case p[0] != FormatVersion:
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrMalformed, p[0], FormatVersion)
	case p[1] != AlgorithmEd25519:
		return nil, fmt.Errorf("%w: algorithm %d, want %d (Ed25519)", ErrMalformed, p[1], AlgorithmEd25519)
	}
	pub := ed25519.PublicKey(p[2 : 2+ed25519.PublicKeySize])
	signature := p[2+ed25519.PublicKeySize:]
	var key ed25519.PublicKey
	for _, k := range trusted {
		if bytes.Equal(k, pub) {
			key = k
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: %s", ErrUntrustedKey, FormatPublicKey(pub))
	}
	if !ed25519.Verify(key, module[:sig.start], signature) {
		return nil, fmt.Errorf("%w: key %s", ErrBadSignature, FormatPublicKey(key))
	}
	return key, nil
}

// signatures is what scan found of a module's signature sections.
type signatures struct {
	count   int    // how many
	start   int    // where the first starts (its id byte)
	payload []byte // the first's payload
	last    bool   // the first is the module's last section
}

// scan walks module's section headers, checking only that each header and
// size fits in the bytes, and finds its signature sections.
func scan(module []byte) (signatures, error) {
	var sigs signatures
	if len(module) < 8 || string(module[:4]) != "\x00asm" {
		return sigs, fmt.Errorf("%w: not a WebAssembly module (no \\0asm header)", ErrMalformed)
	}
	if !bytes.Equal(module[4:8], []byte{1, 0, 0, 0}) {
		return sigs, fmt.Errorf("%w: not a core WebAssembly module of version 1", ErrMalformed)
	}
	for off := 8; off < len(module); {
		start := off
		id := module[off]
		size, n, err := readULEB(module[off+1:])
		if err != nil {
			return sigs, fmt.Errorf("%w: section at byte %d: %v", ErrMalformed, start, err)
		}
		off += 1 + n
		if uint64(size) > uint64(len(module)-off) {
			return sigs, fmt.Errorf("%w: section at byte %d declares %d bytes, %d are left", ErrMalformed, start, size, len(module)-off)
		}
		body := module[off : off+int(size)]
		off += int(size)
		if id != 0 {
			continue
		}
		nameLen, n, err := readULEB(body)
		if err != nil || uint64(nameLen) > uint64(len(body)-n) {
			return sigs, fmt.Errorf("%w: custom section at byte %d has a bad name", ErrMalformed, start)
		}
		if string(body[n:n+int(nameLen)]) != SectionName {
			continue
		}
		sigs.count++
		if sigs.count == 1 {
			sigs.start, sigs.payload = start, body[n+int(nameLen):]
			sigs.last = off == len(module)
		}
	}
	return sigs, nil
}

// readULEB reads an unsigned LEB128 number of at most 32 bits.
func readULEB(b []byte) (uint32, int, error) {
	var v uint64
	for i := 0; i < 5; i++ {
		if i >= len(b) {
			return 0, 0, errors.New("truncated LEB128 number")
		}
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, 0, errors.New("LEB128 number over 32 bits")
			}
			return uint32(v), i + 1, nil
		}
	}
	return 0, 0, errors.New("LEB128 number longer than 5 bytes")
}

func appendULEB(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
