package monitor

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/starling-io/starling/stores"
	"github.com/starling-io/starling/streaming"
)

// Paths, relative to the monitoring base path.
const (
	RootPath       = "/streaming"
	ServerPath     = RootPath + "/serverz"
	StorePath      = RootPath + "/storez"
	ClientsPath    = RootPath + "/clientsz"
	ChannelsPath   = RootPath + "/channelsz"
	IsFTActivePath = RootPath + "/isFTActive"

	// DefaultListLimit is the page size of clientsz and channelsz without ?limit.
	DefaultListLimit = 1024
)

// Storez is /streaming/storez.
type Storez struct {
	ClusterID  string    `json:"cluster_id"`
	ServerID   string    `json:"server_id"`
	Now        time.Time `json:"now"`
	Type       string    `json:"type"`
	Limits     Limits    `json:"limits"`
	TotalMsgs  int       `json:"total_msgs"`
	TotalBytes uint64    `json:"total_bytes"`
}

// Limits is the store limits as storez shows them: the global limits (0 = unlimited) and,
// per channel name or wildcard pattern, that entry's limits after inheritance.
type Limits struct {
	MaxChannels int `json:"max_channels"`
	ChannelLimits
	Channels map[string]*ChannelLimits `json:"channels,omitempty"`
}

// ChannelLimits is one channel's limits; durations are in nanoseconds, as the reference
// server shows them.
type ChannelLimits struct {
	MaxMsgs          int           `json:"max_msgs"`
	MaxBytes         int64         `json:"max_bytes"`
	MaxAge           time.Duration `json:"max_age"`
	MaxSubscriptions int           `json:"max_subscriptions"`
	MaxInactivity    time.Duration `json:"max_inactivity"`
}

// Clientsz is /streaming/clientsz.
type Clientsz struct {
	ClusterID string               `json:"cluster_id"`
	ServerID  string               `json:"server_id"`
	Now       time.Time            `json:"now"`
	Offset    int                  `json:"offset"`
	Limit     int                  `json:"limit"`
	Count     int                  `json:"count"`
	Total     int                  `json:"total"`
	Clients   []*streaming.Clientz `json:"clients"`
}

// Channelsz is /streaming/channelsz: the channel names, or with subs=1 the channels with
// their subscriptions.
type Channelsz struct {
	ClusterID string                `json:"cluster_id"`
	ServerID  string                `json:"server_id"`
	Now       time.Time             `json:"now"`
	Offset    int                   `json:"offset"`
	Limit     int                   `json:"limit"`
	Count     int                   `json:"count"`
	Total     int                   `json:"total"`
	Names     []string              `json:"names,omitempty"`
	Channels  []*streaming.Channelz `json:"channels,omitempty"`
}

// Monitor serves one streaming.Server's endpoints.
type Monitor struct {
	s *streaming.Server
}

// New returns the handlers for s.
func New(s *streaming.Server) *Monitor {
	return &Monitor{s: s}
}

// LimitsOf is a limits set as storez shows it: the global limits, and each entry's after
// inheritance.
func LimitsOf(ls *stores.LimitsSet) Limits {
	g := (&stores.LimitsSet{Global: ls.Global}).For("") // the global limits, normalised
	out := Limits{MaxChannels: g.MaxChannels, ChannelLimits: channelLimits(g)}
	for name := range ls.Channels {
		if out.Channels == nil {
			out.Channels = map[string]*ChannelLimits{}
		}
		cl := channelLimits(ls.For(name))
		out.Channels[name] = &cl
	}
	return out
}

func channelLimits(l stores.Limits) ChannelLimits {
	return ChannelLimits{MaxMsgs: l.MaxMsgs, MaxBytes: l.MaxBytes, MaxAge: l.MaxAge,
		MaxSubscriptions: l.MaxSubs, MaxInactivity: l.MaxInactivity}
}

// Routes returns every handler by path (relative to the monitoring base path), to mount
// with core/monitor's Monitor.Handle.
func (m *Monitor) Routes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		RootPath:       m.HandleRoot,
		ServerPath:     m.HandleServerz,
		StorePath:      m.HandleStorez,
		ClientsPath:    m.HandleClientsz,
		ChannelsPath:   m.HandleChannelsz,
		IsFTActivePath: m.HandleIsFTActive,
	}
}

// id returns the streaming server ID.
func (m *Monitor) id() string { return m.s.ServerID() }

// unavailable answers 503 when the engine could not be asked for its state (busy, or shut
// down): an empty answer would show a server that lost every client, channel and message.
// The body is plain text, not JSON: prometheus-nats-exporter decodes a body whatever its
// status, and a JSON one would decode into zeros.
func unavailable(w http.ResponseWriter, err error) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	http.Error(w, err.Error(), http.StatusServiceUnavailable)
}

