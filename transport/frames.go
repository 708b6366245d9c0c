package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// FrameHeader describes one tensor frame. Seq is assigned by the Sender (the
// value passed to Send is ignored) and reported by Recv; Epoch is the
// fencing epoch the frame was produced under (see Receiver.SetMinEpoch).
type FrameHeader struct {
	Job   string
	Epoch uint64
	Step  int64
	Seq   uint64
	Kind  string // "act", "grad", ...
	Rows  int
	Cols  int
	Tag   string // free-form, e.g. "layer=12 sample=3"
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Wire format of one chunk message: a fixed 64-byte little-endian header
// followed by the (possibly compressed) chunk bytes.
//
//	 0 magic "UPTF"   4 version   5 type   6 codec   7 reserved
//	 8 session u64   16 seq u64   24 epoch u64
//	32 index u32     36 count u32  40 chunkSize u32  44 rawLen u32
//	48 total u64     56 crc32c of the raw (uncompressed) chunk
//	60 crc32c of bytes 0..59
//
// The frame body that is cut into chunks is: u32 metaLen, meta (padded to a
// multiple of 4 bytes), then the float32 values, little endian. Padding keeps
// every float inside one chunk (chunk sizes are multiples of 8) and lets the
// receiver assemble straight into float32 memory.
const (
	chunkMagic      = "UPTF"
	ackMagic        = "UPTA"
	wireVersion     = 1
	chunkHeaderSize = 64

	msgData  = 1 // a chunk of a frame
	msgProbe = 2 // "please send me your ack state" (no chunk bytes)
)

var (
	errNotChunk  = errors.New("not a stream chunk (bad magic)")
	errVersion   = errors.New("unsupported stream wire version")
	errHeaderCRC = errors.New("chunk header crc32c mismatch")
)

type chunkHeader struct {
	typ       uint8
	codec     Codec
	session   uint64
	seq       uint64
	epoch     uint64
	index     uint32
	count     uint32
	chunkSize uint32
	rawLen    uint32
	total     uint64
	crc       uint32
}

func (h *chunkHeader) put(b []byte) {
	le := binary.LittleEndian
	copy(b[0:4], chunkMagic)
	b[4], b[5], b[6], b[7] = wireVersion, h.typ, byte(h.codec), 0
	le.PutUint64(b[8:], h.session)
	le.PutUint64(b[16:], h.seq)
	le.PutUint64(b[24:], h.epoch)
	le.PutUint32(b[32:], h.index)
	le.PutUint32(b[36:], h.count)
	le.PutUint32(b[40:], h.chunkSize)
	le.PutUint32(b[44:], h.rawLen)
	le.PutUint64(b[48:], h.total)
	le.PutUint32(b[56:], h.crc)
	le.PutUint32(b[60:], crc32c(b[:60]))
}

func parseChunkHeader(b []byte) (chunkHeader, error) {
	le := binary.LittleEndian
	if len(b) < chunkHeaderSize || string(b[0:4]) != chunkMagic {
		return chunkHeader{}, errNotChunk
	}
	if b[4] != wireVersion {
		return chunkHeader{}, fmt.Errorf("%w %d (want %d)", errVersion, b[4], wireVersion)
	}
	if crc32c(b[:60]) != le.Uint32(b[60:]) {
		return chunkHeader{}, errHeaderCRC
	}
	return chunkHeader{
		typ: b[5], codec: Codec(b[6]),
		session: le.Uint64(b[8:]), seq: le.Uint64(b[16:]), epoch: le.Uint64(b[24:]),
		index: le.Uint32(b[32:]), count: le.Uint32(b[36:]),
		chunkSize: le.Uint32(b[40:]), rawLen: le.Uint32(b[44:]),
		total: le.Uint64(b[48:]), crc: le.Uint32(b[56:]),
	}, nil
}

// chunkCount is the number of chunks of a frame body: at least one, so even
// an empty tensor travels (its metadata is the body).
func chunkCount(total uint64, chunkSize uint32) uint64 {
	if total == 0 {
		return 1
	}
	return (total + uint64(chunkSize) - 1) / uint64(chunkSize)
}

const maxMetaString = 1 << 12

// encodeMeta validates hdr against data and returns the padded metadata
// section of the frame body (including its u32 length prefix).
func encodeMeta(hdr FrameHeader, n int) ([]byte, error) {
	if hdr.Rows < 0 || hdr.Cols < 0 {
		return nil, fmt.Errorf("transport: frame shape %dx%d is negative", hdr.Rows, hdr.Cols)
	}
	if hdr.Cols != 0 && hdr.Rows > math.MaxInt/hdr.Cols || hdr.Rows*hdr.Cols != n {
		return nil, fmt.Errorf("transport: frame shape %dx%d does not match %d values", hdr.Rows, hdr.Cols, n)
	}
	for _, s := range []string{hdr.Job, hdr.Kind, hdr.Tag} {
		if len(s) > maxMetaString {
			return nil, fmt.Errorf("transport: frame header string of %d bytes (max %d)", len(s), maxMetaString)
		}
	}
	le := binary.LittleEndian
	b := make([]byte, 4, 4+24+6+len(hdr.Job)+len(hdr.Kind)+len(hdr.Tag)+3)
	b = le.AppendUint64(b, uint64(hdr.Step))
	b = le.AppendUint64(b, uint64(hdr.Rows))
	b = le.AppendUint64(b, uint64(hdr.Cols))
	for _, s := range []string{hdr.Job, hdr.Kind, hdr.Tag} {
		b = le.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	le.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// decodeMeta parses the metadata at the start of a frame body and returns
// the header (without Seq and Epoch, which come from the chunk header) and
// the offset at which the float32 values start.
func decodeMeta(body []byte) (FrameHeader, int, error) {
	le := binary.LittleEndian
	bad := func(what string) (FrameHeader, int, error) {
		return FrameHeader{}, 0, fmt.Errorf("malformed frame metadata: %s", what)
	}
	if len(body) < 4 {
		return bad("short body")
	}
	mlen := int(le.Uint32(body))
	if mlen%4 != 0 || mlen < 30 || 4+mlen > len(body) || (len(body)-4-mlen)%4 != 0 {
		return bad(fmt.Sprintf("length %d in body of %d bytes", mlen, len(body)))
	}
	m := body[4 : 4+mlen]
	h := FrameHeader{Step: int64(le.Uint64(m)), Rows: int(le.Uint64(m[8:])), Cols: int(le.Uint64(m[16:]))}
	m = m[24:]
	var strs [3]string
	for i := range strs {
		if len(m) < 2 || len(m) < 2+int(le.Uint16(m)) {
			return bad("truncated string")
		}
		n := int(le.Uint16(m))
		strs[i], m = string(m[2:2+n]), m[2+n:]
	}
	h.Job, h.Kind, h.Tag = strs[0], strs[1], strs[2]
	n := (len(body) - 4 - mlen) / 4
	if h.Rows < 0 || h.Cols < 0 || (h.Cols != 0 && h.Rows > math.MaxInt/h.Cols) || h.Rows*h.Cols != n {
		return bad(fmt.Sprintf("shape %dx%d for %d values", h.Rows, h.Cols, n))
	}
	return h, 4 + mlen, nil
}

// ackMsg is what a receiver sends back: cumulative and selective acks plus
// the credit limit. Wire: "UPTA", version, 3 reserved, session u64,
// through u64, credit u64, window u32, n u32, n × seq u64, crc32c u32.
type ackMsg struct {
	session uint64   // sender session acked (0: none adopted yet)
	through uint64   // every seq ≤ through has been received
	credit  uint64   // the sender may send seq ≤ credit
	window  uint32   // the receiver's window W
	sacks   []uint64 // received seqs above through
}

func (a *ackMsg) marshal() []byte {
	le := binary.LittleEndian
	b := make([]byte, 0, 44+8*len(a.sacks))
	b = append(b, ackMagic...)
	b = append(b, wireVersion, 0, 0, 0)
	b = le.AppendUint64(b, a.session)
	b = le.AppendUint64(b, a.through)
	b = le.AppendUint64(b, a.credit)
	b = le.AppendUint32(b, a.window)
	b = le.AppendUint32(b, uint32(len(a.sacks)))
	for _, s := range a.sacks {
		b = le.AppendUint64(b, s)
	}
	return le.AppendUint32(b, crc32c(b))
}

func parseAck(b []byte) (ackMsg, error) {
	le := binary.LittleEndian
	if len(b) < 44 || string(b[:4]) != ackMagic || b[4] != wireVersion {
		return ackMsg{}, errors.New("not a stream ack")
	}
	if crc32c(b[:len(b)-4]) != le.Uint32(b[len(b)-4:]) {
		return ackMsg{}, errors.New("stream ack crc32c mismatch")
	}
	a := ackMsg{session: le.Uint64(b[8:]), through: le.Uint64(b[16:]),
		credit: le.Uint64(b[24:]), window: le.Uint32(b[32:])}
	n := int(le.Uint32(b[36:]))
	if len(b) != 44+8*n {
		return ackMsg{}, errors.New("stream ack length mismatch")
	}
	for i := range n {
		a.sacks = append(a.sacks, le.Uint64(b[40+8*i:]))
	}
	return a, nil
}
