package monitor

import (
	"strings"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/starling-io/starling/streaming"
)

// Collector exposes the streaming layer's figures to Prometheus: per server, per channel
// and per subscription. Like the JSON endpoints, it reads streaming.Server's monitoring
// snapshots (Serverz, Channels) when scraped and keeps nothing of its own, so the publish
// and delivery paths cost the same with it as without it. A scrape costs two snapshots on
// the engine goroutine, as /streaming/serverz and /streaming/channelsz?subs=1 would. When
// the engine cannot answer (busy, shut down) the series it owns have no sample in that
// scrape; the traffic counters, the histograms and the raft series do.
type Collector struct {
	s *streaming.Server

	info, clients, subscriptions, channels, storedMsgs, storedBytes *prometheus.Desc
	inMsgs, inBytes, outMsgs, outBytes                              *prometheus.Desc

	chMsgs, chBytes, chFirst, chLast, chSubs *prometheus.Desc

	subPending, subLastSent, subLag, subStalled, subOffline, subMaxInflight *prometheus.Desc

	raftLeader, raftTerm, raftLast, raftCommit, raftApplied, raftContact, leaderChanges *prometheus.Desc

	pubAckLatency, syncLatency *prometheus.Desc
}

// NewCollector returns the collector of s's figures.
func NewCollector(s *streaming.Server) *Collector {
	// A subscription is named by its client ID and inbox (unique among live subscriptions),
	// with its durable and queue names ("" when none) for grouping.
	channelLabels := []string{"channel"}
	subLabels := []string{"channel", "client_id", "inbox", "durable", "queue"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("starling_streaming_"+name, help, labels, nil)
	}
	return &Collector{
		s:             s,
		info:          d("info", "Always 1; the labels name the streaming server.", "cluster_id", "server_id", "state", "store"),
		clients:       d("clients", "Connected streaming clients."),
		subscriptions: d("subscriptions", "Subscriptions, offline durables included."),
		channels:      d("channels", "Channels."),
		storedMsgs:    d("stored_messages", "Messages held in the store, all channels."),
		storedBytes:   d("stored_bytes", "Bytes of messages held in the store, all channels."),
		inMsgs:        d("received_messages_total", "Messages published to channels (stored)."),
		inBytes:       d("received_bytes_total", "Payload bytes published to channels (stored)."),
		outMsgs:       d("sent_messages_total", "Messages delivered to subscriptions, redeliveries included."),
		outBytes:      d("sent_bytes_total", "Payload bytes delivered to subscriptions, redeliveries included."),

		chMsgs:  d("channel_messages", "Messages held by the channel.", channelLabels...),
		chBytes: d("channel_bytes", "Bytes of messages held by the channel.", channelLabels...),
		chFirst: d("channel_first_sequence", "Sequence of the channel's first message held (last+1 when empty).", channelLabels...),
		chLast:  d("channel_last_sequence", "Sequence of the channel's last message.", channelLabels...),
		chSubs:  d("channel_subscriptions", "Subscriptions on the channel, offline durables included.", channelLabels...),

		subPending: d("subscription_pending_messages",
			"Messages sent to the subscription and not acknowledged yet.", subLabels...),
		subLastSent: d("subscription_last_sent_sequence",
			"Sequence of the last message sent to the subscription (to its queue group for a member).", subLabels...),
		subLag: d("subscription_lag_messages",
			"Messages held by the channel and not sent to the subscription yet: channel last sequence minus last sent (the queue group's, for a member).", subLabels...),
		subStalled: d("subscription_stalled",
			"1 while the subscription has max_inflight messages unacknowledged and gets no more.", subLabels...),
		subOffline: d("subscription_offline",
			"1 for a durable whose client is gone.", subLabels...),
		subMaxInflight: d("subscription_max_inflight",
			"The subscription's max_inflight: how many unacknowledged messages it may have.", subLabels...),

		raftLeader:  d("raft_leader", "1 while this node leads its raft group (clustered only).", "group", "node_id"),
		raftTerm:    d("raft_term", "The raft group's current term, as this node knows it.", "group", "node_id"),
		raftLast:    d("raft_last_log_index", "Index of the last entry in this node's raft log.", "group", "node_id"),
		raftCommit:  d("raft_commit_index", "Index of the last entry this node knows committed.", "group", "node_id"),
		raftApplied: d("raft_applied_index", "Index of the last entry this node applied.", "group", "node_id"),
		raftContact: d("raft_last_contact_seconds",
			"On a follower, how long ago it last heard from its leader: past the heartbeat timeout it starts an election.", "group", "node_id"),
		leaderChanges: d("leader_changes_total", "Times this server's streaming engine gained or lost leadership."),
		pubAckLatency: d("puback_latency_seconds",
			"From a publish batch's proposal to its PubAcks: the store's sync (standalone) or the log's commit (replicated); one event per PubAck."),
		syncLatency: d("store_sync_seconds", "One pass of the file or bolt store's fsyncs (the group commit)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.clients, c.subscriptions, c.channels, c.storedMsgs,
		c.storedBytes, c.inMsgs, c.inBytes, c.outMsgs, c.outBytes, c.chMsgs, c.chBytes, c.chFirst, c.chLast,
		c.chSubs, c.subPending, c.subLastSent, c.subLag, c.subStalled, c.subOffline, c.subMaxInflight,
		c.raftLeader, c.raftTerm, c.raftLast, c.raftCommit, c.raftApplied, c.raftContact, c.leaderChanges, c.pubAckLatency, c.syncLatency} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	counter := func(d *prometheus.Desc, x float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, x)
	}
	// Figures the engine could not be asked for (busy, shut down) have no sample in this
	// scrape: a zero would read as a server that lost everything, and as counters reset.
	z, snapErr := c.s.ServerzErr()
	gauge(c.info, 1, z.ClusterID, z.ServerID, z.State, c.s.StoreType())
	// The replicated state (clients, channels, subscriptions) is exported by the node that
	// serves it: every node holds a copy, and a dashboard that sums over a cluster's nodes
	// must count it once. A follower's copy is in its /streaming/channelsz.
	st, clustered := c.s.RaftStats()
	follower := clustered && st.Role != raft.Leader
	if !follower && snapErr == nil {
		gauge(c.clients, float64(z.Clients))
		gauge(c.subscriptions, float64(z.Subscriptions))
		gauge(c.channels, float64(z.Channels))
		gauge(c.storedMsgs, float64(z.TotalMsgs))
		gauge(c.storedBytes, float64(z.TotalBytes))
	}
	counter(c.inMsgs, float64(z.InMsgs))
	counter(c.inBytes, float64(z.InBytes))
	counter(c.outMsgs, float64(z.OutMsgs))
	counter(c.outBytes, float64(z.OutBytes))
	counter(c.leaderChanges, float64(c.s.LeaderChanges()))
	lat := c.s.Latencies()
	for _, h := range []struct {
		d *prometheus.Desc
		h streaming.Histogram
	}{{c.pubAckLatency, lat.PubAck}, {c.syncLatency, lat.StoreSync}} {
		buckets := make(map[float64]uint64, len(h.h.Bounds))
		for i, b := range h.h.Bounds {
			buckets[b] = h.h.Cumulative[i]
		}
		ch <- prometheus.MustNewConstHistogram(h.d, h.h.Count, h.h.Sum, buckets)
	}
	if clustered {
		ids := []string{st.Group, st.NodeID}
		gauge(c.raftLeader, flag(st.Role == raft.Leader), ids...)
		gauge(c.raftTerm, float64(st.Term), ids...)
		gauge(c.raftLast, float64(st.LastLogIndex), ids...)
		gauge(c.raftCommit, float64(st.CommitIndex), ids...)
		gauge(c.raftApplied, float64(st.AppliedIndex), ids...)
		if st.Role != raft.Leader && st.LastContact >= 0 {
			gauge(c.raftContact, st.LastContact.Seconds(), ids...)
		}
	}

	if follower || snapErr != nil {
		return
	}
	chans, err := c.s.ChannelsErr(true)
	if err != nil {
		return
	}
	type subKey struct{ client, inbox, durable, queue string }
	for _, chz := range chans {
		name := labelValue(chz.Name)
		gauge(c.chMsgs, float64(chz.Msgs), name)
		gauge(c.chBytes, float64(chz.Bytes), name)
		gauge(c.chFirst, float64(chz.FirstSeq), name)
		gauge(c.chLast, float64(chz.LastSeq), name)
		gauge(c.chSubs, float64(chz.SubsCount), name)
		seen := make(map[subKey]bool, len(chz.Subscriptions))
		for _, sz := range chz.Subscriptions {
			k := subKey{sz.ClientID, sz.Inbox, sz.DurableName, sz.QueueName}
			if seen[k] { // one series per label set: a registry refuses the scrape otherwise
				continue
			}
			seen[k] = true
			labels := []string{name, labelValue(k.client), labelValue(k.inbox), labelValue(k.durable), labelValue(k.queue)}
			gauge(c.subPending, float64(sz.PendingCount), labels...)
			gauge(c.subLastSent, float64(sz.LastSent), labels...)
			gauge(c.subLag, float64(lag(chz, sz)), labels...)
			gauge(c.subStalled, flag(sz.IsStalled), labels...)
			gauge(c.subOffline, flag(sz.IsOffline), labels...)
			gauge(c.subMaxInflight, float64(sz.MaxInflight), labels...)
		}
	}
}

// lag is how many messages the channel holds past the subscription's last sent one.
// Messages gone from the channel (limits) cannot be sent any more: it counts from the
// first one held.
func lag(ch *streaming.Channelz, sub *streaming.Subscriptionz) uint64 {
	if ch.FirstSeq == 0 { // never had a message
		return 0
	}
	from := max(sub.LastSent, ch.FirstSeq-1)
	if ch.LastSeq <= from {
		return 0
	}
	return ch.LastSeq - from
}

// labelValue is a client-chosen name as a label value, which must be UTF-8 (the collector
// would panic): a channel name is the publisher's bytes, so invalid ones become U+FFFD.
// Two channels cannot differ only there: names that differ only in case (as the invalid
// bytes compare) are refused.
func labelValue(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
