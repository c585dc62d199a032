package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"
)

// routeCA issues route certificates: each one serves (accepted routes) and is a client
// (solicited routes), so it carries both key usages and 127.0.0.1.
type routeCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newRouteCA(t *testing.T, name string) *routeCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	dir := t.TempDir()
	return &routeCA{t: t, dir: dir, cert: cert, key: key, file: writePEM(t, dir, name+"-ca.pem", "CERTIFICATE", der)}
}

// tlsBlock writes a certificate and key for node name and returns a cluster tls block using them.
func (ca *routeCA) tlsBlock(name string) string {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	certFile := writePEM(t, ca.dir, name+".pem", "CERTIFICATE", der)
	keyFile := writePEM(t, ca.dir, name+"-key.pem", "EC PRIVATE KEY", kb)
	return fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true, timeout: 2 }", certFile, keyFile, ca.file)
}

// clusterConf is a config file with just a cluster block: listen, name, then body.
func clusterConf(t *testing.T, n *node, body string) string {
	t.Helper()
	return writeConf(t, n.name+".conf", fmt.Sprintf("cluster {\n  listen: %q\n  name: c1\n  %s\n}\n", n.routeAddr(), body))
}

func seedList(seeds ...*node) string {
	s := "routes: ["
	for i, n := range seeds {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", n.routeURL())
	}
	return s + "]"
}

// With route TLS (verify: true) the mesh forms over TLS; a server speaking plain TCP, or one
// with a certificate from another CA, is not admitted.
func TestClusterRouteTLS(t *testing.T) {
	ca, otherCA := newRouteCA(t, "routes"), newRouteCA(t, "stranger")
	a, b, plain, stranger := newNode(t, "A"), newNode(t, "B"), newNode(t, "PLAIN"), newNode(t, "STRANGER")
	a.start("-c", clusterConf(t, a, ca.tlsBlock("A")))
	b.start("-c", clusterConf(t, b, ca.tlsBlock("B")+"\n  "+seedList(a)))
	waitMesh(t, a, b)
	var v struct {
		Cluster struct {
			TLSRequired bool `json:"tls_required"`
			TLSVerify   bool `json:"tls_verify"`
		} `json:"cluster"`
	}
	must(t, a.monGet("/varz", &v))
	if !v.Cluster.TLSRequired || !v.Cluster.TLSVerify {
		t.Fatalf("/varz cluster %+v, want tls_required and tls_verify", v.Cluster)
	}
	plain.start("-c", clusterConf(t, plain, seedList(a)))
	stranger.start("-c", clusterConf(t, stranger, otherCA.tlsBlock("STRANGER")+"\n  "+seedList(a)))

	// Watch over one retry of the outsiders' configured seed (about a second apart).
	keptOut(t, a, b, 1200*time.Millisecond, "tls.x", plain, stranger)
}

// cluster { no_advertise: true }: messages cross, but clients are not told about the other
// servers.
func TestClusterNoAdvertise(t *testing.T) {
	a, b := newNode(t, "A"), newNode(t, "B")
	a.start("-c", clusterConf(t, a, "no_advertise: true"))
	early := a.dial()
	must(t, early.Flush())
	b.start("-c", clusterConf(t, b, "no_advertise: true\n  "+seedList(a)))
	waitMesh(t, a, b)
	ncB := b.dial()
	got := newCounter()
	got.subscribe(t, ncB, "na.x")
	awaitInterest(t, early, ncB)
	publishAll(t, early, "na.x", []string{"hello"})
	exactlyOnce(t, "subscriber on B", got.take(1, 5*time.Second), []string{"hello"})
	late := a.dial()
	must(t, late.Flush())
	for _, nc := range [](interface{ DiscoveredServers() []string }){early, late, ncB} {
		if d := nc.DiscoveredServers(); len(d) != 0 {
			t.Fatalf("a client was told about %v despite no_advertise", d)
		}
	}
}
