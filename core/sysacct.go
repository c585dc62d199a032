package core

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/starling-io/starling/core/auth"
	"github.com/starling-io/starling/core/subject"
)

// Account-level system requests, as nats-server answers them when it has a system account:
//
//	$SYS.REQ.USER.INFO                 in every account: who the requester is (user, account, permissions)
//	$SYS.REQ.USER.<acc>.INFO           system account: the requester's permissions only, as nats-server
//	$SYS.REQ.ACCOUNT.<acc>.<KIND>      system account: CONNZ, SUBSZ, INFO or STATZ of account acc
//	                                   (CONNS: sysbeat.go)
//	$SYS.REQ.ACCOUNT.NSUBS             system account: how many client subscriptions of an account
//	                                   match a subject, from every server where it has connections
//	$SYS.REQ.ACCOUNT.PING.<KIND>       CONNZ or STATZ of the requester's account (in the system
//	                                   account: STATZ of every account with connections, and
//	                                   CONNZ of an account named PING, as nats-server)
//	$SYS.REQ.SERVER.PING.CONNZ         in the other accounts: CONNZ of the requester's account
//
// In an ordinary account the last two are service imports of the system account's
// $SYS.REQ.ACCOUNT.<acc>.CONNZ / STATZ, as nats-server adds to every account: every server
// of a cluster answers (STATZ only where the account has connections), and the subject,
// not the request body, names the account, so nothing of another account is visible to an
// ordinary user. USER.INFO is answered by the requester's server alone. The account-level
// requests are queued apart from the server requests and events (sysState.accReqs).

const (
	sysUserInfo       = "$SYS.REQ.USER.INFO"
	sysUserPrefix     = "$SYS.REQ.USER."
	sysAccReqPrefix   = "$SYS.REQ.ACCOUNT."
	sysAccPingPrefix  = sysAccReqPrefix + "PING."
	sysServerPingConn = sysReqPrefix + "PING.CONNZ"
	sysAccNumSubs     = sysAccReqPrefix + "NSUBS"
)

// isAccountReq reports whether subj is an account-level request rather than a server one.
func isAccountReq(subj string) bool {
	return strings.HasPrefix(subj, sysUserPrefix) || strings.HasPrefix(subj, sysAccReqPrefix)
}

// setupAccountRequests subscribes every account to the account-level requests.
func (s *Server) setupAccountRequests() error {
	sys := s.sysAcc
	// Every server answers for its own clients of any account, as for the server requests.
	subjs := []string{sysAccNumSubs}
	for _, kind := range []string{"CONNZ", "SUBSZ", "INFO", "STATZ", "CONNS"} { // other kinds: no responders, as nats-server
		subjs = append(subjs, sysAccReqPrefix+"*."+kind)
	}
	for _, subj := range subjs {
		sub := &subscription{client: sys.internal, acc: sys, subject: subj, sid: subj, handler: s.takeSysReq}
		if err := sys.subs.Insert(subj, "", sub); err != nil {
			return err
		}
		s.subAdded(sub)
	}
	// nats-server's target of the USER.INFO imports, which the system user may also ask
	// directly (answered by its own server, with no user or account: nats-server's knows
	// them from the import only).
	subj := sysUserPrefix + "*.INFO"
	sub := &subscription{client: sys.internal, acc: sys, subject: subj, sid: subj, handler: s.takeSysReq, local: true}
	if err := sys.subs.Insert(subj, "", sub); err != nil {
		return err
	}
	for _, a := range s.accountMap() {
		if err := s.accountRequests(a); err != nil {
			return err
		}
	}
	return nil
}

// accountRequests subscribes account a to the account-level requests its users send.
func (s *Server) accountRequests(a *account) error {
	// USER.INFO: only the requester's server knows the requester.
	sub := &subscription{client: a.internal, acc: a, subject: sysUserInfo, sid: sysUserInfo, handler: s.takeSysReq, local: true}
	if err := a.subs.Insert(sysUserInfo, "", sub); err != nil {
		return err
	}
	if a == s.sysAcc || a.name == "PING" {
		// An account named PING would reach the system account's own PING requests
		// ($SYS.REQ.ACCOUNT.PING.STATZ: every account's statistics): it has none.
		return nil
	}
	for _, im := range [][2]string{{sysAccPingPrefix + "CONNZ", "CONNZ"}, {sysServerPingConn, "CONNZ"}, {sysAccPingPrefix + "STATZ", "STATZ"}} {
		if err := s.importSysRequest(a, im[0], sysAccReqPrefix+a.name+"."+im[1]); err != nil {
			return err
		}
	}
	return nil
}

