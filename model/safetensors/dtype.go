package safetensors

// DType is a safetensors element type, spelled as in the file header.
type DType string

// The dtypes of the safetensors specification.
const (
	F64        DType = "F64"
	F32        DType = "F32"
	F16        DType = "F16"
	BF16       DType = "BF16"
	I64        DType = "I64"
	I32        DType = "I32"
	I16        DType = "I16"
	I8         DType = "I8"
	U64        DType = "U64"
	U32        DType = "U32"
	U16        DType = "U16"
	U8         DType = "U8"
	Bool       DType = "BOOL"
	C64        DType = "C64"
	F8E4M3     DType = "F8_E4M3"
	F8E5M2     DType = "F8_E5M2"
	F8E8M0     DType = "F8_E8M0"
	F8E4M3FNUZ DType = "F8_E4M3FNUZ"
	F8E5M2FNUZ DType = "F8_E5M2FNUZ"
	F6E2M3     DType = "F6_E2M3"
	F6E3M2     DType = "F6_E3M2"
	F4         DType = "F4"
)

// unknownBits is what Bits reports for a dtype outside the specification.
const unknownBits = 0

// AllDTypes lists every dtype the package knows, for tests and tools.
var AllDTypes = []DType{
	F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, Bool, C64,
	F8E4M3, F8E5M2, F8E8M0, F8E4M3FNUZ, F8E5M2FNUZ, F6E2M3, F6E3M2, F4,
}

// Bits returns the width of one element in bits, or 0 for an unknown dtype.
// Sub-byte dtypes (F4, F6_*) are packed, so Bits is the only exact measure.
func (d DType) Bits() int {
	switch d {
	case F64, I64, U64, C64:
		return 64
	case F32, I32, U32:
		return 32
	case F16, BF16, I16, U16:
		return 16
	case I8, U8, Bool, F8E4M3, F8E5M2, F8E8M0, F8E4M3FNUZ, F8E5M2FNUZ:
		return 8
	case F6E2M3, F6E3M2:
		return 6
	case F4:
		return 4
	}
	return unknownBits
}

// Size returns the size of one element in bytes; 0 for unknown dtypes and
// for the packed sub-byte dtypes, whose element has no whole-byte size.
func (d DType) Size() int {
	b := d.Bits()
	if b%8 != 0 {
		return 0
	}
	return b / 8
}

// Valid reports whether d is a dtype of the specification.
func (d DType) Valid() bool { return d.Bits() != unknownBits }

// IsFloat reports whether ReadFloat32 and WriteFile can convert d.
func (d DType) IsFloat() bool {
	switch d {
	case F64, F32, F16, BF16:
		return true
	}
	return false
}
