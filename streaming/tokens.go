package streaming

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
)

// Ack inboxes are the only proof a subscriber shows when it acknowledges, and unsubscribe
// requests name a subscription by its ack inbox: a guessable one let any client ack
// another's messages or unsubscribe its durable (audit finding 3). So each subscription,
// and each durable resume, gets 128 bits from crypto/rand as the last token of its ack
// inbox, "<ackPrefix>.<22 base64url characters>". The engine keys subscriptions by the
// decoded bytes, so the ack path still parses and looks up without allocating.

// ackKey is the decoded last token of an ack inbox.
type ackKey [16]byte

// ackTokenLen is the length of an ack inbox's last token: 16 bytes in unpadded base64url.
const ackTokenLen = 22

// newAckKey returns a fresh random key.
func newAckKey() ackKey {
	var k ackKey
	_, _ = rand.Read(k[:]) // never fails (crypto/rand panics on a broken source instead)
	return k
}

// token is k as the last token of an ack inbox.
func (k ackKey) token() string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// legacyAckKey stands for an ack inbox handed out before ack inboxes were random (a base-36
// counter), recovered from a store written by an older build: kept working so that its
// subscriber's acks still count after the upgrade, until the subscription is renewed.
func legacyAckKey(n uint64) ackKey {
	var k ackKey
	for i := range 8 {
		k[i] = 0xff
	}
	binary.BigEndian.PutUint64(k[8:], n)
	return k
}

// parseAckKey returns the key of an ack inbox's last token: a random token, or a legacy
// base-36 counter. It does not allocate.
func parseAckKey(subject []byte) (ackKey, bool) {
	i := len(subject) - 1
	for i >= 0 && subject[i] != '.' {
		i--
	}
	tok := subject[i+1:]
	var k ackKey
	if len(tok) == ackTokenLen {
		n, err := base64.RawURLEncoding.Decode(k[:], tok)
		return k, err == nil && n == len(k)
	}
	if len(tok) == 0 || len(tok) > 12 {
		return k, false
	}
	var n uint64
	for _, c := range tok {
		switch {
		case c >= '0' && c <= '9':
			n = n*36 + uint64(c-'0')
		case c >= 'a' && c <= 'z':
			n = n*36 + uint64(c-'a'+10)
		default:
			return k, false
		}
	}
	return legacyAckKey(n), true
}
