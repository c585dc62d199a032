package tests

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/stan.go"

	"github.com/starling-io/starling/cmd/starling/app"
)

// The page's wait: it polls once a second, so a few polls fit well within it.
const dashboardWait = 20 * time.Second

// dashboardView is what the rendered page shows, read from its DOM.
type dashboardView struct {
	Polls    int    `json:"polls"`
	Status   string `json:"status"`
	StatusOK bool   `json:"statusOK"`
	Path     string `json:"path"`
	Channels []struct {
		Name  string `json:"name"`
		Msgs  string `json:"msgs"`
		First string `json:"first"`
		Last  string `json:"last"`
	} `json:"channels"`
	Subs []struct {
		Channel  string `json:"channel"`
		Client   string `json:"client"`
		LastSent string `json:"lastSent"`
		Lag      string `json:"lag"`
		State    string `json:"state"`
	} `json:"subs"`
	Role          string            `json:"role"`
	StanOff       bool              `json:"stanOff"`
	StanLinks     bool              `json:"stanLinks"`
	Links         []string          `json:"links"`
	Tiles         map[string]string `json:"tiles"`
	Legend        map[string]string `json:"legend"` // series → its peak ("peak 12")
	Lines         int               `json:"lines"`  // chart polylines and dots
	Conns         int               `json:"conns"`
	ConnsRendered bool              `json:"connsRendered"`
}

const readDashboard = `(() => {
  const q = (s) => document.querySelector(s);
  const all = (s) => [...document.querySelectorAll(s)];
  const text = (root, s) => { const e = root.querySelector(s); return e ? e.textContent.trim() : ""; };
  const st = q("#status");
  return {
    polls: Number(document.body.dataset.polls || 0),
    status: st.textContent, statusOK: st.classList.contains("ok"),
    path: location.pathname,
    channels: all("tr.channel").map((r) => ({name: r.dataset.channel, msgs: text(r, ".msgs"),
      first: text(r, ".first"), last: text(r, ".last")})),
    subs: all("tr.sub").map((r) => ({channel: r.dataset.channel, client: r.dataset.client,
      lastSent: text(r, ".last-sent"), lag: text(r, ".lag"), state: text(r, ".state")})),
    role: text(document, "#nodes tr.self .role"),
    stanOff: !q("#streaming-off").hidden,
    stanLinks: !q("#stan-links").hidden,
    links: all("nav a").map((a) => a.getAttribute("href")),
    tiles: Object.fromEntries(all(".tile").map((e) => [e.dataset.tile, text(e, ".v")])),
    legend: Object.fromEntries(all("#legend .item").map((e) => [e.dataset.series, text(e, ".peak")])),
    lines: all("#chart polyline, #chart circle").length,
    conns: all("#conns tr[data-cid]").length,
    connsRendered: q("#conns tbody").children.length > 0,
  };
})()`

