package core

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/starling-io/starling/core/subject"
)

// ConnzOptions are /connz's query parameters.
type ConnzOptions struct {
	Sort       string // cid (default), start, subs, pending, msgs_to, msgs_from, bytes_to, bytes_from, last, idle, uptime, stop, reason, rtt
	Subs       bool   // include subscriptions_list
	SubsDetail bool   // include subscriptions_list_detail
	Offset     int
	Limit      int    // <= 0: 1024
	CID        uint64 // only this connection
	Auth       bool   // include authorized_user (never a credential)
	State      string // open (default), closed, any/all
	Account    string // only connections of this account
	User       string // only connections of this user
	Filter     string // with Account: only connections with interest in this subject
}

// Connz is /connz.
type Connz struct {
	ID       string      `json:"server_id"`
	Now      time.Time   `json:"now"`
	NumConns int         `json:"num_connections"`
	Total    int         `json:"total"`
	Offset   int         `json:"offset"`
	Limit    int         `json:"limit"`
	Conns    []*ConnInfo `json:"connections"`
}

// ConnInfo describes one connection.
type ConnInfo struct {
	Cid            uint64      `json:"cid"`
	Kind           string      `json:"kind,omitempty"`
	Type           string      `json:"type,omitempty"`
	IP             string      `json:"ip"`
	Port           int         `json:"port"`
	Start          time.Time   `json:"start"`
	LastActivity   time.Time   `json:"last_activity"`
	Stop           *time.Time  `json:"stop,omitempty"`
	Reason         string      `json:"reason,omitempty"`
	RTT            string      `json:"rtt,omitempty"`
	Uptime         string      `json:"uptime"`
	Idle           string      `json:"idle"`
	Pending        int         `json:"pending_bytes"`
	InMsgs         int64       `json:"in_msgs"`
	OutMsgs        int64       `json:"out_msgs"`
	InBytes        int64       `json:"in_bytes"`
	OutBytes       int64       `json:"out_bytes"`
	NumSubs        uint32      `json:"subscriptions"`
	Name           string      `json:"name,omitempty"`
	Lang           string      `json:"lang,omitempty"`
	Version        string      `json:"version,omitempty"`
	TLSVersion     string      `json:"tls_version,omitempty"`
	TLSCipher      string      `json:"tls_cipher_suite,omitempty"`
	AuthorizedUser string      `json:"authorized_user,omitempty"`
	Account        string      `json:"account,omitempty"`
	Subs           []string    `json:"subscriptions_list,omitempty"`
	SubsDetail     []SubDetail `json:"subscriptions_list_detail,omitempty"`
	NameTag        string      `json:"name_tag,omitempty"`
	rtt            time.Duration
	up             time.Duration // how long it was open: until now, or until its stop
	acc            string        // the account's name, for acc=NAME (Account is shown with auth only)
}

// SubDetail describes one subscription (in /connz and /subsz).
type SubDetail struct {
	Account    string `json:"account,omitempty"`
	AccountTag string `json:"account_tag,omitempty"` // in /subsz: the account's name tag (no JWT: its name)
	Subject    string `json:"subject"`
	Queue      string `json:"qgroup,omitempty"`
	Sid        string `json:"sid"`
	Msgs       int64  `json:"msgs"`
	Max        int64  `json:"max,omitempty"`
	Cid        uint64 `json:"cid"`
}

// ErrBadRequest wraps invalid monitoring query parameters (HTTP 400).
var ErrBadRequest = errors.New("bad request")

