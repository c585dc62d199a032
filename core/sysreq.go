package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// The system account answers nats-server's server requests, so that `nats server ping`,
// `list`, `info` and `report` work against Starling (and across a cluster: the request
// subscriptions are announced to routes, so every server answers):
//
//	$SYS.REQ.SERVER.PING                 statsz of every server (a ServerStatsMsg)
//	$SYS.REQ.SERVER.PING.<KIND>          KIND of every server, in a ServerAPIResponse
//	$SYS.REQ.SERVER.<server id>.<KIND>   KIND of one server
//
// KIND is STATSZ, VARZ, CONNZ, SUBSZ, ROUTEZ, GATEWAYZ, LEAFZ, JSZ, HEALTHZ, ACCOUNTZ or IDZ
// (LEAFZ, JSZ and RAFTZ in the empty forms of a nats-server without leaf nodes or
// JetStream; the streaming cluster's raft is not JetStream's, and not listed) or
// PROFILEZ (a runtime profile, sysprofile.go); the request
// body may hold the endpoint's options and nats-server's filter (server_name, cluster, host,
// exact_match). KICK ({"cid":N}) closes a client, on the server named only; LDM ({"cid":N})
// tells it (an INFO with ldm) to move to another server, as lame duck mode tells them all;
// RELOAD re-reads the configuration file (when the binary gave Options.ReloadConfig).
// Other accounts are separate subject spaces, so their users can neither send these
// requests nor see the answers; they have the account-level requests of sysacct.go.
//
// A request is handed from the publisher's goroutine to one goroutine (sysLoop) through a
// bounded channel: building a CONNZ must not stall a route's reader, and a flood of
// requests is dropped rather than queued without bound.

const sysReqPrefix = "$SYS.REQ.SERVER."

// sysKinds are the server requests answered both by PING and by server id.
var sysKinds = []string{"STATSZ", "VARZ", "CONNZ", "SUBSZ", "ROUTEZ", "GATEWAYZ", "LEAFZ", "JSZ", "RAFTZ", "HEALTHZ", "ACCOUNTZ", "IDZ", "PROFILEZ"}

// sysReqQueue bounds the system requests waiting for sysLoop.
const sysReqQueue = 256

type sysReq struct {
	subject, reply string
	data           []byte
	event          *sysEvent // instead of a request: an event to publish (sysevents.go)
	answer         []byte    // instead of a request: an answer made elsewhere, for reply
	acc            *account  // where the request was made, and the reply goes (nil: the system account)
	from           uint64    // cid of the requester (or of the route it came over)
}

// sysState is the system account's machinery; nil without a system account.
type sysState struct {
	reqs chan sysReq // events and the system account's requests
	// accReqs: the other accounts' requests (sysacct.go), queued apart: their users'
	// flood fills only this queue, never drops an event or an operator's request.
	accReqs      chan sysReq
	seq          atomic.Uint64 // ServerInfo.seq
	dropped      atomic.Int64
	shutdownSent atomic.Bool

	statszEvery, connsEvery time.Duration // the longest STATSZ interval, the CONNS heartbeat
	// sysLoop's own: the CONNS events' traffic counters and when they were counted.
	traffic   map[*account]*sysAccStat
	trafficAt time.Time
}

// setupSystem picks the system account (Options.SystemAccount, else $SYS when accounts are
// configured and not NoSystemAccount; created if no account of that name is configured) and
// subscribes it to the server requests. (The binary names $SYS even without accounts, as
// nats-server has it.)
func (s *Server) setupSystem(o *Options) error {
	name := o.SystemAccount
	if name == "" {
		if len(o.Accounts) == 0 || o.NoSystemAccount {
			return nil
		}
		name = DefaultSystemAccount
	}
	a := s.accountMap()[name]
	if a == nil {
		if name != DefaultSystemAccount {
			return errors.New("system_account " + name + " is not a configured account")
		}
		a = newAccount(s, name)
		a.cfg.Name = name
		s.accountMap()[name] = a // in New: nobody reads the set yet
	}
	s.sysAcc = a
	s.sys = &sysState{reqs: make(chan sysReq, sysReqQueue), accReqs: make(chan sysReq, sysReqQueue),
		statszEvery: statszEvery, connsEvery: accConnsEvery}
	// Each kind answered is its own subscription, as nats-server's: a kind nobody answers
	// (PING.KICK, which needs a server named, or one we lack) gets "no responders" at once
	// rather than a timeout.
	subjs := []string{sysReqPrefix + "PING", sysReqPrefix + s.id + ".KICK", sysReqPrefix + s.id + ".LDM"}
	if o.ReloadConfig != nil {
		subjs = append(subjs, sysReqPrefix+s.id+".RELOAD")
	}
	for _, kind := range sysKinds {
		subjs = append(subjs, sysReqPrefix+"PING."+kind, sysReqPrefix+s.id+"."+kind)
	}
	for _, subj := range subjs {
		sub := &subscription{client: a.internal, acc: a, subject: subj, sid: subj, handler: s.takeSysReq}
		if err := a.subs.Insert(subj, "", sub); err != nil {
			return err
		}
		s.subAdded(sub)
	}
	return s.setupAccountRequests()
}

