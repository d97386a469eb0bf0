package abi

import (
	"errors"
	"sort"
)

// ErrMalformedHeaders is returned by ParseHeaders for bytes that do not follow
// the header encoding of ABI.md.
var ErrMalformedHeaders = errors.New("malformed headers")

// AppendHeaders appends the ABI encoding of h to dst and returns the result:
// one line "Name: value\r\n" per value, names in sorted order so the encoding
// is deterministic. An empty or nil h encodes to nothing.
func AppendHeaders(dst []byte, h map[string][]string) []byte {
	if len(h) == 0 {
		return dst
	}
	if len(h) == 1 {
		for k, vs := range h {
			return appendHeader(dst, k, vs)
		}
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dst = appendHeader(dst, k, h[k])
	}
	return dst
}

func appendHeader(dst []byte, k string, vs []string) []byte {
	for _, v := range vs {
		dst = append(dst, k...)
		dst = append(dst, ':', ' ')
		dst = append(dst, v...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// ParseHeaders decodes the ABI header encoding. Names keep the case they were
// given in (NATS headers are case-sensitive); a repeated name gathers its
// values in order. The final line's "\r\n" may be left out. A line without
// ": ", an empty name, or a name or value containing CR or LF is an error.
func ParseHeaders(b []byte) (map[string][]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	h := make(map[string][]string, 4)
	for len(b) > 0 {
		line := b
		next := len(b)
		for i := 0; i < len(b); i++ {
			if b[i] == '\r' || b[i] == '\n' {
				if b[i] != '\r' || i+1 >= len(b) || b[i+1] != '\n' {
					return nil, ErrMalformedHeaders
				}
				line, next = b[:i], i+2
				break
			}
		}
		colon := -1
		for i := 0; i+1 < len(line); i++ {
			if line[i] == ':' && line[i+1] == ' ' {
				colon = i
				break
			}
		}
		if colon <= 0 {
			return nil, ErrMalformedHeaders
		}
		k := string(line[:colon])
		h[k] = append(h[k], string(line[colon+2:]))
		b = b[next:]
	}
	return h, nil
}
