package auth

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/starling-io/starling/core/subject"
)

// Permissions says what a user may publish and subscribe to (spec §14).
// A nil *Permissions, or a nil field, allows everything in that direction.
type Permissions struct {
	Publish        *SubjectPermission  // nil: every subject may be published to
	Subscribe      *SubjectPermission  // nil: every subject may be subscribed to
	AllowResponses *ResponsePermission // nil: off
}

// SubjectPermission is an allow list and a deny list of subject patterns
// (wildcards as in subscriptions). Subscribe entries may also be
// "subject queue": such an entry applies only to queue subscriptions in a
// matching queue group (the queue part may itself contain wildcard tokens).
//
// A nil Allow means "no allow list" (everything not denied is allowed). For
// publish, a non-nil empty Allow allows nothing — that is what AllowResponses
// installs when no publish allow list is given. For subscribe, an empty Allow
// is the same as a nil one (spec §14.2). The configuration layer maps an empty
// `allow: []` in a config file to nil (spec §14.1).
type SubjectPermission struct {
	Allow []string
	Deny  []string
}

// ResponsePermission lets a user publish to reply subjects of messages
// delivered to it (spec §14.4): each reply subject up to MaxMsgs times, within
// Expires of the delivery.
type ResponsePermission struct {
	MaxMsgs int           // 0: DefaultResponseMaxMsgs; < 0: unlimited
	Expires time.Duration // 0: DefaultResponseExpires; < 0: never
}

// Defaults applied by Compile to a ResponsePermission's zero fields.
const (
	DefaultResponseMaxMsgs = 1
	DefaultResponseExpires = 2 * time.Minute
)

// patterns is a set of subject patterns; the values carry no meaning.
type patterns = subject.Index[struct{}]

// Checker decides publish and subscribe permissions for one set of
// Permissions. It is immutable once Compile returns, so one Checker is shared
// by every connection of a user and is safe for concurrent use. A nil *Checker
// allows everything; all methods accept a nil receiver.
//
// The pattern sets are core/subject indexes, so a subject is matched exactly as
// the router matches it: '*' and '>' tokens in the checked subject are literal
// tokens that meet only wildcard entries (spec §7.1, §14.2).
type Checker struct {
	pubRestricted bool      // any publish rule at all (else CanPublish is always true)
	pubAllowList  bool      // an allow list is in force (possibly empty)
	pubAllow      *patterns // nil when the allow list is empty: nothing is allowed
	pubDeny       *patterns // nil: no deny list

	subAllow *patterns // plain and queue-qualified entries; nil: no allow list
	subDeny  *patterns // plain deny entries
	subQDeny *patterns // queue-qualified deny entries

	resp *ResponsePermission // normalised copy; nil: off
}