// takeSysReq runs on the publisher's goroutine: copy and hand over, never block.
func (s *Server) takeSysReq(m Msg) {
	if len(m.Reply) == 0 {
		return
	}
	r := sysReq{subject: string(m.Subject), reply: string(m.Reply), data: bytes.Clone(m.Data),
		acc: (*subscription)(m.Sub).acc, from: m.From}
	q := s.sys.reqs
	if isAccountReq(r.subject) { // ordinary accounts' users can send these (imports, USER.INFO)
		q = s.sys.accReqs
	}
	select {
	case q <- r:
	default:
		s.sys.dropped.Add(1)
	}
}

// sysLoop answers system requests and sends the events until shutdown.
func (s *Server) sysLoop() {
	defer s.wg.Done()
	every := min(firstStatsz, s.sys.statszEvery)
	statsz := time.NewTimer(every)
	defer statsz.Stop()
	conns := time.NewTicker(s.sys.connsEvery)
	defer conns.Stop()
	for {
		select {
		case <-s.quit:
			return
		case r := <-s.sys.reqs:
			s.handleSysReq(r)
		case r := <-s.sys.accReqs:
			s.handleSysReq(r)
		case <-statsz.C:
			s.publishStatsz()
			every = min(2*every, s.sys.statszEvery)
			statsz.Reset(every)
		case <-conns.C:
			s.connsHeartbeat()
		}
	}
}

func (s *Server) handleSysReq(r sysReq) {
	if r.event != nil {
		s.publishEvent(r.event)
	} else if r.answer != nil {
		s.sysPublishIn(r.acc, r.reply, r.answer)
	} else if b := s.serveSysReq(r); b != nil {
		s.sysPublishIn(r.acc, r.reply, b)
	}
}

// sysPublish routes a message in the system account as its own internal client.
func (s *Server) sysPublish(subj string, data []byte) { s.sysPublishIn(s.sysAcc, subj, data) }

// sysPublishIn routes a message in acc (nil: the system account) as the account's internal
// client, whose producer only sysLoop uses.
func (s *Server) sysPublishIn(acc *account, subj string, data []byte) {
	if acc == nil {
		acc = s.sysAcc
	}
	c := acc.internal
	sb := []byte(subj)
	c.prod.route(acc, acc.subs.Match(sb), sb, nil, 0, data)
	c.prod.flushPending()
}

// sysServerInfo is nats-server's ServerInfo, the "server" of every answer.
type sysServerInfo struct {
	Name      string    `json:"name"`
	Host      string    `json:"host"`
	ID        string    `json:"id"`
	Cluster   string    `json:"cluster,omitempty"`
	Version   string    `json:"ver"`
	JetStream bool      `json:"jetstream"`
	Flags     uint64    `json:"flags"`
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
}

// sysFilter is nats-server's EventFilterOptions: a server answers only if it matches.
type sysFilter struct {
	Name       string `json:"server_name,omitempty"`
	Cluster    string `json:"cluster,omitempty"`
	Host       string `json:"host,omitempty"`
	ExactMatch bool   `json:"exact_match,omitempty"`
}

func (f *sysFilter) skip(name, cluster, host string) bool {
	if f.ExactMatch {
		return (f.Name != "" && f.Name != name) || (f.Cluster != "" && f.Cluster != cluster) || (f.Host != "" && f.Host != host)
	}
	return (f.Name != "" && !strings.Contains(name, f.Name)) || (f.Cluster != "" && !strings.Contains(cluster, f.Cluster)) ||
		(f.Host != "" && !strings.Contains(host, f.Host))
}

