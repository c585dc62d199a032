// Package monitor serves core's monitoring data over HTTP: /varz, /connz, /subsz
// (/subscriptionsz), /routez, /healthz, /accountz, /accstatz, plus /gatewayz and /leafz in
// their empty forms, and /metrics in the Prometheus text format (metrics.go: a collector
// that reads, at scrape time, the counters core keeps anyway; other layers Register their
// own).
// It only adapts: the data comes from core.Server methods, so it can be tested without
// HTTP and other layers (streaming) can mount their own handlers beside it.
//
// At / it serves a dashboard (dashboard.go; the page, script and style in dashboard/,
// embedded): a page that polls the JSON endpoints, core's and streaming's, from the browser
// once a second and draws them — the server does nothing for it but serve three files. The
// page names streaming's paths as URLs, not as an import, and copes with their absence.
package monitor
