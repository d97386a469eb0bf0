// Command sizelimit is the Trellis payload-size policy: it rejects a
// message whose payload is larger than max_bytes with status 413. See
// README.md for its config.
package main

import (
	"fmt"
	"strconv"
	"strings"

	trellis "github.com/trellis-mesh/trellis/sdk/go"
)

// defaultMax is the limit when max_bytes is not set.
const defaultMax = 1 << 20

var maxBytes uint64 = defaultMax

func init() {
	trellis.OnInit(func() error {
		s, ok := trellis.Config("max_bytes")
		if !ok {
			return nil
		}
		n, err := ParseSize(s)
		if err != nil {
			return fmt.Errorf("sizelimit: max_bytes: %w", err)
		}
		maxBytes = n
		return nil
	})
	trellis.Policy(func(r *trellis.Inbound) trellis.Decision {
		if uint64(len(r.Data)) > maxBytes {
			return trellis.Reject(413, "payload too large")
		}
		return trellis.Continue
	})
}

func main() {}

// units are the suffixes ParseSize knows, the same as the host config's:
// binary (KiB) and decimal (KB) multiples.
var units = []struct {
	suffix string
	mult   uint64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}

// ParseSize parses a byte count: "1048576", "64KiB", "1MiB", "2GB", "512B".
// Zero is allowed (only empty payloads pass).
func ParseSize(s string) (uint64, error) {
	num, mult := strings.TrimSpace(s), uint64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || (num != "0" && strings.HasPrefix(num, "0")) || n > (1<<63)/mult {
		return 0, fmt.Errorf(`%q is not a size such as "1048576", "64KiB" or "1MiB"`, s)
	}
	return n * mult, nil
}
