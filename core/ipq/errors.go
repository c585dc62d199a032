package ipq

import "errors"

// ErrFull is returned by Push when the queue holds its limit of items. The
// producer is too far ahead of the consumer; the item was not queued.
var ErrFull = errors.New("ipq: queue full")