// connInfo snapshots a client. Safe from any goroutine.
func (c *client) connInfo(o ConnzOptions, now time.Time) *ConnInfo {
	ci := &ConnInfo{
		Cid: c.cid, Kind: "Client", Type: "nats", IP: c.ip, Port: c.port,
		Start: c.start.UTC(), LastActivity: time.Unix(0, c.lastAct.Load()).UTC(),
		InMsgs: c.stats.inMsgs.Load(), OutMsgs: c.stats.outMsgs.Load(),
		InBytes: c.stats.inBytes.Load(), OutBytes: c.stats.outBytes.Load(),
	}
	c.mu.Lock()
	ci.NameTag, ci.acc = c.acc.name, c.acc.name
	if o.Auth && c.acc.name != GlobalAccount { // as nats-server: the global account goes unnamed
		ci.Account = c.acc.name
	}
	ci.Pending = c.out.pending()
	ci.NumSubs = uint32(len(c.subs))
	ci.Name, ci.Lang, ci.Version = c.name, c.lang, c.version
	if st := c.tlsState; st != nil {
		ci.TLSVersion = tlsVersion(st.Version)
		ci.TLSCipher = tls.CipherSuiteName(st.CipherSuite)
	}
	if o.Auth && c.ident != nil {
		ci.AuthorizedUser = c.ident.Shown()
	}
	if c.rtt > 0 {
		ci.rtt = c.rtt
		ci.RTT = c.rtt.String()
	}
	end := now
	if c.closed {
		stop := c.stop.UTC()
		ci.Stop, ci.Reason = &stop, c.reason
		end = c.stop
	}
	if o.Subs || o.SubsDetail {
		for _, sub := range c.subs {
			if o.SubsDetail {
				d := sub.detail()
				d.Account = "" // as nats-server: under a connection, whose account auth=1 alone names
				ci.SubsDetail = append(ci.SubsDetail, d)
			} else {
				ci.Subs = append(ci.Subs, sub.subject)
			}
		}
	}
	c.mu.Unlock()
	ci.up = end.Sub(c.start)
	ci.Uptime = compactDuration(ci.up)
	ci.Idle = compactDuration(end.Sub(ci.LastActivity))
	return ci
}

// interestedIn reports whether one of c's subscriptions matches a subject that filter
// matches (the filter_subject of a CONNZ system request; /connz has none, as in nats-server).
func (c *client) interestedIn(filter string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sub := range c.subs {
		if subject.Overlap(filter, sub.subject) {
			return true
		}
	}
	return false
}

// tlsVersion names a TLS version as nats-server's /connz does: "1.2", "1.3" (Go's names
// without their "TLS " prefix).
func tlsVersion(v uint16) string {
	if name, ok := strings.CutPrefix(tls.VersionName(v), "TLS "); ok {
		return name
	}
	return fmt.Sprintf("Unknown [0x%x]", v)
}

// asRequested returns a copy of a closed connection's ConnInfo, recorded with all of its
// details, with those o asks for: subscriptions only with subs (subjects) or subs=detail,
// the user and account (and its name tag) only with auth.
func (ci *ConnInfo) asRequested(o ConnzOptions) *ConnInfo {
	cp := *ci
	cp.Subs, cp.SubsDetail = nil, nil
	switch {
	case o.SubsDetail:
		cp.SubsDetail = ci.SubsDetail
	case o.Subs:
		for _, sd := range ci.SubsDetail {
			cp.Subs = append(cp.Subs, sd.Subject)
		}
	}
	if !o.Auth {
		cp.AuthorizedUser, cp.Account, cp.NameTag = "", "", ""
	}
	return &cp
}

func (sub *subscription) detail() SubDetail {
	return SubDetail{Account: sub.acc.name, Subject: sub.subject, Queue: sub.queue, Sid: sub.sid,
		Msgs: sub.delivered.Load(), Max: sub.max.Load(), Cid: sub.client.cid}
}

// closedRing keeps the most recent closed connections for /connz?state=closed.
type closedRing struct {
	max   int
	items []*ConnInfo
	next  int
}

func (r *closedRing) add(ci *ConnInfo) {
	if len(r.items) < r.max {
		r.items = append(r.items, ci)
		return
	}
	r.items[r.next] = ci
	r.next = (r.next + 1) % r.max
}

