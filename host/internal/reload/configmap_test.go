package reload_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trellis-mesh/trellis/host/trellistest"
)

// configMapDir is a directory as kubelet writes a mounted ConfigMap: each
// key a symlink to ..data/KEY, ..data a symlink to a timestamped directory
// holding the files, and an update made by writing a new timestamped
// directory and renaming a new ..data symlink over the old one, so that
// every key changes at once. The paths the config names (the keys'
// symlinks) never change.
type configMapDir struct {
	t       *testing.T
	dir     string
	version int
}

func newConfigMapDir(t *testing.T, dir string, files map[string][]byte) *configMapDir {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &configMapDir{t: t, dir: dir}
	c.update(files)
	for key := range files {
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(dir, key)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// update swaps in a new version of every key, as kubelet does when the
// ConfigMap changes.
func (c *configMapDir) update(files map[string][]byte) {
	c.t.Helper()
	c.version++
	stamp := fmt.Sprintf("..2026_12_02_15_%02d_00.%d", c.version, 1000+c.version)
	if err := os.MkdirAll(filepath.Join(c.dir, stamp), 0o755); err != nil {
		c.t.Fatal(err)
	}
	for key, b := range files {
		if err := os.WriteFile(filepath.Join(c.dir, stamp, key), b, 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(c.dir, "..data"))
	if err := os.Symlink(stamp, filepath.Join(c.dir, "..data_tmp")); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(c.dir, "..data_tmp"), filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	if old != "" {
		os.RemoveAll(filepath.Join(c.dir, old))
	}
}

// TestConfigAndPluginConfigMapsReloadAsMounted runs `trellis run`'s config
// loop on the layout deploy/kubernetes mounts: the config from one
// ConfigMap (/etc/trellis/config/trellis.hcl) naming a plugin from another
// (/etc/trellis/plugins). Updating either ConfigMap, as kubelet does, is
// applied.
func TestConfigAndPluginConfigMapsReloadAsMounted(t *testing.T) {
	fx := versions(t)
	h := trellistest.NewHost(t)
	root := t.TempDir()
	pluginsDir := filepath.Join(root, "etc/trellis/plugins")
	configDir := filepath.Join(root, "etc/trellis/config")
	plugins := newConfigMapDir(t, pluginsDir, map[string][]byte{"versioned.wasm": fx.v1})
	hcl := func(poolSize int) map[string][]byte {
		return map[string][]byte{"trellis.hcl": fmt.Appendf(nil, `plugin "versioned" {
  path      = %q
  subjects  = ["versioned"]
  pool_size = %d
}
`, filepath.Join(pluginsDir, "versioned.wasm"), poolSize)}
	}
	configs := newConfigMapDir(t, configDir, hcl(2))
	runConfigLoop(t, h, h.Host, filepath.Join(configDir, "trellis.hcl"))
	waitAnswer(t, h.Client(), "v1:")

	// The plugins ConfigMap changes: the new module serves.
	plugins.update(map[string][]byte{"versioned.wasm": fx.v2})
	waitAnswer(t, h.Client(), "v2:")

	// The config ConfigMap changes: the new settings apply.
	configs.update(hcl(3))
	trellistest.WaitFor(t, 15*time.Second, "pool_size 3 from the new config", func() bool {
		p := h.Plugins()
		return len(p) == 1 && p[0].PoolSize == 3
	})
	waitAnswer(t, h.Client(), "v2:")

	// And again, both: each swap is seen, not only the first.
	plugins.update(map[string][]byte{"versioned.wasm": fx.v1})
	configs.update(hcl(4))
	waitAnswer(t, h.Client(), "v1:")
	trellistest.WaitFor(t, 15*time.Second, "pool_size 4 from the newer config", func() bool {
		p := h.Plugins()
		return len(p) == 1 && p[0].PoolSize == 4
	})
}