// Compile validates p and builds its Checker. A nil p, or one that restricts
// nothing, gives a nil Checker (everything allowed). Errors wrap
// ErrInvalidPermission and name every bad entry. Compile does not modify p.
//
// When p.AllowResponses is set and p has no publish allow list, the Checker
// gets an empty one: the user may then publish only to the reply subjects its
// Responses records (spec §14.4).
//
// Each non-empty list becomes a core/subject index (about 8.5 KB with its
// match cache), so share one *Permissions between users where possible: New
// compiles each distinct pointer once.
func Compile(p *Permissions) (*Checker, error) {
	if p == nil {
		return nil, nil
	}
	c := new(Checker)
	var errs []error
	if pub := p.Publish; pub != nil {
		if pub.Allow != nil {
			c.pubAllowList = true
			c.pubAllow = buildPublish(pub.Allow, "publish allow", &errs)
		}
		c.pubDeny = buildPublish(pub.Deny, "publish deny", &errs)
	}
	if r := p.AllowResponses; r != nil {
		n := *r
		if n.MaxMsgs == 0 {
			n.MaxMsgs = DefaultResponseMaxMsgs
		}
		if n.Expires == 0 {
			n.Expires = DefaultResponseExpires
		}
		c.resp = &n
		c.pubAllowList = true // an absent allow list becomes an empty one
	}
	c.pubRestricted = c.pubAllowList || c.pubDeny != nil
	if sub := p.Subscribe; sub != nil {
		c.subAllow, _ = buildSubscribe(sub.Allow, "subscribe allow", true, &errs)
		c.subDeny, c.subQDeny = buildSubscribe(sub.Deny, "subscribe deny", false, &errs)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if !c.pubRestricted && c.subAllow == nil && !c.HasDenies() && c.resp == nil {
		return nil, nil
	}
	return c, nil
}

// buildPublish returns the set of entries, nil for none.
func buildPublish(entries []string, what string, errs *[]error) *patterns {
	if len(entries) == 0 {
		return nil
	}
	set := subject.NewIndex[struct{}]()
	for _, e := range entries {
		if !subject.ValidSubject(e) {
			*errs = append(*errs, fmt.Errorf("%w: %s %q: not a valid subject", ErrInvalidPermission, what, e))
			continue
		}
		_ = set.Insert(e, "", struct{}{}) // cannot fail: validated above
	}
	return set
}

// buildSubscribe parses "subject" and "subject queue" entries. With together,
// both kinds go into the first set (allow lists need plain and queue entries
// matched at once); otherwise plain entries go into the first set and
// queue-qualified ones into the second. Empty sets are nil.
func buildSubscribe(entries []string, what string, together bool, errs *[]error) (plain, queued *patterns) {
	for _, e := range entries {
		subj, queue, ok := splitEntry(e)
		if !ok || !subject.ValidSubject(subj) {
			*errs = append(*errs, fmt.Errorf("%w: %s %q: want a valid subject, optionally followed by a queue name", ErrInvalidPermission, what, e))
			continue
		}
		set := &plain
		if queue != "" && !together {
			set = &queued
		}
		if *set == nil {
			*set = subject.NewIndex[struct{}]()
		}
		_ = (*set).Insert(subj, queue, struct{}{}) // cannot fail: validated above
	}
	return plain, queued
}

// splitEntry splits "subject" or "subject queue" (any whitespace between).
func splitEntry(e string) (subj, queue string, ok bool) {
	f := strings.Fields(e)
	switch len(f) {
	case 1:
		return f[0], "", true
	case 2:
		return f[0], f[1], true
	}
	return "", "", false
}

// CanPublish reports whether a message may be published to subj: it must match
// the allow list (if there is one) and must not match the deny list. It does
// not consult response permissions (see Responses) and does not allocate.
// Connections should ask their PubCache, which remembers the answers.
//
// It walks the pattern sets under their read locks (HasInterest) rather than
// filling their match caches: it is called on PubCache misses, which are
// mostly subjects never seen before, and a cache fill would cost allocations
// and evict the entries of other subjects.
func (c *Checker) CanPublish(subj []byte) bool {
	if c == nil || !c.pubRestricted {
		return true
	}
	if c.pubAllowList && (c.pubAllow == nil || !c.pubAllow.HasInterest(subj)) {
		return false
	}
	return c.pubDeny == nil || !c.pubDeny.HasInterest(subj)
}

// restrictsPublish reports whether CanPublish can ever return false.
func (c *Checker) restrictsPublish() bool { return c != nil && c.pubRestricted }

// CanSubscribe reports whether a subscription to subj in queue group queue
// (empty for a plain subscription) is allowed (spec §14.2):
//
//   - subj is matched against the allow entries as if it were published, its
//     '*' and '>' tokens being literal tokens: SUB foo.* is allowed by foo.*,
//     foo.> or >, not by foo.bar (and, as in the reference server, SUB sub.>
//     is allowed by sub.*);
//   - a plain subscription needs a matching plain allow entry; a queue
//     subscription needs, when any queue-qualified allow entry matches subj,
//     its queue to match one of those entries, else any matching plain entry;
//   - then a matching plain deny entry rejects, and a matching queue-qualified
//     deny entry rejects subscriptions in that queue.
//
// It is called at SUB time, not per message.
func (c *Checker) CanSubscribe(subj, queue []byte) bool {
	if c == nil {
		return true
	}
	if c.subAllow != nil {
		r := c.subAllow.Match(subj)
		ok := len(r.Plain) > 0
		if len(queue) > 0 && len(r.Queues) > 0 {
			ok = queueIn(queue, r.Queues)
		}
		if !ok {
			return false
		}
	}
	return !c.denied(subj, queue)
}

// denied reports whether subj (for a subscription in queue) matches a deny
// entry. It runs per delivered message, so it uses HasInterest, which never
// allocates (and never fills the match cache: subjects delivered to a wildcard
// subscription are often unique); only a subj that a queue-qualified entry
// matches goes on to a Match for the queue names.
func (c *Checker) denied(subj, queue []byte) bool {
	if c.subDeny != nil && c.subDeny.HasInterest(subj) {
		return true
	}
	if len(queue) == 0 || c.subQDeny == nil || !c.subQDeny.HasInterest(subj) {
		return false
	}
	return queueIn(queue, c.subQDeny.Match(subj).Queues)
}

// HasDenies reports whether the checker has subscribe deny entries, that is
// whether DenySubscribeDelivery can ever return true.
func (c *Checker) HasDenies() bool {
	return c != nil && (c.subDeny != nil || c.subQDeny != nil)
}

// FilterDelivery reports whether messages for a subscription to subj, once
// allowed by CanSubscribe, must be passed through DenySubscribeDelivery: only
// when the checker has subscribe denies and subj has wildcards. (A literal
// subscription receives only subj itself, which CanSubscribe already checked
// against the very same deny entries.) Call it once at SUB time and keep the
// answer with the subscription.
func (c *Checker) FilterDelivery(subj string) bool {
	return c.HasDenies() && !subject.IsLiteral(subj)
}

// DenySubscribeDelivery reports whether a message on subj must not be
// delivered to a subscription in queue group queue (empty for plain) of this
// user, because subj matches a subscribe deny entry (spec §14.3): a plain
// entry for any subscription, a queue-qualified one for subscriptions in a
// matching queue. The message is dropped silently. A nil checker, or one
// without denies, answers false at once; otherwise it is a short walk of the
// deny set under its read lock (about 100 ns for 10 deny patterns), without
// allocation unless a queue-qualified deny entry matches subj. Only wildcard
// subscriptions need it: see FilterDelivery.
func (c *Checker) DenySubscribeDelivery(subj, queue []byte) bool {
	return c.HasDenies() && c.denied(subj, queue)
}

// AllowResponses returns the response permission with defaults applied, or nil
// when responses are off. The result is shared: do not modify it.
func (c *Checker) AllowResponses() *ResponsePermission {
	if c == nil {
		return nil
	}
	return c.resp
}

// queueIn reports whether queue matches the name of one of groups: equal, or
// covered by a name with wildcard tokens.
func queueIn(queue []byte, groups []subject.QueueGroup[struct{}]) bool {
	for _, g := range groups {
		if string(queue) == g.Name || queueCovered(queue, g.Name) {
			return true
		}
	}
	return false
}

// queueCovered reports whether the queue name q is covered by the pattern p
// (a queue permission with wildcard tokens), treating both as '.'-separated
// tokens: a literal token must be equal, '*' covers any one token except '>',
// and a last '>' covers one or more remaining tokens (including '>'). A q that is itself
// wider than p ("v1.>" against "v1.*") is not covered. Empty tokens never
// match.
func queueCovered(q []byte, p string) bool {
	if !strings.ContainsAny(p, "*>") {
		return false // literal: only equality, checked by the caller
	}
	for {
		pt, prest, pmore := strings.Cut(p, ".")
		var qt []byte
		qmore := false
		if i := bytes.IndexByte(q, '.'); i >= 0 {
			qt, q, qmore = q[:i], q[i+1:], true
		} else {
			qt, q = q, nil
		}
		if len(qt) == 0 || pt == "" {
			return false
		}
		switch {
		case pt == ">" && !pmore:
			return noEmptyTokens(q, qmore)
		case pt == "*":
			if len(qt) == 1 && qt[0] == '>' {
				return false
			}
		case pt != string(qt):
			return false
		}
		if !pmore || !qmore {
			return !pmore && !qmore
		}
		p = prest
	}
}

// noEmptyTokens reports whether the tokens left after a '.' (more) are all
// non-empty.
func noEmptyTokens(rest []byte, more bool) bool {
	if !more {
		return true
	}
	return len(rest) > 0 && rest[0] != '.' && rest[len(rest)-1] != '.' &&
		!bytes.Contains(rest, []byte(".."))
}
