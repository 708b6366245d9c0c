package tokenizer

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers and enum values of sentencepiece_model.proto (ModelProto),
// the schema of SentencePiece ".model" files. Only what the wrapper needs is
// read; go-sentencepiece parses the full message itself.
const (
	fModelPieces     = 1 // repeated SentencePiece
	fModelTrainer    = 2 // TrainerSpec
	fModelNormalizer = 3 // NormalizerSpec
	fModelDenorm     = 5 // NormalizerSpec (denormalizer)

	fPiecePiece = 1 // string
	fPieceScore = 2 // float
	fPieceType  = 3 // enum Type

	fTrainerModelType  = 3  // enum ModelType
	fTrainerWSSuffix   = 24 // bool treat_whitespace_as_suffix
	fTrainerByteFallbk = 35 // bool byte_fallback
	fTrainerUnkID      = 40 // int32
	fTrainerBOSID      = 41 // int32
	fTrainerEOSID      = 42 // int32
	fTrainerUnkSurface = 44 // string

	fNormName      = 1 // string
	fNormCharsmap  = 2 // bytes precompiled_charsmap
	fNormDummy     = 3 // bool add_dummy_prefix
	fNormRemoveWS  = 4 // bool remove_extra_whitespaces
	fNormEscapeWS  = 5 // bool escape_whitespaces
	fNormRulesTSV  = 6 // string normalization_rule_tsv
	modelTypeBPE   = 2
	modelTypeUnigr = 1

	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// spPiece is one vocabulary entry of a SentencePiece model.
type spPiece struct {
	piece string
	score float32
	typ   int
}

// spModel is what the wrapper reads from a ModelProto, with the proto's
// defaults applied for absent fields.
type spModel struct {
	pieces       []spPiece
	modelType    int
	byteFallback bool
	wsSuffix     bool
	unkID        int
	bosID, eosID int
	unkSurface   string
	normName     string
	charsmap     int // length of precompiled_charsmap
	rulesTSV     bool
	addDummy     bool
	removeWS     bool
	escapeWS     bool
	denormalizer bool // a denormalizer spec with rules is present
}

// parseSPModel decodes the fields of a ModelProto that matter here.
func parseSPModel(data []byte) (*spModel, error) {
	m := &spModel{
		modelType: modelTypeUnigr, unkID: 0, bosID: 1, eosID: 2,
		unkSurface: defaultUnkSurface, addDummy: true, removeWS: true, escapeWS: true,
	}
	err := walkFields(data, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == fModelPieces && typ == protowire.BytesType:
			p, err := parseSPPiece(b)
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case num == fModelTrainer && typ == protowire.BytesType:
			return walkFields(b, m.trainerField)
		case num == fModelNormalizer && typ == protowire.BytesType:
			return walkFields(b, m.normalizerField)
		case num == fModelDenorm && typ == protowire.BytesType:
			return walkFields(b, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
				if (num == fNormCharsmap || num == fNormRulesTSV) && len(b) > 0 {
					m.denormalizer = true
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func parseSPPiece(data []byte) (spPiece, error) {
	p := spPiece{typ: typeNormal}
	err := walkFields(data, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == fPiecePiece && typ == protowire.BytesType:
			p.piece = string(b)
		case num == fPieceScore && typ == protowire.Fixed32Type:
			p.score = math.Float32frombits(uint32(v))
		case num == fPieceType && typ == protowire.VarintType:
			p.typ = int(int32(v))
		}
		return nil
	})
	return p, err
}

func (m *spModel) trainerField(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
	if typ == protowire.BytesType {
		if num == fTrainerUnkSurface {
			m.unkSurface = string(b)
		}
		return nil
	}
	if typ != protowire.VarintType {
		return nil
	}
	switch num {
	case fTrainerModelType:
		m.modelType = int(int32(v))
	case fTrainerWSSuffix:
		m.wsSuffix = v != 0
	case fTrainerByteFallbk:
		m.byteFallback = v != 0
	case fTrainerUnkID:
		m.unkID = int(int32(v))
	case fTrainerBOSID:
		m.bosID = int(int32(v))
	case fTrainerEOSID:
		m.eosID = int(int32(v))
	}
	return nil
}

func (m *spModel) normalizerField(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
	switch {
	case num == fNormName && typ == protowire.BytesType:
		m.normName = string(b)
	case num == fNormCharsmap && typ == protowire.BytesType:
		m.charsmap = len(b)
	case num == fNormRulesTSV && typ == protowire.BytesType:
		m.rulesTSV = len(b) > 0
	case num == fNormDummy && typ == protowire.VarintType:
		m.addDummy = v != 0
	case num == fNormRemoveWS && typ == protowire.VarintType:
		m.removeWS = v != 0
	case num == fNormEscapeWS && typ == protowire.VarintType:
		m.escapeWS = v != 0
	}
	return nil
}

// walkFields calls fn for every field of a protobuf message: v holds
// varint and fixed values, b the payload of length-delimited fields.
func walkFields(data []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("bad protobuf tag: %w", protowire.ParseError(n))
		}
		data = data[n:]
		var v uint64
		var b []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(data)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(data)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(data)
		case protowire.BytesType:
			b, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return fmt.Errorf("bad protobuf field %d: %w", num, protowire.ParseError(n))
		}
		data = data[n:]
		if err := fn(num, typ, v, b); err != nil {
			return err
		}
	}
	return nil
}

