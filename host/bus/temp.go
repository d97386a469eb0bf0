package bus

import "os"

func mkTemp() (string, error) { return os.MkdirTemp("", "trellis-jetstream-") }

func (b *Bus) removeTemp() {
	if b.tempDir != "" {
		os.RemoveAll(b.tempDir)
		b.tempDir = ""
	}
}
