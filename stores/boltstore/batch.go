package boltstore

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"
)

// batch is the metadata one stager (a channel's subscriptions, or the clients) staged for
// the next commit: bucket operations whose keys and values were encoded at Flush, back to
// back in buf, so that the commit reads nothing its owner may be changing. A stager's
// Flushes append to its batch until a commit takes it; then the batch belongs to the
// commit, and the next Flush starts another.
type batch struct {
	st  *stager
	seq uint64 // the stager sequence of the last Flush in it
	ops []wop
	buf []byte
}

// wop is one bucket operation of a batch: its key is buf[k:v], its value buf[v:end].
type wop struct {
	kind      wopKind
	bucket    []byte // the owner's long-lived bucket name
	k, v, end uint32
}

type wopKind uint8

const (
	wopPut       wopKind = iota
	wopDelete            // the key
	wopDelPrefix         // every key starting with the key
	wopReset             // delete the bucket (if present) and create it empty
)

// maxKeptBatch is the largest buf a batch keeps for reuse; a bigger one (a whole rewrite)
// goes to the garbage collector instead of staying with the store.
const maxKeptBatch = 1 << 20

func (b *batch) reset() {
	b.st, b.seq = nil, 0
	clear(b.ops) // bucket names
	b.ops, b.buf = b.ops[:0], b.buf[:0]
}

func (b *batch) op(kind wopKind, bucket, key []byte) {
	k := uint32(len(b.buf))
	b.buf = append(b.buf, key...)
	v := uint32(len(b.buf))
	b.ops = append(b.ops, wop{kind: kind, bucket: bucket, k: k, v: v, end: v})
}

func (b *batch) put(bucket, key, value []byte) {
	b.op(wopPut, bucket, key)
	b.buf = append(b.buf, value...)
	b.ops[len(b.ops)-1].end = uint32(len(b.buf))
}

// putProto puts m encoded as the value, marshalled straight into buf.
func (b *batch) putProto(bucket, key []byte, m proto.Message) error {
	start := len(b.buf)
	b.op(wopPut, bucket, key)
	var err error
	b.buf, err = proto.MarshalOptions{}.MarshalAppend(b.buf, m)
	if err != nil {
		b.ops, b.buf = b.ops[:len(b.ops)-1], b.buf[:start]
		return err
	}
	b.ops[len(b.ops)-1].end = uint32(len(b.buf))
	return nil
}

// apply writes the batch in tx, in order. bolt keeps keys and values until the commit
// ends: buf does not change until the batch is released after it.
func (b *batch) apply(tx *bolt.Tx) error {
	var bk *bolt.Bucket // the bucket of the previous op: runs of ops share one
	var bname []byte
	for i := range b.ops {
		op := &b.ops[i]
		key, val := b.buf[op.k:op.v:op.v], b.buf[op.v:op.end:op.end]
		if op.kind == wopReset {
			if err := tx.DeleteBucket(op.bucket); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(op.bucket); err != nil {
				return err
			}
			bk = nil
			continue
		}
		if bk == nil || !bytes.Equal(bname, op.bucket) {
			if bk, bname = tx.Bucket(op.bucket), op.bucket; bk == nil {
				return fmt.Errorf("%w: no bucket %q", ErrCorrupt, op.bucket)
			}
		}
		var err error
		switch op.kind {
		case wopPut:
			err = bk.Put(key, val)
		case wopDelete:
			err = bk.Delete(key)
		case wopDelPrefix:
			err = deletePrefix(bk, key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deletePrefix deletes every key of b starting with prefix. (Deleting at a cursor moves
// it to the next key, so the walk restarts from Seek after each.)
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
