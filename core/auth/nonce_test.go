package auth_test

import (
	"encoding/base64"
	"testing"

	"github.com/starling-io/starling/core/auth"
)

func TestNewNonce(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		n := auth.NewNonce([]byte("nonce:"))
		if string(n[:6]) != "nonce:" {
			t.Fatalf("prefix lost: %q", n)
		}
		n = n[6:]
		if len(n) != 15 || auth.NonceLen != 15 {
			t.Fatalf("nonce %q has %d characters (NonceLen %d), want 15", n, len(n), auth.NonceLen)
		}
		raw, err := base64.RawURLEncoding.DecodeString(string(n))
		if err != nil || len(raw) != 11 {
			t.Fatalf("nonce %q: %d bytes, %v", n, len(raw), err)
		}
		if seen[string(n)] {
			t.Fatalf("nonce %q repeated", n)
		}
		seen[string(n)] = true
	}
}
