package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"

	"github.com/nats-io/nkeys"
)

// nonceRawLen is the number of random bytes in a nonce; base64 URL without
// padding makes them NonceLen characters.
const nonceRawLen = 11

// NonceLen is the length of the nonces NewNonce appends.
const NonceLen = (nonceRawLen*8 + 5) / 6 // 15

// NewNonce appends a fresh nonce to dst and returns the extended slice: 11
// bytes from crypto/rand, base64 URL encoded without padding (15 characters),
// as sent in INFO "nonce" (spec §13.4). Use a new one per connection, and pass
// exactly these bytes as Credentials.Nonce: clients sign the string's bytes.
func NewNonce(dst []byte) []byte {
	var raw [nonceRawLen]byte
	_, _ = rand.Read(raw[:]) // never fails: crypto/rand crashes the program instead
	return base64.RawURLEncoding.AppendEncode(dst, raw[:])
}

// Signature problems, wrapped under ErrAuthorization by Check.
var (
	errNoNonce  = errors.New("no nonce was sent to the client")
	errNoSig    = errors.New("signature missing")
	errSigCode  = errors.New("signature is not base64")
	errSigCheck = errors.New("signature does not verify")
)

// verifyNonce checks that sig (base64 URL without padding, or standard base64
// with or without padding) is key's Ed25519 signature of nonce.
func verifyNonce(key nkeys.KeyPair, nonce []byte, sig string) error {
	if len(nonce) == 0 {
		return errNoNonce
	}
	if sig == "" {
		return errNoSig
	}
	raw, err := decodeSig(sig)
	if err != nil {
		return errSigCode
	}
	if key.Verify(nonce, raw) != nil {
		return errSigCheck
	}
	return nil
}

// decodeSig decodes a signature the way clients send it: base64 URL without
// padding (nats.go), else standard base64 padded or not.
func decodeSig(sig string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err == nil {
		return raw, nil
	}
	if raw, err = base64.StdEncoding.DecodeString(sig); err == nil {
		return raw, nil
	}
	return base64.RawStdEncoding.DecodeString(sig)
}
