package reload_test

import "github.com/trellis-mesh/trellis/host/config"

func configLoad(file string) (*config.Config, error) { return config.Load(file) }
