package transport

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestChunkHeaderRoundTripAndCorruption(t *testing.T) {
	h := chunkHeader{typ: msgData, codec: CodecS2, session: 7, seq: 9, epoch: 3, index: 2, count: 5,
		chunkSize: 1 << 20, rawLen: 123, total: 4<<20 + 123, crc: 0xdeadbeef}
	b := make([]byte, chunkHeaderSize)
	h.put(b)
	got, err := parseChunkHeader(b)
	if err != nil || got != h {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := 4; i < chunkHeaderSize; i++ { // every byte after the magic is covered
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := parseChunkHeader(c); err == nil {
			t.Fatalf("flipped byte %d not detected", i)
		}
	}
	c := bytes.Clone(b)
	c[0] = 'X'
	if _, err := parseChunkHeader(c); !errors.Is(err, errNotChunk) {
		t.Fatalf("bad magic: %v", err)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	hdr := FrameHeader{Job: "j", Step: -3, Kind: "act", Rows: 2, Cols: 3, Tag: "layer=1"}
	meta, err := encodeMeta(hdr, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta)%4 != 0 {
		t.Fatalf("meta not padded: %d", len(meta))
	}
	body := append(meta, make([]byte, 24)...)
	got, off, err := decodeMeta(body)
	if err != nil || got != hdr || off != len(meta) {
		t.Fatalf("got %+v off %d err %v", got, off, err)
	}
	if _, err := encodeMeta(FrameHeader{Rows: 2, Cols: 2}, 3); err == nil {
		t.Fatal("shape mismatch accepted")
	}
	if _, err := encodeMeta(FrameHeader{Rows: -1, Cols: 0}, 0); err == nil {
		t.Fatal("negative shape accepted")
	}
}

func TestAckRoundTrip(t *testing.T) {
	a := ackMsg{session: 1, through: 5, credit: 9, window: 4, sacks: []uint64{7, 8}}
	b := a.marshal()
	got, err := parseAck(b)
	if err != nil || got.session != 1 || got.through != 5 || got.credit != 9 || got.window != 4 ||
		len(got.sacks) != 2 || got.sacks[1] != 8 {
		t.Fatalf("%+v %v", got, err)
	}
	b[20] ^= 1
	if _, err := parseAck(b); err == nil {
		t.Fatal("corrupt ack accepted")
	}
}

func TestCodecsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 100000)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	zeros := make([]byte, 100000)
	for _, c := range []Codec{CodecNone, CodecZstd, CodecS2} {
		for _, src := range [][]byte{nil, {1}, random, zeros} {
			enc := compressAppend(c, []byte("hdr"), src)
			if string(enc[:3]) != "hdr" {
				t.Fatalf("%v: prefix clobbered", c)
			}
			dst := make([]byte, len(src))
			if err := decompressInto(c, dst, enc[3:]); err != nil || !bytes.Equal(dst, src) {
				t.Fatalf("%v: round trip of %d bytes: %v", c, len(src), err)
			}
			if len(src) > 0 {
				if err := decompressInto(c, make([]byte, len(src)-1), enc[3:]); err == nil {
					t.Fatalf("%v: size mismatch not detected", c)
				}
			}
		}
		if p, err := ParseCodec(c.String()); err != nil || p != c {
			t.Fatalf("ParseCodec(%q) = %v, %v", c.String(), p, err)
		}
	}
	if _, err := ParseCodec("lz4"); err == nil {
		t.Fatal("unknown codec accepted")
	}
}

func TestFloatViews(t *testing.T) {
	v := []float32{1, -0, float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32}
	b := float32Bytes(v)
	fb := newFrameBuf(8 + len(b))
	copy(fb.bytes[8:], b)
	got := fb.floats(8)
	for i := range v {
		if math.Float32bits(got[i]) != math.Float32bits(v[i]) {
			t.Fatalf("value %d: %x != %x", i, math.Float32bits(got[i]), math.Float32bits(v[i]))
		}
	}
}
