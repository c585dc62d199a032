// Package monitor serves core's monitoring data over HTTP: /varz, /connz, /subsz
// (/subscriptionsz), /routez, /healthz, plus /accountz and /gatewayz in their empty forms.
// It only adapts: the data comes from core.Server methods, so it can be tested without
// HTTP and other layers (streaming) can mount their own handlers beside it.
package monitor