type sysAPIError struct {
	Code        int    `json:"code"`
	Description string `json:"description,omitempty"`
}

type sysAPIResponse struct {
	Server *sysServerInfo `json:"server"`
	Data   any            `json:"data,omitempty"`
	Error  *sysAPIError   `json:"error,omitempty"`
}

// sysOptions is the request body: every endpoint's options (nats-server's names) and the
// filter.
type sysOptions struct {
	sysFilter
	Sort       string `json:"sort"`
	Auth       bool   `json:"auth"`
	Subs       bool   `json:"subscriptions"`
	SubsDetail bool   `json:"subscriptions_detail"`
	Offset     int    `json:"offset"`
	Limit      int    `json:"limit"`
	CID        uint64 `json:"cid"`
	State      int    `json:"state"` // 0 open, 1 closed, 2 all
	User       string `json:"user"`
	ConnAcc    string `json:"acc"`
	Filter     string `json:"filter_subject"`
	Account    string `json:"account"`
	Test       string `json:"test"`
}

// connz is the ConnzOptions of a CONNZ request about account acc ("" for every account).
func (o *sysOptions) connz(acc string) ConnzOptions {
	state := "open"
	switch o.State {
	case 1:
		state = "closed"
	case 2:
		state = "all"
	}
	return ConnzOptions{Sort: o.Sort, Subs: o.Subs, SubsDetail: o.SubsDetail, Offset: o.Offset, Limit: o.Limit,
		CID: o.CID, Auth: o.Auth, State: state, Account: acc, User: o.User, Filter: o.Filter}
}

// serveSysReq builds the answer to one request, or nil when this server is filtered out.
func (s *Server) serveSysReq(r sysReq) []byte {
	if isAccountReq(r.subject) || (r.acc != nil && r.acc != s.sysAcc) {
		return s.serveAccountReq(r)
	}
	kind := "STATSZ"
	statszOnly := r.subject == sysReqPrefix+"PING"
	if !statszOnly {
		kind = r.subject[strings.LastIndexByte(r.subject, '.')+1:]
	}
	info := s.sysInfo()
	if kind == "IDZ" {
		b, _ := json.Marshal(map[string]string{"name": info.Name, "host": info.Host, "id": info.ID})
		return b
	}
	if (kind == "LDM" || kind == "KICK") && json.Unmarshal(r.data, &struct{ CID uint64 }{}) != nil {
		return nil // as nats-server: no answer without a body naming the client
	}
	var opts sysOptions
	if len(bytes.TrimSpace(r.data)) > 0 {
		if err := json.Unmarshal(r.data, &opts); err != nil {
			b, _ := json.Marshal(sysAPIResponse{Server: info, Error: &sysAPIError{Code: http.StatusBadRequest, Description: err.Error()}})
			return b
		}
	}
	if opts.skip(info.Name, info.Cluster, info.Host) {
		return nil
	}
	if kind == "LDM" {
		return sysAnswer(info, nil, s.ldmClient(opts.CID))
	}
	if kind == "RELOAD" {
		s.reloadByRequest(r)
		return nil // answered when done
	}
	if kind == "PROFILEZ" {
		return s.profilez(r, info) // sysprofile.go
	}
	if kind == "STATSZ" {
		return s.statszMsg(info)
	}
	data, err := s.sysData(kind, &opts)
	return sysAnswer(info, data, err)
}

// sysAnswer is the ServerAPIResponse to a request: data, or err. As nats-server's, an
// endpoint's error is a 500 whatever it is (400 is for a body that is not JSON), in the
// endpoint's words (without the HTTP side's "bad request: ").
func sysAnswer(info *sysServerInfo, data any, err error) []byte {
	resp := sysAPIResponse{Server: info, Data: data}
	if err != nil {
		desc := err.Error()
		if errors.Is(err, ErrBadRequest) {
			desc = strings.TrimPrefix(desc, ErrBadRequest.Error()+": ")
		}
		resp = sysAPIResponse{Server: info, Error: &sysAPIError{Code: http.StatusInternalServerError, Description: desc}}
	}
	b, _ := json.Marshal(resp)
	return b
}