// waitView polls the page's DOM until cond accepts what it shows.
func waitView(t *testing.T, p *browserPage, what string, cond func(v *dashboardView) error) *dashboardView {
	t.Helper()
	var v *dashboardView
	deadline := time.Now().Add(dashboardWait)
	var err error
	for time.Now().Before(deadline) {
		v = &dashboardView{}
		if err = p.eval(readDashboard, v); err == nil {
			if err = cond(v); err == nil {
				return v
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	t.Fatalf("dashboard: %s not shown after %v: %v\npage: %s\nbrowser log: %q", what, dashboardWait, err, b, p.logs())
	return nil
}

// noPageErrors fails on the page's exceptions and errors, but for the failed loads
// allowed (substrings of the browser's message, e.g. the streaming endpoints' 404s).
func noPageErrors(t *testing.T, p *browserPage, allowed ...string) {
	t.Helper()
next:
	for _, l := range p.logs() {
		for _, a := range allowed {
			if strings.HasPrefix(l, "log (network)") && strings.Contains(l, a) {
				continue next
			}
		}
		t.Errorf("page error: %s", l)
	}
}

func dashboardURL(m *app.Main, basePath string) string {
	return "http://" + m.MonitorAddr() + basePath + "/"
}

// The dashboard at / in headless Chromium: with streaming, it shows a channel with its
// sequences and message count, a stalled subscriber's lag, this server's role, a message
// rate on the chart; with streaming off it says so and still shows core; under a base path
// (loaded without its trailing slash) every relative URL works.
func TestDashboardInBrowser(t *testing.T) {
	c := startChromium(t)

	t.Run("streaming", func(t *testing.T) {
		m := startMetricsServer(t)
		sc, err := stan.Connect(metricsCluster, "dash-pub", stan.NatsURL(clientURL(m)))
		must(t, err)
		defer sc.Close()
		for i := range 5 {
			must(t, sc.Publish("orders.eu", msgf("order %d", i)))
		}
		// Manual acks never sent and two in flight: it gets 1 and 2 and stalls, 3 behind.
		sub, err := stan.Connect(metricsCluster, "dash-sub", stan.NatsURL(clientURL(m)))
		must(t, err)
		defer sub.Close()
		_, err = sub.Subscribe("orders.eu", func(*stan.Msg) {}, stan.DeliverAllAvailable(), stan.SetManualAckMode(),
			stan.MaxInflight(2), stan.DurableName("audit"), stan.AckWait(time.Hour))
		must(t, err)

		p := c.newPage(t, 1280, 900)
		must(t, p.navigate(dashboardURL(m, "")))
		v := waitView(t, p, "the channel and the stalled subscriber", func(v *dashboardView) error {
			if len(v.Channels) != 1 || v.Channels[0].Name != "orders.eu" || v.Channels[0].Msgs != "5" ||
				v.Channels[0].First != "1" || v.Channels[0].Last != "5" {
				return fmt.Errorf("channels %+v", v.Channels)
			}
			if len(v.Subs) != 1 || v.Subs[0].Client != "dash-sub" || v.Subs[0].LastSent != "2" || v.Subs[0].Lag != "3" ||
				v.Subs[0].State != "stalled" {
				return fmt.Errorf("subscribers %+v", v.Subs)
			}
			return nil
		})
		if !v.StatusOK || v.Role != "standalone" || v.StanOff || !v.StanLinks || v.Tiles["stan_channels"] != "1" ||
			v.Tiles["stan_msgs"] != "5" || v.Tiles["stan_clients"] != "2" || v.Conns == 0 {
			t.Errorf("page: %+v", v)
		}
		for _, l := range []string{"varz", "connz", "subsz", "routez", "healthz", "metrics", "streaming/serverz",
			"streaming/channelsz?subs=1"} {
			if !strings.Contains(strings.Join(v.Links, " "), l) {
				t.Errorf("no link to %s: %v", l, v.Links)
			}
		}

		// Messages published between two polls show as a rate: in on the streaming line,
		// and in and out on core's (the PubAcks).
		must(t, sc.Publish("orders.us", []byte("x")))
		for i := range 20 {
			must(t, sc.Publish("orders.us", msgf("order %d", i)))
		}
		waitView(t, p, "a message rate", func(v *dashboardView) error {
			for _, s := range []string{"stanIn", "coreIn", "coreOut"} {
				if peak := v.Legend[s]; peak == "" || peak == "peak –" || peak == "peak 0" {
					return fmt.Errorf("%s %q (legend %v)", s, peak, v.Legend)
				}
			}
			if v.Lines == 0 {
				return fmt.Errorf("nothing drawn on the chart")
			}
			return nil
		})
		noPageErrors(t, p)
	})

	t.Run("no streaming", func(t *testing.T) {
		m := startServer(t)
		nc := connect(t, m)
		must(t, nc.Publish("core.only", []byte("x")))
		p := c.newPage(t, 1280, 900)
		must(t, p.navigate(dashboardURL(m, "")))
		v := waitView(t, p, "core without streaming", func(v *dashboardView) error {
			if v.Polls < 2 || !v.StatusOK || !v.StanOff || v.StanLinks || !v.ConnsRendered {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		if v.Role != "standalone" || v.Tiles["connections"] != "1" || len(v.Channels) != 0 || v.Tiles["stan_channels"] != "" {
			t.Errorf("page: %+v", v)
		}
		if _, ok := v.Legend["stanIn"]; ok {
			t.Errorf("streaming series on the chart without streaming: %v", v.Legend)
		}
		noPageErrors(t, p, "404")
	})

	t.Run("base path", func(t *testing.T) {
		m := startMetricsServer(t, "--http_base_path", "/mon")
		sc, err := stan.Connect(metricsCluster, "dash-bp", stan.NatsURL(clientURL(m)))
		must(t, err)
		defer sc.Close()
		must(t, sc.Publish("under.base", []byte("x")))
		p := c.newPage(t, 1280, 900)
		must(t, p.navigate("http://"+m.MonitorAddr()+"/mon")) // redirected to /mon/
		v := waitView(t, p, "the channel under /mon/", func(v *dashboardView) error {
			if len(v.Channels) != 1 || v.Channels[0].Name != "under.base" || v.Channels[0].Msgs != "1" {
				return fmt.Errorf("channels %+v", v.Channels)
			}
			return nil
		})
		if v.Path != "/mon/" || !v.StatusOK {
			t.Errorf("page: %+v", v)
		}
		noPageErrors(t, p)
	})
}

// TestDashboardScreenshot writes a screenshot of the dashboard with realistic traffic to
// $STARLING_DASHBOARD_PNG (`make dashboard-png` → docs/dashboard.png): three routed servers,
// the first with streaming; channels with a caught-up durable, a queue group, a stalled
// subscriber and an offline durable; core publishers and subscribers; a rate that varies.
// $STARLING_DASHBOARD_SECONDS (default 75) is how long the traffic runs before the shot.
func TestDashboardScreenshot(t *testing.T) {
	out := os.Getenv("STARLING_DASHBOARD_PNG")
	if out == "" {
		t.Skip("set STARLING_DASHBOARD_PNG to a file name to take the dashboard's screenshot (make dashboard-png)")
	}
	secs := 75
	if s := os.Getenv("STARLING_DASHBOARD_SECONDS"); s != "" {
		var err error
		secs, err = strconv.Atoi(s)
		must(t, err)
	}
	c := startChromium(t)

	cluster := []string{"--cluster", "nats://127.0.0.1:-1"}
	a := startMetricsServer(t, append([]string{"--name", "starling-a"}, cluster...)...)
	seed := "nats://" + a.Server().ClusterAddr().String()
	startServer(t, append([]string{"--name", "starling-b", "--routes", seed}, cluster...)...)
	startServer(t, append([]string{"--name", "starling-c", "--routes", seed}, cluster...)...)

	url := stan.NatsURL(clientURL(a))
	sconn := func(id string) stan.Conn {
		sc, err := stan.Connect(metricsCluster, id, url, stan.NatsOptions(nats.Name(id)))
		must(t, err)
		t.Cleanup(func() { _ = sc.Close() })
		return sc
	}
	nconn := func(name string) *nats.Conn {
		nc, err := nats.Connect(clientURL(a), nats.Name(name))
		must(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	noop := func(*stan.Msg) {}
	_, err := sconn("billing").Subscribe("orders.eu", noop, stan.DurableName("billing"), stan.DeliverAllAvailable())
	must(t, err)
	for _, id := range []string{"shipper-1", "shipper-2"} {
		_, err = sconn(id).QueueSubscribe("orders.us", "shipping", noop, stan.DurableName("shipping"))
		must(t, err)
	}
	_, err = sconn("fraud-check").Subscribe("payments", noop, stan.SetManualAckMode(), stan.MaxInflight(50),
		stan.AckWait(time.Hour), stan.DeliverAllAvailable())
	must(t, err)
	archiver, err := stan.Connect(metricsCluster, "archiver", url)
	must(t, err)
	_, err = archiver.Subscribe("audit.log", noop, stan.DurableName("archive"), stan.DeliverAllAvailable())
	must(t, err)
	inventory := nconn("inventory-service")
	_, err = inventory.Subscribe("inventory.>", func(*nats.Msg) {})
	must(t, err)
	web := nconn("web-frontend")
	pub := sconn("orders-api")

	p := c.newPage(t, 1280, 900)
	must(t, p.navigate(dashboardURL(a, "")))

	// Traffic, once a tick (20 a second) for secs: orders with a slow swell, payments and
	// audit steady, inventory updates in bursts; the archiver leaves half-way.
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for n := 0; time.Since(start) < time.Duration(secs)*time.Second; n++ {
		<-tick.C
		el := time.Since(start).Seconds()
		orders := 3 + int(2.5*math.Sin(el/9))
		for i := range orders {
			must(t, pub.Publish([]string{"orders.eu", "orders.us"}[i%2], msgf(`{"order":%d,"sku":"A-%d"}`, n*10+i, i)))
		}
		if n%2 == 0 {
			must(t, pub.Publish("payments", msgf(`{"payment":%d}`, n)))
		}
		if n%4 == 0 {
			must(t, pub.Publish("audit.log", msgf(`{"event":%d}`, n)))
		}
		if (n/40)%3 != 2 { // bursts: two seconds on, one off
			for i := range 8 {
				must(t, web.Publish("inventory.updates", msgf(`{"sku":"A-%d","qty":%d}`, i, n%50)))
			}
		}
		if archiver != nil && el > float64(secs)/2 {
			must(t, archiver.Close()) // its durable stays, offline
			archiver = nil
		}
	}
	waitView(t, p, "the channels and the offline durable", func(v *dashboardView) error {
		if len(v.Channels) != 4 {
			return fmt.Errorf("channels %+v", v.Channels)
		}
		for _, s := range v.Subs {
			if s.Client == "archiver" && s.State == "offline" {
				return nil
			}
		}
		return fmt.Errorf("subs %+v", v.Subs)
	})
	png, err := p.screenshot(1280)
	must(t, err)
	must(t, os.WriteFile(out, png, 0o644))
	t.Logf("wrote %s (%d bytes)", out, len(png))
	noPageErrors(t, p)
}
