// Package auth decides who may connect to the router and what each client may
// publish and subscribe to (core protocol spec §13, §14). It knows nothing of
// connections or configuration files: plain option structs in, decisions out.
//
// Authentication: New validates Options (a users list of user/password and
// nkey users, or a single user, or a token, plus an optional NoAuthUser and
// DefaultPermissions) into an Authenticator whose configuration is immutable.
// At CONNECT the router calls CheckContext with the client's Credentials and
// the nonce it sent (NewNonce, when NeedsNonce), and gets the shared *Identity
// of the user or an error wrapping ErrAuthorization. Passwords and tokens may
// be bcrypt hashes; plain ones are compared in constant time. bcrypt checks are
// bounded (at most Options.BcryptConcurrency at once; CheckContext gives up
// waiting when its context ends) and recent answers are cached, so a password
// flood cannot take all the CPU.
//
// Authorization: an Identity carries its Permissions compiled into a Checker,
// shared by all connections of the user and safe for concurrent use; a nil
// *Checker allows everything. Per connection the router keeps
//
//   - a PubCache (owned by the connection's goroutine) so that an authorised
//     publish is one comparison with the last subject allowed, else one map
//     lookup, without allocation;
//   - a Responses (its own mutex) when Checker.AllowResponses is set: reply
//     subjects delivered to the connection that it may publish to a few times.
//
// The publish check is therefore
//
//	ok := pc.CanPublish(subj) || resp.Use(subj, now)
//
// (Responses is consulted only after a refusal, and its answers are never
// cached), and every delivery of a message with a reply subject to such a
// connection calls resp.Record(reply, now). Subscriptions are checked once with
// Checker.CanSubscribe; wildcard subscriptions of users with subscribe denies
// (Checker.FilterDelivery) have each message checked with
// DenySubscribeDelivery before delivery.
//
// Subjects are matched with core/subject indexes, exactly as the router
// matches subscriptions. The package has no package-level mutable state.
package auth
