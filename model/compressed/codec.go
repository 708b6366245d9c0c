package compressed

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Part is one stored tensor of a compressed weight.
type Part struct {
	Suffix string // "shape", "compressed", "bitmask" or "row_offsets"
	DType  string // safetensors spelling: I64, U8 or the weight's dtype
	Shape  []int
	Data   []byte
}

// PartNames are the suffixes a format stores for one weight, in the order
// compressed-tensors writes them (its compression_param_names).
func PartNames(format string) []string {
	if format == Sparse24Bitmask {
		return []string{"shape", "compressed", "bitmask"}
	}
	return []string{"shape", "compressed", "bitmask", "row_offsets"}
}

// Prefix is the module name of a weight ("x.weight" → "x"); compressed
// parts are named prefix + "." + suffix.
func Prefix(weightName string) string {
	const w = ".weight"
	if len(weightName) > len(w) && weightName[len(weightName)-len(w):] == w {
		return weightName[:len(weightName)-len(w)]
	}
	return weightName
}

func int64Bytes(v ...int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

// Compress encodes the rows×cols weight raw (little-endian elements of
// dtype) in format. For sparse-24-bitmask the weight must have at most 2
// non-zeros in every group of 4 of a row, and cols must be a multiple of 4.
func Compress(format, dtype string, rows, cols int, raw []byte) ([]Part, error) {
	size := ElemSize(dtype)
	if size == 0 {
		return nil, fmt.Errorf("compress: dtype %s is not a float dtype", dtype)
	}
	if rows <= 0 || cols <= 0 || len(raw) != rows*cols*size {
		return nil, fmt.Errorf("compress: %d bytes for a %d×%d %s weight", len(raw), rows, cols, dtype)
	}
	stride := (cols + 7) / 8
	mask := make([]byte, rows*stride)
	switch format {
	case SparseBitmask:
		offsets := make([]int64, rows)
		nz := 0
		for i := 0; i < rows*cols; i++ {
			if !isZero(raw, i, size) {
				nz++
			}
		}
		vals := make([]byte, 0, nz*size)
		for r := 0; r < rows; r++ {
			offsets[r] = int64(len(vals) / size)
			for c := 0; c < cols; c++ {
				i := r*cols + c
				if !isZero(raw, i, size) {
					mask[r*stride+c/8] |= 1 << (c % 8)
					vals = append(vals, raw[i*size:(i+1)*size]...)
				}
			}
		}
		return []Part{
			{"shape", "I64", []int{2}, int64Bytes(int64(rows), int64(cols))},
			{"compressed", dtype, []int{len(vals) / size}, vals},
			{"bitmask", "U8", []int{rows, stride}, mask},
			{"row_offsets", "I64", []int{rows}, int64Bytes(offsets...)},
		}, nil
	case Sparse24Bitmask:
		if cols%4 != 0 {
			return nil, fmt.Errorf("compress: 2:4 needs a width that is a multiple of 4 (got %d)", cols)
		}
		vals := make([]byte, 0, rows*cols/2*size)
		for r := 0; r < rows; r++ {
			for g := 0; g < cols; g += 4 {
				keep, err := keep24(raw, r*cols+g, size)
				if err != nil {
					return nil, fmt.Errorf("compress: row %d, columns %d–%d: %w", r, g, g+3, err)
				}
				for j := 0; j < 4; j++ {
					if keep&(1<<j) != 0 {
						c, i := g+j, r*cols+g+j
						mask[r*stride+c/8] |= 1 << (c % 8)
						vals = append(vals, raw[i*size:(i+1)*size]...)
					}
				}
			}
		}
		return []Part{
			{"shape", "I64", []int{2, 1}, int64Bytes(int64(rows), int64(cols))},
			{"compressed", dtype, []int{rows, cols / 2}, vals},
			{"bitmask", "U8", []int{rows, stride}, mask},
		}, nil
	}
	return nil, checkFormat(format)
}

// keep24 picks the 2 positions of a group of 4 that sparse-24-bitmask keeps:
// the non-zeros, topped up with the first zeros. compressed-tensors takes the
// top-2 |values| (torch.topk), which are the same non-zeros; which zeros a
// group with fewer than 2 non-zeros marks is not specified there (topk's
// tie order) and does not change the decompressed weight.
func keep24(raw []byte, first, size int) (uint8, error) {
	var keep uint8
	n := 0
	for j := 0; j < 4; j++ {
		if !isZero(raw, first+j, size) {
			keep |= 1 << j
			n++
		}
	}
	if n > 2 {
		return 0, fmt.Errorf("%d non-zeros in a group of 4 (not 2:4 sparse)", n)
	}
	for j := 0; j < 4 && n < 2; j++ {
		if keep&(1<<j) == 0 {
			keep |= 1 << j
			n++
		}
	}
	return keep, nil
}

// Decompress rebuilds the dense weight (little-endian elements of the
// compressed values' dtype) from its parts, checking every shape and dtype
// against the format's definition.
func Decompress(format string, parts map[string]Part) (rows, cols int, dtype string, raw []byte, err error) {
	if err := checkFormat(format); err != nil {
		return 0, 0, "", nil, err
	}
	for _, s := range PartNames(format) {
		if _, ok := parts[s]; !ok {
			return 0, 0, "", nil, fmt.Errorf("%s: the %q part is missing", format, s)
		}
	}
	sh := parts["shape"]
	if sh.DType != "I64" || len(sh.Data) != 16 {
		return 0, 0, "", nil, fmt.Errorf("%s: shape must be 2 int64 values (got %s %v)", format, sh.DType, sh.Shape)
	}
	r64, c64 := int64(binary.LittleEndian.Uint64(sh.Data)), int64(binary.LittleEndian.Uint64(sh.Data[8:]))
	if r64 <= 0 || c64 <= 0 || r64 > 1<<31 || c64 > 1<<31 {
		return 0, 0, "", nil, fmt.Errorf("%s: dense shape [%d %d] is not a positive 2-D shape", format, r64, c64)
	}
	rows, cols = int(r64), int(c64)
	stride := (cols + 7) / 8
	bm := parts["bitmask"]
	if bm.DType != "U8" || !sameShape(bm.Shape, rows, stride) {
		return 0, 0, "", nil, fmt.Errorf("%s: bitmask is %s %v, want U8 [%d %d]", format, bm.DType, bm.Shape, rows, stride)
	}
	cv := parts["compressed"]
	dtype = cv.DType
	size := ElemSize(dtype)
	if size == 0 {
		return 0, 0, "", nil, fmt.Errorf("%s: compressed values have dtype %s, not a float dtype", format, dtype)
	}
	kept := 0
	for r := 0; r < rows; r++ {
		row := bm.Data[r*stride : (r+1)*stride]
		for i, b := range row {
			if i == stride-1 && cols%8 != 0 {
				b &= byte(1)<<(cols%8) - 1 // packbits pads the last byte with zeros
			}
			kept += bits.OnesCount8(b)
		}
	}
	switch format {
	case SparseBitmask:
		if len(cv.Shape) != 1 || cv.Shape[0] != kept || len(cv.Data) != kept*size {
			return 0, 0, "", nil, fmt.Errorf("%s: %d values stored for %d bitmask bits", format, len(cv.Data)/size, kept)
		}
		ro := parts["row_offsets"]
		if ro.DType != "I64" || len(ro.Shape) != 1 || ro.Shape[0] != rows {
			return 0, 0, "", nil, fmt.Errorf("%s: row_offsets is %s %v, want I64 [%d]", format, ro.DType, ro.Shape, rows)
		}
	case Sparse24Bitmask:
		if cols%4 != 0 || !sameShape(cv.Shape, rows, cols/2) || kept != rows*cols/2 || len(cv.Data) != kept*size {
			return 0, 0, "", nil, fmt.Errorf("%s: values %v and %d bitmask bits do not fit a 2:4 [%d %d] weight", format, cv.Shape, kept, rows, cols)
		}
	}
	raw = make([]byte, rows*cols*size)
	src := cv.Data
	for r := 0; r < rows; r++ {
		row := bm.Data[r*stride:]
		for c := 0; c < cols; c++ {
			if row[c/8]&(1<<(c%8)) != 0 {
				i := r*cols + c
				copy(raw[i*size:(i+1)*size], src[:size])
				src = src[size:]
			}
		}
	}
	return rows, cols, dtype, raw, nil
}

func sameShape(s []int, rows, cols int) bool { return len(s) == 2 && s[0] == rows && s[1] == cols }
