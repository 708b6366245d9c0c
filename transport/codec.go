package transport

import (
	"fmt"
	"strings"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Codec is the compression applied to a stream's chunks.
type Codec uint8

const (
	CodecNone Codec = iota // no compression
	CodecZstd              // zstd, fastest level
	CodecS2                // S2 (Snappy-compatible family), very fast
)

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecZstd:
		return "zstd"
	case CodecS2:
		return "s2"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ParseCodec parses "none", "zstd" or "s2" (as used in configs and flags).
func ParseCodec(s string) (Codec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return CodecNone, nil
	case "zstd":
		return CodecZstd, nil
	case "s2":
		return CodecS2, nil
	}
	return 0, fmt.Errorf("transport: unknown codec %q (want none, zstd or s2)", s)
}

// maxDecodedChunk caps what a decoder may produce from one chunk; no valid
// chunk exceeds the largest NATS payload we allow (64 MiB).
const maxDecodedChunk = 64 << 20

// The zstd encoder and decoder are shared by every stream of the process.
// EncodeAll and DecodeAll are safe for concurrent use and keep their internal
// state between calls, so no codec is allocated per chunk or per stream.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderCRC(false), // chunks carry their own crc32c
			zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic("transport: zstd encoder: " + err.Error()) // only fails on bad options
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(maxDecodedChunk),
			zstd.WithDecoderConcurrency(0))
		if err != nil {
			panic("transport: zstd decoder: " + err.Error())
		}
		return d
	})
)

// compressAppend appends the compressed form of src to dst.
func compressAppend(c Codec, dst, src []byte) []byte {
	switch c {
	case CodecZstd:
		return zstdEncoder().EncodeAll(src, dst)
	case CodecS2:
		need := s2.MaxEncodedLen(len(src))
		if cap(dst)-len(dst) < need {
			grown := make([]byte, len(dst), len(dst)+need)
			copy(grown, dst)
			dst = grown
		}
		enc := s2.Encode(dst[len(dst):len(dst)+need], src)
		return dst[:len(dst)+len(enc)]
	}
	return append(dst, src...)
}

// decompressInto decodes src into exactly dst. A chunk decoding to any other
// length is corrupt.
func decompressInto(c Codec, dst, src []byte) error {
	switch c {
	case CodecNone:
		if len(src) != len(dst) {
			return fmt.Errorf("raw chunk has %d bytes, header says %d", len(src), len(dst))
		}
		copy(dst, src)
	case CodecS2:
		n, err := s2.DecodedLen(src)
		if err != nil {
			return fmt.Errorf("s2: %w", err)
		}
		if n != len(dst) {
			return fmt.Errorf("s2 chunk decodes to %d bytes, header says %d", n, len(dst))
		}
		if _, err := s2.Decode(dst, src); err != nil {
			return fmt.Errorf("s2: %w", err)
		}
	case CodecZstd:
		// dst has cap == len, so output that does not fit lands in a new
		// slice and is caught by the length check.
		out, err := zstdDecoder().DecodeAll(src, dst[:0:len(dst)])
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		if len(out) != len(dst) {
			return fmt.Errorf("zstd chunk decodes to %d bytes, header says %d", len(out), len(dst))
		}
	default:
		return fmt.Errorf("unknown codec %d", uint8(c))
	}
	return nil
}