// Connz returns connection details; an invalid option wraps ErrBadRequest.
func (s *Server) Connz(o ConnzOptions) (*Connz, error) {
	if o.Sort == "" {
		o.Sort = "cid"
	}
	if o.State == "" {
		o.State = "open"
	}
	if o.Limit <= 0 {
		o.Limit = 1024
	}
	if o.Offset < 0 {
		o.Offset = 0
	}
	less, ok := connzSorts[o.Sort]
	if !ok {
		return nil, fmt.Errorf("%w: invalid sorting option: %s", ErrBadRequest, o.Sort)
	}
	switch state := strings.ToLower(o.State); state { // any case, as nats-server reads it
	case "open", "closed", "any", "all":
		o.State = state
	default:
		return nil, fmt.Errorf("%w: Error decoding state for %s", ErrBadRequest, o.State)
	}
	if (o.Sort == "stop" || o.Sort == "reason") && o.State != "closed" {
		return nil, fmt.Errorf("%w: sort by %s only valid on closed connections", ErrBadRequest, o.Sort)
	}
	if o.Filter == ">" {
		o.Filter = ""
	}
	if o.Filter != "" && o.Account == "" {
		return nil, fmt.Errorf("%w: filter by subject only valid with account filtering", ErrBadRequest)
	}
	now := time.Now()
	s.mu.Lock()
	var open []*client
	if o.State != "closed" {
		open = s.clientList()
	}
	var closed []*ConnInfo
	if o.State != "open" {
		closed = append(closed, s.closed.items...)
	}
	s.mu.Unlock()

	all := make([]*ConnInfo, 0, len(open)+len(closed))
	keep := func(ci *ConnInfo) bool {
		return (o.CID == 0 || ci.Cid == o.CID) && (o.Account == "" || ci.acc == o.Account) &&
			(o.User == "" || ci.AuthorizedUser == o.User)
	}
	withUser := o
	withUser.Auth = o.Auth || o.User != ""
	for _, c := range open {
		if c.kind == kindInternal || (o.CID != 0 && c.cid != o.CID) { // in-process: no client connection
			continue
		}
		if o.Filter != "" && !c.interestedIn(o.Filter) {
			continue
		}
		if ci := c.connInfo(withUser, now); keep(ci) {
			if !o.Auth { // the account's name tag too, as nats-server
				ci.AuthorizedUser, ci.Account, ci.NameTag = "", "", ""
			}
			all = append(all, ci)
		}
	}
	for _, ci := range closed {
		if keep(ci) {
			all = append(all, ci.asRequested(o))
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return less(all[i], all[j]) })
	cz := &Connz{ID: s.id, Now: now.UTC(), Total: len(all), Offset: o.Offset, Limit: o.Limit}
	if o.CID != 0 {
		cz.Limit = 1
	}
	lo := min(o.Offset, len(all))
	hi := lo + min(cz.Limit, len(all)-lo) // lo+limit could overflow
	cz.Conns = all[lo:hi]
	cz.NumConns = len(cz.Conns)
	return cz, nil
}

var connzSorts = map[string]func(a, b *ConnInfo) bool{
	"cid":        func(a, b *ConnInfo) bool { return a.Cid < b.Cid },
	"start":      func(a, b *ConnInfo) bool { return a.Start.Before(b.Start) },
	"subs":       func(a, b *ConnInfo) bool { return a.NumSubs > b.NumSubs },
	"pending":    func(a, b *ConnInfo) bool { return a.Pending > b.Pending },
	"msgs_to":    func(a, b *ConnInfo) bool { return a.OutMsgs > b.OutMsgs },
	"msgs_from":  func(a, b *ConnInfo) bool { return a.InMsgs > b.InMsgs },
	"bytes_to":   func(a, b *ConnInfo) bool { return a.OutBytes > b.OutBytes },
	"bytes_from": func(a, b *ConnInfo) bool { return a.InBytes > b.InBytes },
	"last":       func(a, b *ConnInfo) bool { return a.LastActivity.After(b.LastActivity) },
	"idle":       func(a, b *ConnInfo) bool { return a.LastActivity.Before(b.LastActivity) },
	"uptime":     func(a, b *ConnInfo) bool { return a.up < b.up }, // the newest first, as nats-server's
	"stop":       func(a, b *ConnInfo) bool { return a.Stop != nil && b.Stop != nil && a.Stop.After(*b.Stop) },
	"reason":     func(a, b *ConnInfo) bool { return a.Reason < b.Reason }, // A to Z, as nats-server's
	"rtt":        func(a, b *ConnInfo) bool { return a.rtt > b.rtt },
}