// HandleRoot serves /streaming: an index of the endpoints. Links are relative so that they
// work under any base path.
func (m *Monitor) HandleRoot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<html><body><h1>Starling streaming</h1><ul>`)
	for _, p := range []string{"serverz", "storez", "clientsz", "channelsz"} {
		fmt.Fprintf(w, `<li><a href="streaming/%s">%s</a></li>`, p, p)
	}
	fmt.Fprint(w, `</ul></body></html>`)
}

// HandleServerz serves /streaming/serverz.
// With digest=1 it adds the replicated state's digest (StateDigest: it reads every message);
// with digest=parts, that digest and the state's parts (StateDigestParts).
func (m *Monitor) HandleServerz(w http.ResponseWriter, r *http.Request) {
	z, err := m.s.ServerzErr()
	if err != nil {
		unavailable(w, err)
		return
	}
	z.OpenFDs, z.MaxFDs = fds()
	switch r.URL.Query().Get("digest") {
	case "1":
		d, err := m.s.StateDigest()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		z.Digest = d
	case "parts":
		d, parts, err := m.s.StateDigestParts()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		z.Digest, z.DigestParts = d, parts
	}
	writeJSON(w, z)
}

// fds returns the process's open file descriptors and their limit, as
// nats-streaming-server's serverz shows them; 0 (left out) where /proc cannot tell.
func fds() (open, limit int) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, 0
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur <= math.MaxInt32 {
		limit = int(rl.Cur)
	}
	return len(ents), limit
}

// HandleStorez serves /streaming/storez.
func (m *Monitor) HandleStorez(w http.ResponseWriter, r *http.Request) {
	z, err := m.s.ServerzErr()
	if err != nil {
		unavailable(w, err)
		return
	}
	writeJSON(w, &Storez{ClusterID: z.ClusterID, ServerID: z.ServerID, Now: z.Now, Type: m.s.StoreType(),
		Limits: LimitsOf(m.s.LimitsInEffect()), TotalMsgs: z.TotalMsgs, TotalBytes: z.TotalBytes})
}

// HandleClientsz serves /streaming/clientsz: clients sorted by ID, a page of them (offset,
// limit), with their subscriptions when subs=1; client=ID returns that client alone.
func (m *Monitor) HandleClientsz(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	subs := q.Get("subs") == "1"
	clients, err := m.s.ClientsErr(subs)
	if err != nil {
		unavailable(w, err)
		return
	}
	if id := q.Get("client"); id != "" {
		for _, c := range clients {
			if c.ID == id {
				writeJSON(w, c)
				return
			}
		}
		http.Error(w, fmt.Sprintf("Client %s not found", id), http.StatusNotFound)
		return
	}
	offset, limit := page(r)
	lo, hi := bounds(offset, limit, len(clients))
	writeJSON(w, &Clientsz{ClusterID: m.s.ClusterID(), ServerID: m.id(), Now: time.Now().UTC(),
		Offset: offset, Limit: limit, Count: hi - lo, Total: len(clients),
		Clients: append(make([]*streaming.Clientz, 0, hi-lo), clients[lo:hi]...)})
}

// HandleChannelsz serves /streaming/channelsz: channel names sorted, a page of them; with
// subs=1 the channels themselves with their subscriptions; channel=NAME returns that
// channel alone (with its subscriptions when subs=1).
func (m *Monitor) HandleChannelsz(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	subs := q.Get("subs") == "1"
	channels, err := m.s.ChannelsErr(subs)
	if err != nil {
		unavailable(w, err)
		return
	}
	if name := q.Get("channel"); name != "" {
		for _, c := range channels {
			if c.Name == name {
				writeJSON(w, c)
				return
			}
		}
		http.Error(w, fmt.Sprintf("Channel %s not found", name), http.StatusNotFound)
		return
	}
	offset, limit := page(r)
	lo, hi := bounds(offset, limit, len(channels))
	z := &Channelsz{ClusterID: m.s.ClusterID(), ServerID: m.id(), Now: time.Now().UTC(),
		Offset: offset, Limit: limit, Count: hi - lo, Total: len(channels)}
	if subs {
		z.Channels = channels[lo:hi]
	} else {
		z.Names = make([]string, 0, hi-lo)
		for _, c := range channels[lo:hi] {
			z.Names = append(z.Names, c.Name)
		}
	}
	writeJSON(w, z)
}

// HandleIsFTActive serves /streaming/isFTActive: 200 on the active server of a
// fault-tolerance group, 204 (no body) otherwise — a standalone server included.
func (m *Monitor) HandleIsFTActive(w http.ResponseWriter, r *http.Request) {
	if m.s.State() == "FT_ACTIVE" {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// page reads offset (default 0; negative is 0) and limit (default, and for 0 or less,
// DefaultListLimit). Values that are not numbers are the defaults, as in the reference.
func page(r *http.Request) (offset, limit int) {
	q := r.URL.Query()
	offset, _ = strconv.Atoi(q.Get("offset"))
	limit, _ = strconv.Atoi(q.Get("limit"))
	if offset < 0 {
		offset = 0
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	return offset, limit
}

// bounds returns the slice [lo:hi] of a list of total elements for offset and limit.
func bounds(offset, limit, total int) (lo, hi int) {
	lo = min(offset, total)
	hi = total
	if limit < total-lo {
		hi = lo + limit
	}
	return lo, hi
}

// writeJSON writes v indented by two spaces, with the headers monitoring tools expect.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(b)
}