// sysImportThreshold is how long the answers of every server to an account's request may
// take to come back through the system import.
const sysImportThreshold = 2 * time.Second

// importSysRequest lets account a's clients send the system account's request target by
// publishing on local: a service import with several answers (one per server), as the
// imports nats-server gives every account.
func (s *Server) importSysRequest(a *account, local, target string) error {
	sys := s.sysAcc
	// The answers, published by the system account's internal client, go through its own
	// reply subscription: it must hear itself.
	sys.internal.echo.Store(true)
	tr, err := subject.NewTransform(local, target)
	if err != nil {
		return err
	}
	if sys.resp == nil {
		sys.resp = newResponses()
		sub := &subscription{client: sys.internal, acc: sys, subject: sys.resp.prefix + ">", sid: "replies",
			imp: &importRef{resp: sys.resp}}
		if err := sys.subs.Insert(sub.subject, "", sub); err != nil {
			return err
		}
		sys.resp.sub = sub
		s.subAdded(sub)
	}
	si := &serviceImport{from: a, to: sys, local: local, toExport: tr, multi: true, threshold: sysImportThreshold}
	sub := &subscription{client: a.internal, acc: a, subject: local, sid: "import " + local, local: true, imp: &importRef{svc: si}}
	return a.subs.Insert(local, "", sub)
}

// sysUserInfoData is nats-server's UserInfo.
type sysUserInfoData struct {
	User        string          `json:"user"`
	Account     string          `json:"account"`
	AccountName string          `json:"account_name,omitempty"`
	Permissions *sysPermissions `json:"permissions,omitempty"`
	Expires     time.Duration   `json:"expires,omitempty"`
}

// sysPermissions is nats-server's Permissions in JSON.
type sysPermissions struct {
	Publish   *sysSubjectPerm `json:"publish,omitempty"`
	Subscribe *sysSubjectPerm `json:"subscribe,omitempty"`
	Response  *sysRespPerm    `json:"responses,omitempty"`
}

type sysSubjectPerm struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

type sysRespPerm struct {
	MaxMsgs int           `json:"max"`
	Expires time.Duration `json:"ttl"`
}

func subjectPerm(p *auth.SubjectPermission) *sysSubjectPerm {
	if p == nil {
		return nil
	}
	return &sysSubjectPerm{Allow: p.Allow, Deny: p.Deny}
}

// sysAccStat is nats-server's AccountStat.
type sysAccStat struct {
	Account    string      `json:"acc"`
	Name       string      `json:"name"`
	Conns      int         `json:"conns"`
	LeafNodes  int         `json:"leafnodes"`
	TotalConns int         `json:"total_conns"`
	NumSubs    uint32      `json:"num_subscriptions"`
	Sent       sysMsgBytes `json:"sent"`
	Received   sysMsgBytes `json:"received"`
	SlowCons   int64       `json:"slow_consumers"`
}

// sysAccOptions is the body of an account request: the server filter and the endpoint's
// options (nats-server's names).
type sysAccOptions struct {
	sysOptions
	Accounts      []string `json:"accounts"`
	IncludeUnused bool     `json:"include_unused"`
}

