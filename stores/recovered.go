package stores

import (
	"cmp"
	"maps"
	"slices"
)

// NewRecoveredState assembles what Store.Recover returns, the same way for every store:
// clients copied (ConnID included) and sorted by ID, channels sorted by name, each with
// its subscriptions from its SubStore.
func NewRecoveredState(info ServerInfo, clients map[string]ClientInfo, channels []*Channel, deleted map[string]uint64) (*RecoveredState, error) {
	rs := &RecoveredState{Info: info, Deleted: maps.Clone(deleted)}
	for _, c := range clients {
		rs.Clients = append(rs.Clients, CloneClient(c))
	}
	slices.SortFunc(rs.Clients, func(a, b ClientInfo) int { return cmp.Compare(a.ID, b.ID) })
	for _, ch := range channels {
		subs, err := ch.Subs.Subs()
		if err != nil {
			return nil, err
		}
		rs.Channels = append(rs.Channels, &RecoveredChannel{Channel: ch, Subs: subs})
	}
	slices.SortFunc(rs.Channels, func(a, b *RecoveredChannel) int { return cmp.Compare(a.Channel.Name, b.Channel.Name) })
	return rs, nil
}

// CloneClient returns c with its own copy of ConnID, so stored state never aliases a
// caller's slice.
func CloneClient(c ClientInfo) ClientInfo {
	c.ConnID = slices.Clone(c.ConnID)
	return c
}
