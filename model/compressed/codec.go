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
		nz := nonzeroMask(mask, raw, rows, cols, stride, size)
		offsets := make([]int64, rows)
		var before int64
		for r := range offsets {
			offsets[r] = before
			for _, b := range mask[r*stride : (r+1)*stride] {
				before += int64(bits.OnesCount8(b))
			}
		}
		vals := make([]byte, nz*size+2)
		gather(vals, raw, mask, rows, cols, stride, size)
		vals = vals[:nz*size]
		return []Part{
			{"shape", "I64", []int{2}, int64Bytes(int64(rows), int64(cols))},
			{"compressed", dtype, []int{nz}, vals},
			{"bitmask", "U8", []int{rows, stride}, mask},
			{"row_offsets", "I64", []int{rows}, int64Bytes(offsets...)},
		}, nil
	case Sparse24Bitmask:
		if cols%4 != 0 {
			return nil, fmt.Errorf("compress: 2:4 needs a width that is a multiple of 4 (got %d)", cols)
		}
		for r := 0; r < rows; r++ {
			for g := 0; g < cols; g += 4 {
				keep, err := keep24(raw, r*cols+g, size)
				if err != nil {
					return nil, fmt.Errorf("compress: row %d, columns %d–%d: %w", r, g, g+3, err)
				}
				// g is a multiple of 4: the group's 4 bits share a byte
				mask[r*stride+g/8] |= keep << (g % 8)
			}
		}
		vals := make([]byte, rows*cols/2*size+2)
		gather(vals, raw, mask, rows, cols, stride, size)
		vals = vals[:rows*cols/2*size]
		return []Part{
			{"shape", "I64", []int{2, 1}, int64Bytes(int64(rows), int64(cols))},
			{"compressed", dtype, []int{rows, cols / 2}, vals},
			{"bitmask", "U8", []int{rows, stride}, mask},
		}, nil
	}
	return nil, checkFormat(format)
}

// nonzeroMask sets the mask bit of every non-zero element (packbits
// order: bit c%8 of byte c/8 of the row) and returns their number.
func nonzeroMask(mask, raw []byte, rows, cols, stride, size int) int {
	nz := 0
	for r := 0; r < rows; r++ {
		m := mask[r*stride : (r+1)*stride]
		if size == 2 { // bf16/f16, the common case: branch-free (zeros are unpredictable)
			row := raw[2*r*cols : 2*(r+1)*cols]
			for c := 0; c < cols; c++ {
				x := uint32(row[2*c]) | uint32(row[2*c+1]&0x7f)<<8
				bit := (x + 0x7fff) >> 15 // 1 unless ±0
				m[c>>3] |= byte(bit) << (c & 7)
				nz += int(bit)
			}
			continue
		}
		for c := 0; c < cols; c++ {
			if !isZero(raw, r*cols+c, size) {
				m[c>>3] |= 1 << (c & 7)
				nz++
			}
		}
	}
	return nz
}

// gather copies the elements whose mask bit is set into vals, row-major;
// scatter is its inverse into a zeroed dense buffer. For 2-byte elements
// both are branch-free, so vals needs 2 bytes of slack beyond its values.
func gather(vals, raw, mask []byte, rows, cols, stride, size int) {
	k := 0
	for r := 0; r < rows; r++ {
		row, m := raw[r*cols*size:(r+1)*cols*size], mask[r*stride:(r+1)*stride]
		for c := 0; c < cols; c++ {
			bit := int(m[c>>3]>>(c&7)) & 1
			if size == 2 {
				vals[k], vals[k+1] = row[2*c], row[2*c+1]
			} else if bit == 1 {
				copy(vals[k:k+size], row[c*size:])
			}
			k += size * bit
		}
	}
}

func scatter(raw, vals, mask []byte, rows, cols, stride, size int) {
	k := 0
	for r := 0; r < rows; r++ {
		row, m := raw[r*cols*size:(r+1)*cols*size], mask[r*stride:(r+1)*stride]
		for c := 0; c < cols; c++ {
			bit := int(m[c>>3]>>(c&7)) & 1
			if size == 2 {
				keep := byte(-bit) // 0xff or 0
				row[2*c], row[2*c+1] = vals[k]&keep, vals[k+1]&keep
			} else if bit == 1 {
				copy(row[c*size:(c+1)*size], vals[k:])
			}
			k += size * bit
		}
	}
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
	vals := cv.Data
	if size == 2 { // scatter reads 2 bytes past the last value
		vals = append(vals[:len(vals):len(vals)], 0, 0)
	}
	scatter(raw, vals, bm.Data, rows, cols, stride, size)
	return rows, cols, dtype, raw, nil
}

func sameShape(s []int, rows, cols int) bool { return len(s) == 2 && s[0] == rows && s[1] == cols }