// serveAccountReq answers an account-level request (sysacct.go's list), or returns nil when
// there is nothing to say: this server filtered out, or no such request.
func (s *Server) serveAccountReq(r sysReq) []byte {
	from := r.acc
	if from == nil {
		from = s.sysAcc
	}
	if r.subject == sysAccNumSubs {
		return s.numSubsAnswer(r.data)
	}
	if rest, ok := strings.CutPrefix(r.subject, sysAccReqPrefix); ok && strings.HasSuffix(rest, ".CONNS") {
		return s.connsAnswer(strings.TrimSuffix(rest, ".CONNS"), r.data) // no filter, no envelope
	}
	info := s.sysInfo()
	var opts sysAccOptions
	user := strings.HasPrefix(r.subject, sysUserPrefix)
	if !user && len(bytes.TrimSpace(r.data)) > 0 { // USER.INFO takes no options, as nats-server's
		if err := json.Unmarshal(r.data, &opts); err != nil {
			b, _ := json.Marshal(sysAPIResponse{Server: info, Error: &sysAPIError{Code: http.StatusBadRequest, Description: err.Error()}})
			return b
		}
	}
	if opts.skip(info.Name, info.Cluster, info.Host) {
		return nil
	}
	// The account asked about and what about it.
	acc, kind := from.name, ""
	switch {
	case r.subject == sysUserInfo:
		kind = "USERINFO"
	case user: // $SYS.REQ.USER.<acc>.INFO
		kind = "USERINFO-DIRECT"
	case r.subject == sysAccPingPrefix+"STATZ": // the system account's own (the others' are imports)
		acc, kind = "", "STATZ" // every account
	default: // $SYS.REQ.ACCOUNT.<acc>.<KIND>, in the system account only (PING.CONNZ: of account PING, as nats-server)
		rest := r.subject[len(sysAccReqPrefix):]
		i := strings.LastIndexByte(rest, '.')
		if i < 0 {
			return nil
		}
		acc, kind = rest[:i], rest[i+1:]
	}
	data, err := s.accountData(kind, acc, r.from, &opts)
	if st, ok := data.(*sysAccStatz); ok && len(st.Accounts) == 0 && !opts.IncludeUnused {
		return nil // no connections of the account(s) here: other servers answer, as nats-server
	}
	return sysAnswer(info, data, err)
}

// accountData builds the data of an account request of kind about account acc ("" for
// STATZ: every account) for the requester with cid from.
func (s *Server) accountData(kind, acc string, from uint64, o *sysAccOptions) (any, error) {
	switch kind {
	case "USERINFO":
		return s.userInfo(from), nil
	case "USERINFO-DIRECT": // nats-server's: only the requester's permissions
		ui := s.userInfo(from)
		ui.User, ui.Account, ui.AccountName = "", "", ""
		return ui, nil
	}
	// An account this server does not know, as nats-server answers: CONNZ and SUBSZ empty
	// (other servers may have it), INFO an error, STATZ nothing.
	known := acc == "" || s.account(acc) != nil
	switch kind {
	case "CONNZ":
		cz, err := s.Connz(o.connz(acc))
		if err != nil || known {
			return cz, err
		}
		return &Connz{Now: cz.Now, Offset: cz.Offset, Limit: cz.Limit}, nil // nats-server's: no server_id
	case "SUBSZ": // always with the list, as nats-server's
		return s.Subsz(SubszOptions{Subs: true, Offset: o.Offset, Limit: o.Limit, Test: o.Test, Account: acc})
	case "INFO":
		if !known {
			return nil, errors.New("Account " + acc + " does not exist")
		}
		az, err := s.Accountz(acc)
		if err != nil {
			return nil, err
		}
		return az.Account, nil
	case "STATZ":
		return s.accountStatz(acc, o), nil
	}
	return nil, errors.New("unknown request " + kind)
}

// userInfo describes the client with cid from: its user, account and permissions.
func (s *Server) userInfo(from uint64) *sysUserInfoData {
	c := s.clientByID(from)
	ui := &sysUserInfoData{Account: GlobalAccount, AccountName: GlobalAccount}
	if c == nil {
		return ui
	}
	c.mu.Lock()
	id, acc := c.ident, c.acc
	c.mu.Unlock()
	ui.Account, ui.AccountName = acc.name, acc.name
	if id != nil {
		ui.User = id.Shown()
		if p := id.Permissions; p != nil {
			ui.Permissions = &sysPermissions{Publish: subjectPerm(p.Publish), Subscribe: subjectPerm(p.Subscribe)}
			if rp := p.AllowResponses; rp != nil {
				ui.Permissions.Response = &sysRespPerm{MaxMsgs: cmp.Or(rp.MaxMsgs, auth.DefaultResponseMaxMsgs), Expires: cmp.Or(rp.Expires, auth.DefaultResponseExpires)}
			}
		}
	}
	return ui
}

