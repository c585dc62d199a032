//go:build ignore

// Writes this directory's EXAMPLE-ONLY certificates: a CA, and a server certificate for
// localhost and 127.0.0.1 that the CA signed, valid for 20 years. Their private keys are
// public (they are in the repository): never use them for anything but trying the example.
//
//	go run examples/tls/gen.go   (from the repository root)
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

func main() {
	dir := filepath.Join("examples", "tls")
	now := time.Now().Truncate(time.Hour)
	notAfter := now.AddDate(20, 0, 0)

	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"Starling"}, CommonName: "Starling EXAMPLE ONLY CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
	}
	caDER := sign(caTmpl, caTmpl, caKey, caKey)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		log.Fatal(err)
	}

	srvKey := newKey()
	srvDER := sign(&x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{Organization: []string{"Starling"}, CommonName: "Starling EXAMPLE ONLY server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}, ca, srvKey, caKey)

	write(filepath.Join(dir, "example-only-ca.pem"), "CERTIFICATE", caDER)
	write(filepath.Join(dir, "example-only-server-cert.pem"), "CERTIFICATE", srvDER)
	kb, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		log.Fatal(err)
	}
	write(filepath.Join(dir, "example-only-server-key.pem"), "EC PRIVATE KEY", kb)
}

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	return k
}

func sign(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) []byte {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		log.Fatal(err)
	}
	return der
}

func write(path, kind string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o644); err != nil {
		log.Fatal(err)
	}
}
