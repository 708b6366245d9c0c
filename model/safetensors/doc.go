// Package safetensors reads and writes Hugging Face safetensors files and
// sharded safetensors model directories.
//
// # Layout
//
// A file is an 8-byte little-endian header length N, N bytes of JSON header
// and the data section. The header maps tensor names to
// {"dtype", "shape", "data_offsets": [begin, end]}, with offsets relative to
// the start of the data section; the optional "__metadata__" entry maps
// strings to strings.
//
// # Reading
//
// Open reads and validates the header only; tensor bytes are fetched on
// demand with ReadAt (pread), so a File can serve many goroutines at once and
// a shard process only pays for the tensors it owns. ReadFloat32Into
// converts F32/F16/BF16/F64 through a small pooled buffer and allocates
// nothing in steady state.
//
// # Validation choices
//
// Open rejects, with an error naming the file and the problem: files shorter
// than 8 bytes; a header length of 0, beyond the file or above MaxHeaderSize;
// a header that is not UTF-8, not JSON or not an object, or that has trailing
// content other than the spaces writers pad with; duplicate keys anywhere
// (encoding/json would silently keep the last one); unknown dtypes; shapes
// and offsets that are not non-negative integers; byte sizes that disagree
// with shape × dtype (computed with overflow checks); ranges outside the
// data section; overlapping ranges; metadata values that are not strings.
//
// The specification asks that the data section be indexed entirely. This
// package is deliberately more lenient: gaps between tensors and trailing
// bytes after the last tensor are accepted, because they cannot make a read
// return wrong data, whereas overlaps can (two tensors aliasing the same
// bytes) and are rejected. Unknown fields inside a tensor entry are ignored,
// as the reference implementation does.
//
// # Writing
//
// WriteFile and WriteRawFile stream tensors one at a time to path+".tmp" and
// rename it into place only when everything has been written and synced, so
// a failed run never leaves a half-written model behind. The header is
// compact JSON with "__metadata__" first and the tensors in name order, each
// as {"dtype","shape","data_offsets"}, padded with spaces so the data section
// starts on an 8-byte boundary: the same bytes the reference Rust
// implementation produces when the data is laid out in name order.
package safetensors
