package filestore

import "encoding/binary"

// Encoding helpers for metadata records.

func putStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func putUv(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func putIv(b []byte, v int64) []byte  { return binary.AppendVarint(b, v) }

type dec struct {
	b   []byte
	bad bool
}

func (d *dec) uv() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) iv() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uv()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) str() string { return string(d.bytes()) }

// optStr decodes a trailing string field added after the record's first version: a
// record that ends before it (written by an older build) has "".
func (d *dec) optStr() string {
	if d.bad || len(d.b) == 0 {
		return ""
	}
	return d.str()
}

// optUv decodes a trailing uvarint field added after the record's first version (0 when
// the record ends before it).
func (d *dec) optUv() uint64 {
	if d.bad || len(d.b) == 0 {
		return 0
	}
	return d.uv()
}

func (d *dec) byte1() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}
