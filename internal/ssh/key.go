package ssh

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// parseKey reads the ssh-key input. Errors say what is wrong with it
// without quoting it.
func parseKey(key []byte) (ssh.Signer, error) {
	if len(bytes.TrimSpace(key)) == 0 {
		return nil, errors.New("the ssh-key input is empty: give the deploy user's private key (PEM or OpenSSH format)")
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err == nil {
		return signer, nil
	}
	var passphrase *ssh.PassphraseMissingError
	if errors.As(err, &passphrase) {
		return nil, errors.New("the ssh-key input is encrypted with a passphrase; give a key without one (ssh-keygen -p -N '' -f KEY removes it from a copy)")
	}
	if _, _, _, _, perr := ssh.ParseAuthorizedKey(key); perr == nil {
		return nil, errors.New("the ssh-key input holds a public key; give the private key (the file without .pub)")
	}
	if bytes.Contains(key, []byte(`\n`)) && !bytes.Contains(key, []byte("\n")) {
		return nil, errors.New(`the ssh-key input has literal \n instead of line breaks; store the key file's content unchanged`)
	}
	// x/crypto's parse errors describe the structure, never the bytes.
	return nil, fmt.Errorf("the ssh-key input is not a private key in PEM or OpenSSH format (%v)", err)
}