func (s *Server) sysData(kind string, o *sysOptions) (any, error) {
	switch kind {
	case "VARZ":
		return s.Varz(), nil
	case "CONNZ":
		return s.Connz(o.connz(o.ConnAcc))
	case "SUBSZ":
		return s.Subsz(SubszOptions{Subs: o.Subs, Offset: o.Offset, Limit: o.Limit, Test: o.Test, Account: o.Account})
	case "ROUTEZ":
		return map[string]any{"server_id": s.id, "server_name": s.name, "now": time.Now().UTC(),
			"num_routes": s.NumRoutes(), "routes": s.Routez(o.Subs, o.SubsDetail)}, nil
	case "GATEWAYZ": // no gateways: the empty form, as /gatewayz
		return struct {
			ID       string         `json:"server_id"`
			Now      time.Time      `json:"now"`
			Outbound map[string]any `json:"outbound_gateways"`
			Inbound  map[string]any `json:"inbound_gateways"`
		}{s.id, time.Now().UTC(), map[string]any{}, map[string]any{}}, nil
	case "LEAFZ": // no leaf nodes: the empty form, as /leafz
		return struct {
			ID        string    `json:"server_id"`
			Now       time.Time `json:"now"`
			LeafNodes int       `json:"leafnodes"`
			Leafs     []any     `json:"leafs"`
		}{s.id, time.Now().UTC(), 0, []any{}}, nil
	case "JSZ":
		return s.jszDisabled(), nil
	case "RAFTZ": // JetStream's raft groups by account: none without JetStream, as nats-server's
		return map[string]any{}, nil
	case "HEALTHZ":
		// nats-server's HealthStatus: natscli counts a server healthy by its status_code.
		h := s.Healthz()
		code := http.StatusOK
		if h.Status != "ok" {
			code = http.StatusServiceUnavailable
		}
		return struct {
			Status string `json:"status"`
			Code   int    `json:"status_code"`
			Error  string `json:"error,omitempty"` // none when healthy, as nats-server's
		}{h.Status, code, h.Error}, nil
	case "ACCOUNTZ":
		return s.Accountz(o.Account)
	case "KICK":
		return nil, s.kick(o.CID)
	}
	return nil, errors.New("unknown request " + kind)
}

// jszDisabled is nats-server's JSZ answer (JSInfo) with JetStream disabled, which
// Starling does not implement: `nats server report jetstream` shows zeros, as against a
// nats-server without JetStream, rather than failing for want of an answer.
func (s *Server) jszDisabled() any {
	type counts struct {
		Level  int `json:"level"`
		Total  int `json:"total"`
		Errors int `json:"errors"`
	}
	type limits struct {
		MaxMemory  int64 `json:"max_memory"`
		MaxStorage int64 `json:"max_storage"`
	}
	return struct {
		Memory          uint64    `json:"memory"`
		Storage         uint64    `json:"storage"`
		ReservedMemory  uint64    `json:"reserved_memory"`
		ReservedStorage uint64    `json:"reserved_storage"`
		Accounts        int       `json:"accounts"`
		HAAssets        int       `json:"ha_assets"`
		API             counts    `json:"api"`
		ID              string    `json:"server_id"`
		Now             time.Time `json:"now"`
		Disabled        bool      `json:"disabled"`
		Config          limits    `json:"config"`
		Streams         int       `json:"streams"`
		Consumers       int       `json:"consumers"`
		Messages        uint64    `json:"messages"`
		Bytes           uint64    `json:"bytes"`
		Total           int       `json:"total"`
	}{ID: s.id, Now: time.Now().UTC(), Disabled: true}
}

// reloadByRequest runs Options.ReloadConfig for a RELOAD request on a goroutine of its own
// (a reload may take a while, and must not hold up the events) and hands the answer,
// nats-server's (no data, or the error), back to sysLoop.
func (s *Server) reloadByRequest(r sysReq) {
	reload := s.o().ReloadConfig
	if reload == nil {
		return
	}
	s.log.Info("configuration reload requested by the system account")
	go func() {
		b := sysAnswer(s.sysInfo(), nil, reload())
		select {
		case s.sys.reqs <- sysReq{reply: r.reply, acc: r.acc, answer: b}:
		case <-s.quit:
		}
	}()
}

// reasonKicked is the /connz closed reason of a client closed by a KICK request.
const reasonKicked = "Kicked"

