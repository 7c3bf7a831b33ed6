package rpmtest

// GenerateKey is NewKey for programs that are not tests, such as the demo:
// it returns the key and a function that stops its gpg-agent and removes
// its GNUPGHOME.
func GenerateKey(kind KeyKind, name string) (*Key, func(), error) {
	k, err := newKey(kind, name)
	if err != nil {
		if k != nil {
			k.remove()
		}
		return nil, func() {}, err
	}
	return k, k.remove, nil
}
