package core

import (
	"fmt"
	"time"

	"github.com/starling-io/starling/core/subject"
)

// Accountz is /accountz (and the ACCOUNTZ system request), in nats-server's shape.
type Accountz struct {
	ID            string       `json:"server_id"`
	Now           time.Time    `json:"now"`
	SystemAccount string       `json:"system_account,omitempty"`
	Accounts      []string     `json:"accounts,omitempty"`
	Account       *AccountInfo `json:"account_detail,omitempty"`
}

// AccountInfo describes one account.
type AccountInfo struct {
	AccountName string        `json:"account_name"`
	UpdateTime  time.Time     `json:"update_time"` // when it was configured: at start (a reload cannot change accounts)
	IsSystem    bool          `json:"is_system,omitempty"`
	Expired     bool          `json:"expired"`
	Complete    bool          `json:"complete"`
	JetStream   bool          `json:"jetstream_enabled"`
	LeafCnt     int           `json:"leafnode_connections"`
	ClientCnt   int           `json:"client_connections"`
	SubCnt      uint32        `json:"subscriptions"`
	Exports     []ExportInfo  `json:"exports,omitempty"`
	Imports     []ImportInfo  `json:"imports,omitempty"`
	NameTag     string        `json:"name_tag,omitempty"` // the name: no JWT gives another (prometheus-nats-exporter's account_name label)
	Sublist     *SublistStats `json:"sublist_stats,omitempty"`
}

// SublistStats is subject index statistics: an account's in /accountz, at /subsz's top level.
type SublistStats struct {
	NumSubs      uint32  `json:"num_subscriptions"`
	NumCache     uint32  `json:"num_cache"`
	NumInserts   uint64  `json:"num_inserts"`
	NumRemoves   uint64  `json:"num_removes"`
	NumMatches   uint64  `json:"num_matches"`
	CacheHitRate float64 `json:"cache_hit_rate"`
	MaxFanout    uint32  `json:"max_fanout"`
	AvgFanout    float64 `json:"avg_fanout"`
}

// sublistStats is st as the monitoring endpoints show it.
func sublistStats(st subject.Stats) SublistStats {
	return SublistStats{NumSubs: uint32(st.NumSubs), NumCache: uint32(st.NumCache), NumInserts: st.NumInserts,
		NumRemoves: st.NumRemoves, NumMatches: st.NumMatches, CacheHitRate: st.CacheHitRate, MaxFanout: st.MaxFanout, AvgFanout: st.AvgFanout}
}

// ExportInfo is one export in AccountInfo.
type ExportInfo struct {
	Subject      string   `json:"subject"`
	Type         string   `json:"type"` // stream or service
	Accounts     []string `json:"approved_accounts,omitempty"`
	ResponseType string   `json:"response_type,omitempty"`
}

// ImportInfo is one import in AccountInfo: Subject is the exporter's, LocalSubject the
// importer's; a service's To repeats LocalSubject (nats-server's deprecated field). Starling
// has no invalid imports (the configuration is refused), shared requester information nor
// latency tracking: those are always false.
type ImportInfo struct {
	Subject      string `json:"subject"`
	Type         string `json:"type"`
	Account      string `json:"account"`
	To           string `json:"to,omitempty"`
	LocalSubject string `json:"local_subject"`
	Invalid      bool   `json:"invalid"`
	Share        bool   `json:"share"`
	Tracking     bool   `json:"tracking"`
}

// Accountz lists the accounts, or describes the one named (an unknown name wraps
// ErrBadRequest).
func (s *Server) Accountz(name string) (*Accountz, error) {
	az := &Accountz{ID: s.id, Now: time.Now().UTC()}
	if s.sysAcc != nil {
		az.SystemAccount = s.sysAcc.name
	}
	if name == "" {
		az.Accounts = s.AccountNames()
		return az, nil
	}
	a := s.accountMap()[name]
	if a == nil {
		return nil, fmt.Errorf("%w: Account %s does not exist", ErrBadRequest, name)
	}
	ai := &AccountInfo{AccountName: a.name, UpdateTime: s.start.UTC(), IsSystem: a == s.sysAcc, Complete: true, SubCnt: uint32(a.subs.Count()),
		NameTag: a.name}
	ss := sublistStats(a.subs.Stats())
	ai.Sublist = &ss
	for _, ex := range a.cfg.Exports {
		ei := ExportInfo{Subject: ex.Subject, Type: kindName(ex.Service), Accounts: ex.Accounts}
		if ex.Service {
			ai.Exports = append(ai.Exports, ei)
			ai.Exports[len(ai.Exports)-1].ResponseType = responseTypeName(ex.Responses)
			continue
		}
		ai.Exports = append(ai.Exports, ei)
	}
	for _, im := range a.cfg.Imports {
		ii := ImportInfo{Subject: im.Subject, Type: kindName(im.Service), Account: im.Account, LocalSubject: im.local()}
		if im.Service {
			ii.To = ii.LocalSubject
		}
		ai.Imports = append(ai.Imports, ii)
	}
	s.mu.Lock()
	cls := s.clientList()
	s.mu.Unlock()
	for _, c := range cls {
		c.mu.Lock()
		if c.acc == a && c.kind == kindClient {
			ai.ClientCnt++
		}
		c.mu.Unlock()
	}
	az.Account = ai
	return az, nil
}

func kindName(service bool) string {
	if service {
		return "service"
	}
	return "stream"
}

// responseTypeName is a service export's response type as nats-server shows it.
func responseTypeName(r string) string {
	switch r {
	case ResponseStream:
		return "Streamed"
	case ResponseChunked:
		return "Chunked"
	}
	return "Singleton"
}