// rewriteForGoSP returns the copy of the model handed to go-sentencepiece
// v0.6.0, changed to work around two limitations of it:
//
//  1. It rejects models with add_dummy_prefix or remove_extra_whitespaces
//     set (and dereferences them without a nil check), so the normalizer
//     spec gets both explicitly false; the wrapper applies the dummy prefix
//     itself (remove_extra_whitespaces models are refused).
//  2. Its merge buffer holds only the longest piece, but it concatenates two
//     symbols into it, so two adjacent long pieces overflow it and Encode
//     panics (e.g. LLaMA-2 on a run of 100 spaces: two 16-space pieces of
//     48 bytes). An extra UNUSED piece of padLen bytes, after all real ones,
//     enlarges that buffer. Its text starts with 0xFF, which no valid UTF-8
//     concatenation contains, so it can never be produced and the real ids
//     are unchanged.
func rewriteForGoSP(data []byte, padLen int) ([]byte, error) {
	out := make([]byte, 0, len(data)+16)
	var norm []byte
	err := walkRaw(data, func(num protowire.Number, raw []byte, payload []byte) error {
		if num == fModelNormalizer {
			norm = append(norm, payload...) // repeated occurrences merge
			return nil
		}
		out = append(out, raw...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var spec []byte
	err = walkRaw(norm, func(num protowire.Number, raw []byte, _ []byte) error {
		if num != fNormDummy && num != fNormRemoveWS {
			spec = append(spec, raw...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, f := range []protowire.Number{fNormDummy, fNormRemoveWS} {
		spec = protowire.AppendTag(spec, f, protowire.VarintType)
		spec = protowire.AppendVarint(spec, 0)
	}
	out = protowire.AppendTag(out, fModelNormalizer, protowire.BytesType)
	out = protowire.AppendBytes(out, spec)

	pad := make([]byte, padLen)
	for i := range pad {
		pad[i] = 0xFF
	}
	var piece []byte
	piece = protowire.AppendTag(piece, fPiecePiece, protowire.BytesType)
	piece = protowire.AppendBytes(piece, pad)
	piece = protowire.AppendTag(piece, fPieceType, protowire.VarintType)
	piece = protowire.AppendVarint(piece, typeUnused)
	out = protowire.AppendTag(out, fModelPieces, protowire.BytesType)
	return protowire.AppendBytes(out, piece), nil
}

// walkRaw calls fn with each field's raw encoding (tag included) and, for
// length-delimited fields, its payload.
func walkRaw(data []byte, fn func(num protowire.Number, raw, payload []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("bad protobuf tag: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, data[n:])
		if m < 0 {
			return fmt.Errorf("bad protobuf field %d: %w", num, protowire.ParseError(m))
		}
		var payload []byte
		if typ == protowire.BytesType {
			payload, _ = protowire.ConsumeBytes(data[n:])
		}
		if err := fn(num, data[:n+m], payload); err != nil {
			return err
		}
		data = data[n+m:]
	}
	return nil
}

var errNotSP = errors.New("no vocabulary pieces (not a SentencePiece model)")