// SubszOptions are /subsz's query parameters.
type SubszOptions struct {
	Subs    bool
	Offset  int
	Limit   int
	Test    string // a literal subject: list only subscriptions it would reach
	Account string // only this account's subscriptions ("": all)
}

// subStats adds up the index statistics of all accounts, or of the one named.
func (s *Server) subStats(account string) subject.Stats {
	var st subject.Stats
	var hits, matches float64
	for _, a := range s.accountMap() {
		if account != "" && a.name != account {
			continue
		}
		x := a.subs.Stats()
		st.NumSubs += x.NumSubs
		st.NumCache += x.NumCache
		st.NumInserts += x.NumInserts
		st.NumRemoves += x.NumRemoves
		st.NumMatches += x.NumMatches
		st.MaxFanout = max(st.MaxFanout, x.MaxFanout)
		hits += x.CacheHitRate * float64(x.NumMatches)
		matches += float64(x.NumMatches)
		if x.NumSubs > 0 && (st.AvgFanout == 0 || a == s.gacc) {
			st.AvgFanout = x.AvgFanout
		}
	}
	if matches > 0 {
		st.CacheHitRate = hits / matches
	}
	return st
}

// Subsz is /subsz: index statistics flattened to the top level.
type Subsz struct {
	ID  string    `json:"server_id"`
	Now time.Time `json:"now"`
	SublistStats
	Total  int         `json:"total"`
	Offset int         `json:"offset"`
	Limit  int         `json:"limit"`
	Subs   []SubDetail `json:"subscriptions_list,omitempty"`
}

// Subsz returns subscription statistics and optionally the subscriptions themselves.
func (s *Server) Subsz(o SubszOptions) (*Subsz, error) {
	if o.Limit <= 0 {
		o.Limit = 1024
	}
	if o.Offset < 0 {
		o.Offset = 0
	}
	sz := &Subsz{ID: s.id, Now: time.Now().UTC(), SublistStats: sublistStats(s.subStats(o.Account)),
		Offset: o.Offset, Limit: o.Limit}
	if o.Test != "" && !subject.ValidLiteral([]byte(o.Test)) {
		return nil, fmt.Errorf("%w: invalid test subject, must be valid publish subject: %s", ErrBadRequest, o.Test)
	}
	if !o.Subs {
		return sz, nil
	}
	var list []SubDetail
	for _, a := range s.accountMap() {
		if o.Account != "" && a.name != o.Account {
			continue
		}
		if o.Test != "" {
			r := a.subs.MatchString(o.Test)
			for _, sub := range r.Plain {
				list = append(list, sub.detail())
			}
			for _, q := range r.Queues {
				for _, sub := range q.Members {
					list = append(list, sub.detail())
				}
			}
			continue
		}
		a.subs.All(func(_, _ string, sub *subscription) bool {
			list = append(list, sub.detail())
			return true
		})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Cid != list[j].Cid {
			return list[i].Cid < list[j].Cid
		}
		return list[i].Sid < list[j].Sid
	})
	for i := range list {
		list[i].AccountTag = list[i].Account
	}
	sz.Total = len(list)
	lo := min(o.Offset, len(list))
	sz.Subs = list[lo : lo+min(o.Limit, len(list)-lo)] // lo+limit could overflow
	return sz, nil
}

// Healthz is /healthz.
type Healthz struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Healthz reports "ok" once the server accepts clients.
func (s *Server) Healthz() Healthz {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shutdown:
		return Healthz{Status: "error", Error: "server is shutting down"}
	case s.listener == nil && !s.ldm:
		return Healthz{Status: "error", Error: "server not ready for client connections"}
	}
	return Healthz{Status: "ok"}
}
