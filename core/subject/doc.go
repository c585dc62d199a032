// Package subject validates and matches NATS subjects and keeps the subscription
// index the router consults for every published message.
//
// A subject is one or more non-empty tokens separated by '.', with no
// whitespace. In a subscription, the token '*' matches exactly one token and
// '>' (last token only) matches one or more trailing tokens (core protocol
// spec §7).
//
// Validation: ValidSubject/ValidSubjectBytes (subscriptions), ValidLiteral
// (pedantic publish subjects), ValidQueue, IsLiteral. Matches decides whether
// one pattern matches one subject without an index (permissions, no-responders).
//
// Index[T] is a token trie generic in the subscriber type T. Match returns a
// *Result grouping matching subscriptions into plain subscribers and queue
// groups (by queue name, across patterns). Results are cached in a bounded,
// lock-free match cache; Insert and Remove invalidate only the cached subjects
// the changed pattern matches and bump Generation, which callers may use to
// validate their own per-client caches. See DESIGN.md for the concurrency
// argument.
//
// The package has no dependencies and no package-level mutable state.
package subject