// kick closes the client connection cid (a KICK request, nats-server's
// DisconnectClientByID).
func (s *Server) kick(cid uint64) error {
	c := s.clientByID(cid)
	if c == nil || c.kind != kindClient {
		return errors.New("no such client or leafnode id") // nats-server's text
	}
	c.log.Info("closing connection", "cause", "kicked by a system account request")
	c.closeConnection(reasonKicked)
	return nil
}

// ldmClient sends client cid an INFO with ldm (an LDM request, nats-server's
// LDMClientByID): the client moves to another server of the cluster, as in lame duck mode.
func (s *Server) ldmClient(cid uint64) error {
	c := s.clientByID(cid)
	if c == nil || c.kind != kindClient {
		return errors.New("no such client id")
	}
	if !c.proto1.Load() {
		return errors.New("client does not support Lame Duck Mode or is not ready to receive the notification")
	}
	c.sendAsyncInfo(infoLDM)
	return nil
}

func (s *Server) sysInfo() *sysServerInfo {
	info := &sysServerInfo{Name: s.name, Host: s.o().Host, ID: s.id, Version: NATSVersion,
		Seq: s.sys.seq.Add(1), Time: time.Now().UTC()}
	if co := s.o().Cluster; co != nil {
		info.Cluster = co.Name
	}
	return info
}

// sysStats is nats-server's ServerStats (the fields natscli shows).
type sysStats struct {
	Start            time.Time        `json:"start"`
	Mem              int64            `json:"mem"`
	Cores            int              `json:"cores"`
	CPU              float64          `json:"cpu"`
	Connections      int              `json:"connections"`
	TotalConnections uint64           `json:"total_connections"`
	ActiveAccounts   int              `json:"active_accounts"`
	NumSubs          uint32           `json:"subscriptions"`
	Sent             sysMsgBytes      `json:"sent"`
	SentToClients    sysMsgBytes      `json:"sent_to_clients"`
	Received         sysMsgBytes      `json:"received"`
	FromClients      sysMsgBytes      `json:"received_from_clients"`
	SlowConsumers    int64            `json:"slow_consumers"`
	Routes           []*sysRouteStats `json:"routes,omitempty"`
	ActiveServers    int              `json:"active_servers,omitempty"`
	MaxProcs         int              `json:"gomaxprocs,omitempty"`
}

type sysMsgBytes struct {
	Msgs  int64 `json:"msgs"`
	Bytes int64 `json:"bytes"`
}

type sysRouteStats struct {
	ID       uint64      `json:"rid"`
	Name     string      `json:"name,omitempty"`
	Sent     sysMsgBytes `json:"sent"`
	Received sysMsgBytes `json:"received"`
	Pending  int         `json:"pending"`
}

// statszMsg is a STATSZ answer or event: info, then the server's statistics.
func (s *Server) statszMsg(info *sysServerInfo) []byte {
	b, _ := json.Marshal(map[string]any{"server": info, "statsz": s.statsz()})
	return b
}

func (s *Server) statsz() *sysStats {
	v := s.Varz()
	st := &sysStats{Start: v.Start, Mem: v.Mem, Cores: v.Cores, CPU: v.CPU, Connections: v.Connections,
		TotalConnections: v.TotalConnections, NumSubs: v.Subscriptions,
		Sent: sysMsgBytes{v.OutMsgs, v.OutBytes}, Received: sysMsgBytes{v.InMsgs, v.InBytes},
		SentToClients: sysMsgBytes{v.OutClientMsgs, v.OutClientBytes}, FromClients: sysMsgBytes{v.InClientMsgs, v.InClientBytes},
		SlowConsumers: v.SlowConsumers, MaxProcs: v.MaxProcs}
	for _, r := range s.Routez(false, false) {
		st.Routes = append(st.Routes, &sysRouteStats{ID: r.Rid, Name: r.RemoteName, Pending: r.Pending,
			Sent: sysMsgBytes{r.OutMsgs, r.OutBytes}, Received: sysMsgBytes{r.InMsgs, r.InBytes}})
	}
	st.ActiveServers = 1 + len(st.Routes)
	for _, a := range s.accountMap() {
		if a.conns.Load() > 0 { // active: with clients, as nats-server counts them
			st.ActiveAccounts++
		}
	}
	return st
}
