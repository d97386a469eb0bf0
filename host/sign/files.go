package sign

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"

	"github.com/trellis-mesh/trellis/host/internal/plugin"
)

// WriteKeyPair makes a new key pair and writes the private key to privPath
// (PEM, mode 0600) and the public key's text form to privPath+".pub". It
// refuses to overwrite either file.
func WriteKeyPair(privPath string) (ed25519.PublicKey, error) {
	pub, priv, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	pemBytes, err := MarshalPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pubPath := privPath + ".pub"
	if _, err := os.Lstat(pubPath); err == nil {
		return nil, fmt.Errorf("%s exists; not overwriting it", pubPath)
	}
	if err := writeNew(privPath, pemBytes, 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(pubPath, []byte(FormatPublicKey(pub)+"\n"), 0o644); err != nil {
		os.Remove(privPath)
		return nil, err
	}
	return pub, nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("%s exists; not overwriting it", path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// SignFile signs the module file in with priv and writes the signed module
// to out (which may be in). It writes a temporary file beside out and
// renames it into place, so that a watcher never sees half a module.
func SignFile(in, out string, priv ed25519.PrivateKey) error {
	module, err := plugin.ReadModule(in)
	if err != nil {
		return err
	}
	signed, err := Sign(module, priv)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(signed); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
