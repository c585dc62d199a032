package stores

import "errors"

// Errors returned by stores. Stores return these sentinels, possibly wrapped with %w
// (compare with errors.Is).
var (
	// ErrNotFound: Load of a sequence outside [First, Last] or already removed; or an
	// update/delete of an unknown subscription, client or channel.
	ErrNotFound = errors.New("stores: not found")

	// ErrClosed: the store (or this channel's store) has been closed.
	ErrClosed = errors.New("stores: store closed")

	// ErrTooManyChannels: CreateChannel would exceed MaxChannels. The text is the exact
	// error string the streaming protocol returns to clients.
	ErrTooManyChannels = errors.New("too many channels")

	// ErrTooManySubs: CreateSub would exceed the channel's MaxSubs. The text is the exact
	// error string the streaming protocol returns to clients.
	ErrTooManySubs = errors.New("too many subscriptions per channel")

	// ErrExists: CreateChannel of a channel that exists, or CreateSub with an ID in use.
	ErrExists = errors.New("stores: already exists")

	// ErrBadSequence: an Append batch does not continue the channel (batch[0].Seq must be
	// Last+1, or any sequence after Last when the channel holds no message) or its
	// sequences are not contiguous. Nothing of the batch is stored.
	ErrBadSequence = errors.New("stores: sequence does not continue the channel")

	// ErrBadTime: an Append batch has a time before its predecessor's (in the batch or the
	// newest stored message). Nothing of the batch is stored.
	ErrBadTime = errors.New("stores: message time goes backwards")

	// ErrChannelDeleted: a MsgStore or SubStore used after DeleteChannel removed its
	// channel.
	ErrChannelDeleted = errors.New("stores: channel deleted")

	// ErrInvalidLimits: LimitsSet.Validate found a negative global limit, a malformed
	// per-channel name or more literal per-channel entries than MaxChannels.
	ErrInvalidLimits = errors.New("stores: invalid limits")

	// ErrDeletedUncleaned: DeleteChannel deleted the channel durably, but removing its files
	// failed; the store removes them at its next Open. The deletion itself succeeded.
	ErrDeletedUncleaned = errors.New("stores: channel deleted, but removing its files failed")

	// ErrImportUnfinished: the store's directory holds ImportMarker (CheckImportMarker).
	ErrImportUnfinished = errors.New("stores: an import into the directory has not finished")
)
