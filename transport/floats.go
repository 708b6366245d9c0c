package transport

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// The wire carries float32 values little endian. On little-endian hosts
// (amd64, arm64: every machine we run on) that is the in-memory layout, so the
// sender chunks the caller's slice without converting it and the receiver
// assembles chunks directly into the []float32 it returns. Big-endian hosts
// take the converting path.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// float32Bytes returns the wire bytes of v: a view of v's memory on
// little-endian hosts (v must not change until the bytes are consumed), a
// converted copy elsewhere.
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	if hostLittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// frameBuf is the receive buffer of one frame body. On little-endian hosts
// bytes aliases words, so decoding the floats is free.
type frameBuf struct {
	words []float32
	bytes []byte
}

// newFrameBuf allocates a body buffer; total is a multiple of 4 (the sender
// pads the metadata).
func newFrameBuf(total int) frameBuf {
	if !hostLittleEndian || total == 0 {
		return frameBuf{bytes: make([]byte, total)}
	}
	w := make([]float32, total/4)
	return frameBuf{words: w, bytes: unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), total)}
}

// floats returns the values stored from byte offset off (a multiple of 4)
// to the end of the buffer.
func (b frameBuf) floats(off int) []float32 {
	n := (len(b.bytes) - off) / 4
	if n == 0 {
		return []float32{}
	}
	if b.words != nil {
		return b.words[off/4:]
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b.bytes[off+4*i:]))
	}
	return v
}