// addTraffic adds the connections of each account in stats and their traffic, that of its
// closed connections included, and its slow consumers (nats-server's account totals).
func (s *Server) addTraffic(stats map[*account]*sysAccStat) {
	s.mu.Lock()
	cls := s.clientList()
	for a, st := range stats { // with the list: a connection is in one or the other
		st.Sent.Msgs += a.gone.outMsgs.Load()
		st.Sent.Bytes += a.gone.outBytes.Load()
		st.Received.Msgs += a.gone.inMsgs.Load()
		st.Received.Bytes += a.gone.inBytes.Load()
		st.SlowCons += a.slow.Load()
	}
	s.mu.Unlock()
	for _, c := range cls {
		if c.kind != kindClient {
			continue
		}
		c.mu.Lock()
		a := c.acc
		c.mu.Unlock()
		st := stats[a]
		if st == nil {
			continue
		}
		st.Conns++
		st.TotalConns++
		st.Sent.Msgs += c.stats.outMsgs.Load()
		st.Sent.Bytes += c.stats.outBytes.Load()
		st.Received.Msgs += c.stats.inMsgs.Load()
		st.Received.Bytes += c.stats.inBytes.Load()
	}
}

// sysAccStatz is nats-server's AccountStatz.
type sysAccStatz struct {
	ID       string        `json:"server_id"`
	Now      time.Time     `json:"now"`
	Accounts []*sysAccStat `json:"account_statz"`
}

// AccountStatz is /accstatz: the statistics of the accounts with connections here, of
// every account with unused (nats-server's AccountStatz, as the STATZ request answers).
func (s *Server) AccountStatz(unused bool) any {
	return s.accountStatz("", &sysAccOptions{IncludeUnused: unused})
}

// accountStatz is nats-server's AccountStatz: the accounts named (acc, else o.Accounts, else
// all), those without connections only with include_unused. Traffic is that of every
// client connection the account has had.
func (s *Server) accountStatz(acc string, o *sysAccOptions) *sysAccStatz {
	stats := map[*account]*sysAccStat{}
	var names []string
	switch {
	case acc != "":
		names = []string{acc}
	case len(o.Accounts) > 0:
		names = o.Accounts
	default:
		names = s.AccountNames()
	}
	for _, n := range names {
		if a := s.account(n); a != nil {
			stats[a] = &sysAccStat{Account: a.name, Name: a.name, NumSubs: uint32(a.subs.Count())}
		}
	}
	s.addTraffic(stats)
	list := []*sysAccStat{}
	for _, n := range names {
		a := s.account(n)
		if st := stats[a]; st != nil && (st.Conns > 0 || o.IncludeUnused) {
			list = append(list, st)
			stats[a] = nil // named twice: once
		}
	}
	return &sysAccStatz{ID: s.id, Now: time.Now().UTC(), Accounts: list}
}

// numSubsAnswer answers $SYS.REQ.ACCOUNT.NSUBS, nats-server's {"acc","subject","queue"}
// (queue in base64), with the number of the account's client subscriptions that the
// subject reaches (a wildcard subject: those within it), only queue members of that group
// when queue is given; a bare JSON number. As nats-server, a server where the account has
// no connections, or a body it cannot read, gives no answer.
func (s *Server) numSubsAnswer(body []byte) []byte {
	var req struct {
		Account string `json:"acc"`
		Subject string `json:"subject"`
		Queue   []byte `json:"queue"`
	}
	if len(body) == 0 || json.Unmarshal(body, &req) != nil {
		return nil
	}
	a := s.account(req.Account)
	if req.Account == "" || a == nil || a.conns.Load() <= 0 {
		return nil
	}
	counts := func(sub *subscription, queue string) bool {
		return sub.client != nil && sub.client.kind == kindClient && (req.Queue == nil || queue == string(req.Queue))
	}
	n := 0
	if subject.IsLiteral(req.Subject) {
		r := a.subs.MatchString(req.Subject)
		if req.Queue == nil {
			for _, sub := range r.Plain {
				if counts(sub, "") {
					n++
				}
			}
		}
		for _, g := range r.Queues {
			for _, sub := range g.Members {
				if counts(sub, g.Name) {
					n++
				}
			}
		}
	} else if subject.ValidSubject(req.Subject) {
		a.subs.All(func(subj, queue string, sub *subscription) bool {
			if counts(sub, queue) && subject.SubsetOf(subj, req.Subject) {
				n++
			}
			return true
		})
	}
	return strconv.AppendInt(nil, int64(n), 10)
}
