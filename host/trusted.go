package host

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"net/textproto"
	"sort"
	"strings"
	"sync"

	"github.com/trellis-mesh/trellis/abi"
)

// Identity headers (abi.HeaderPrincipal and abi.HeaderClaimPrefix + name)
// say who sent a message. Only a policy may set them, so the host removes
// every one a client sent before the first policy runs:
//
//   - an HTTP request loses them at the ingress (requestMessage);
//   - a NATS message loses them as it enters a handler's route (serve),
//     whether or not the handler has policies, unless it carries this
//     host's seal.
//
// The seal is how identity set by a policy survives the host's own hop over
// the bus: an HTTP route's chain (or a policy's set_subject) ends with the
// host publishing the message to the handler's subject, and the handler's
// route cannot tell that publish from a client's. So when the host sends on
// a message that went through a chain and carries identity headers, it adds
// sealHeader: an HMAC, under a key that never leaves the process, of the
// subject, every header and the payload. A client cannot make one,
// and one copied off the bus fits only that exact message (a byte-for-byte
// replay, which needs the right to read and to publish the handler's
// subject). The key is per process: on another host of a cluster the
// identity is removed, so a handler served by several hosts should have its
// own authentication policy.
//
// What plugins publish or request through host functions is never sealed:
// a plugin cannot make up an identity for another plugin.
const sealHeader = abi.HeaderIdentitySeal

// isIdentityHeader reports whether a header named name says who sent a
// message, or is the seal over such headers; names match in any case.
func isIdentityHeader(name string) bool {
	if strings.EqualFold(name, abi.HeaderPrincipal) || strings.EqualFold(name, sealHeader) {
		return true
	}
	n := len(abi.HeaderClaimPrefix)
	return len(name) >= n && strings.EqualFold(name[:n], abi.HeaderClaimPrefix)
}

// stripIdentity removes every identity header and seal from hdr, in place.
// It costs one pass over the names and allocates nothing.
func stripIdentity(hdr map[string][]string) {
	for name := range hdr {
		if isIdentityHeader(name) {
			delete(hdr, name)
		}
	}
}

// identitySeal seals identity headers for one host. The zero value is ready:
// the key is drawn from crypto/rand on first use.
type identitySeal struct {
	once sync.Once
	key  [32]byte
}

// sealed returns hdr with the seal over subject, hdr's headers and data
// added, in a copy, when hdr has identity headers; else hdr itself, so a
// message without identity costs one pass over its header names.
func (s *identitySeal) sealed(subject string, hdr map[string][]string, data []byte) map[string][]string {
	if !hasIdentity(hdr) {
		return hdr
	}
	out := make(map[string][]string, len(hdr)+1)
	for k, vs := range hdr {
		if !strings.EqualFold(k, sealHeader) {
			out[k] = vs
		}
	}
	out[sealHeader] = []string{base64.RawStdEncoding.EncodeToString(s.mac(subject, out, data))}
	return out
}

// admit is called as a NATS message enters a handler's route: it keeps the
// identity headers of a message that carries a valid seal and removes them
// from any other, then removes the seal, all in place.
func (s *identitySeal) admit(subject string, hdr map[string][]string, data []byte) {
	if len(hdr) == 0 {
		return
	}
	valid := false
	if vs := hdr[sealHeader]; len(vs) == 1 {
		got, err := base64.RawStdEncoding.DecodeString(vs[0])
		valid = err == nil && hmac.Equal(got, s.mac(subject, hdr, data))
	}
	if valid {
		for name := range hdr {
			if strings.EqualFold(name, sealHeader) {
				delete(hdr, name)
			}
		}
		return
	}
	stripIdentity(hdr)
}

func hasIdentity(hdr map[string][]string) bool {
	for name := range hdr {
		if isIdentityHeader(name) && !strings.EqualFold(name, sealHeader) {
			return true
		}
	}
	return false
}

// mac is the HMAC-SHA256 of subject, the headers of hdr (the seal
// excepted) in sorted order, and data, each part length-prefixed so that no
// two messages encode alike. Every header counts, not only the identity
// ones: a path parameter (Trellis-Param-id) changed under alice's seal
// would make her ask for what she did not.
func (s *identitySeal) mac(subject string, hdr map[string][]string, data []byte) []byte {
	s.once.Do(func() { _, _ = rand.Read(s.key[:]) }) // crypto/rand.Read never fails
	m := hmac.New(sha256.New, s.key[:])
	writePart(m, []byte("trellis identity seal v1"))
	writePart(m, []byte(subject))
	var names []string
	for name := range hdr {
		if !strings.EqualFold(name, sealHeader) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		writePart(m, []byte(name))
		writeLen(m, len(hdr[name]))
		for _, v := range hdr[name] {
			writePart(m, []byte(wireValue(v)))
		}
	}
	writePart(m, data)
	return m.Sum(nil)
}

// wireValue is a header value as it arrives over NATS: nats.go trims
// surrounding whitespace and turns CR and LF into spaces when it sends, so
// the seal covers that form and fits on both sides.
func wireValue(v string) string { return crlfToSpace.Replace(textproto.TrimString(v)) }

var crlfToSpace = strings.NewReplacer("\r", " ", "\n", " ")

func writePart(h hash.Hash, b []byte) {
	writeLen(h, len(b))
	h.Write(b)
}

func writeLen(h hash.Hash, n int) {
	var buf [binary.MaxVarintLen64]byte
	h.Write(binary.AppendUvarint(buf[:0], uint64(n)))
}
