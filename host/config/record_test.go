package config

import (
	"strings"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host"
)

func TestRecordBlock(t *testing.T) {
	c, err := Parse([]byte(`
plugin "orders" {
  path     = "orders.wasm"
  subjects = ["orders.>"]
  record {
    subjects  = ["orders.created", "orders.*.paid"]
    max_age   = "30m"
    max_bytes = "8MiB"
  }
}
plugin "quiet" {
  path     = "quiet.wasm"
  subjects = ["quiet"]
  record {
    enabled = false
  }
}
`), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Plugins[0].Record
	if r == nil || len(r.Subjects) != 2 || r.Subjects[1] != "orders.*.paid" || r.MaxAge != 30*time.Minute || r.MaxBytes != 8<<20 || r.Off {
		t.Fatalf("record %+v", r)
	}
	if q := c.Plugins[1].Record; q == nil || !q.Off || q.Subjects != nil || q.MaxAge != 0 {
		t.Fatalf("record with defaults, off: %+v", q)
	}
}

func TestRecordBlockRefusesWhatIsOutOfBounds(t *testing.T) {
	many := `"orders.a"` + strings.Repeat(`, "orders.a"`, host.MaxRecordSubjects)
	cases := []struct {
		name, block, want string
	}{
		{"too many subjects", `record { subjects = [` + many + `] }`, "t.hcl:5:23: Invalid record subjects: 17 subjects, more than 16"},
		{"outside the plugin's subjects", `record { subjects = ["payments.>"] }`, `t.hcl:5:23: Record subject outside the plugin's: "payments.>" is not within subjects ["orders.>"]`},
		{"wider than the plugin's subjects", `record { subjects = [">"] }`, `Record subject outside the plugin's: ">"`},
		{"bad subject", `record { subjects = ["orders..x"] }`, "Invalid record subject"},
		{"max_age without unit", `record { max_age = 60 }`, "t.hcl:5:22: Invalid max_age"},
		{"max_age garbage", `record { max_age = "1hour" }`, "Invalid max_age"},
		{"max_age too long", `record { max_age = "720h" }`, "720h0m0s: want 1s to 168h0m0s"},
		{"max_age too short", `record { max_age = "10ms" }`, "want 1s to"},
		{"max_bytes too big", `record { max_bytes = "100GiB" }`, "Invalid max_bytes"},
		{"max_bytes too small", `record { max_bytes = 1000 }`, "Invalid max_bytes"},
		{"durable", "durable {}\n  record {}", "record applies to handlers fed by subscriptions"},
	}
	for _, tc := range cases {
		src := "\nplugin \"orders\" {\n  path     = \"orders.wasm\"\n  subjects = [\"orders.>\"]\n  " + tc.block + "\n}\n"
		_, err := Parse([]byte(src), "t.hcl")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	_, err := Parse([]byte(`
policy "p" {
  path = "p.wasm"
  record {}
}
`), "t.hcl")
	if err == nil || !strings.Contains(err.Error(), "t.hcl:4:3: Invalid record block") {
		t.Errorf("a policy with a record block: %v", err)
	}
}
