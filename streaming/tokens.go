package streaming

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
)

// Ack inboxes are the only proof a subscriber shows when it acknowledges, and unsubscribe
// requests name a subscription by its ack inbox: a guessable one let any client ack
// another's messages or unsubscribe its durable (audit finding 3). So each subscription,
// and each durable resume, gets 128 bits from crypto/rand as the last token of its ack
// inbox, "<ackPrefix>.<22 base64url characters>". The engine keys subscriptions by the
// token's bytes as they arrive, so the ack path neither decodes nor allocates.

// ackTokenLen is the length of an ack inbox's last token: 16 random bytes in unpadded
// base64url.
const ackTokenLen = 22

// ackKey is the last token of an ack inbox, as it travels.
type ackKey [ackTokenLen]byte

// newAckKey returns a fresh random key.
func newAckKey() ackKey {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics on a broken source instead)
	var k ackKey
	base64.RawURLEncoding.Encode(k[:], b[:])
	return k
}

// token is k as the last token of an ack inbox.
func (k ackKey) token() string { return string(k[:]) }

// legacyAckKey stands for an ack inbox handed out before ack inboxes were random (a base-36
// counter), recovered from a store written by an older build: kept working so that its
// subscriber's acks still count after the upgrade, until the subscription is renewed. '!'
// never occurs in base64url, so it cannot collide with a random key.
func legacyAckKey(tok []byte) ackKey {
	var k ackKey
	k[0] = '!'
	copy(k[1:], tok)
	return k
}

// parseAckKey returns the key of an ack inbox's last token: a random token, or a legacy
// base-36 counter (up to 12 characters). It does not allocate.
func parseAckKey(subject []byte) (ackKey, bool) {
	var k ackKey
	if n := len(subject) - ackTokenLen; n > 0 && subject[n-1] == '.' && bytes.IndexByte(subject[n:], '.') < 0 {
		copy(k[:], subject[n:]) // a random token, the usual case: no byte-by-byte scan
		return k, true
	}
	i := len(subject) - 1
	for i >= 0 && subject[i] != '.' {
		i--
	}
	tok := subject[i+1:]
	switch {
	case len(tok) == ackTokenLen:
		copy(k[:], tok)
		return k, true
	case len(tok) == 0 || len(tok) > 12:
		return k, false
	}
	for _, c := range tok {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return k, false
		}
	}
	return legacyAckKey(tok), true
}
