package plugin

import "context"

// Warm makes the version's pool hold at least n instances (at most its
// size), idle when Warm returns, so that a version about to take traffic
// (a canary) does not make them on its first messages, whose latency would
// then count against it. It returns the first instance's error.
func (p *Plugin) Warm(ctx context.Context, n int) error {
	n = min(n, p.pool.Max())
	held := make([]*instance, 0, n)
	defer func() {
		for _, in := range held {
			p.pool.Release(in)
		}
	}()
	for len(held) < n {
		in, err := p.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		held = append(held, in)
	}
	return nil
}
