package stores

// NewChannel is one channel for CreateChannels: CreateChannelAfter's arguments.
type NewChannel struct {
	Name  string
	ID    uint64
	After uint64
}

// ChannelsCreator is implemented by a Store that creates several channels for about the cost
// of one: one commit, one round of fsyncs.
type ChannelsCreator interface {
	// CreateChannels creates each channel of cs as CreateChannelAfter would, in order — a
	// name created earlier in cs exists (ErrExists) and counts against MaxChannels — and
	// makes them durable together before it returns. It returns, for each of cs, the
	// channel or the error that refused it: a refusal of one name refuses only it; a failed
	// commit refuses every channel it would have made durable.
	CreateChannels(cs []NewChannel) ([]*Channel, []error)
}

// CreateChannels creates cs in st: with one call if st implements ChannelsCreator, else one
// CreateChannelAfter after another.
func CreateChannels(st Store, cs []NewChannel) ([]*Channel, []error) {
	if bc, ok := st.(ChannelsCreator); ok {
		return bc.CreateChannels(cs)
	}
	out, errs := make([]*Channel, len(cs)), make([]error, len(cs))
	for i, c := range cs {
		out[i], errs[i] = st.CreateChannelAfter(c.Name, c.ID, c.After)
	}
	return out, errs
}

// ChannelsDeleter is implemented by a Store that deletes several channels for about the cost
// of one: one commit, one round of fsyncs.
type ChannelsDeleter interface {
	// DeleteChannels deletes each named channel as DeleteChannel would, in order (a name
	// deleted earlier in names is not found), durable together before it returns. It
	// returns each one's error: a failed commit fails every deletion it would have made
	// durable, and leaves those channels as they were.
	DeleteChannels(names []string) []error
}

// DeleteChannels deletes names from st: with one call if st implements ChannelsDeleter,
// else one DeleteChannel after another.
func DeleteChannels(st Store, names []string) []error {
	if d, ok := st.(ChannelsDeleter); ok {
		return d.DeleteChannels(names)
	}
	errs := make([]error, len(names))
	for i, n := range names {
		errs[i] = st.DeleteChannel(n)
	}
	return errs
}
