package store

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
)

// hllPrecision is the number of index bits of the embedded store's distinct-device
// counter: 2^14 one-byte registers (16 KiB per version), standard error 1.04/√16384 ≈ 0.8 %,
// the same as Redis's PFCOUNT.
const (
	hllPrecision = 14
	hllRegisters = 1 << hllPrecision
)

// kHLL is the key of a version's HyperLogLog registers in its stats bucket.
var kHLL = []byte("devices_hll")

// hllAdd records device in regs (len hllRegisters) and reports whether a register changed.
// The device id is hashed with SHA-256 (stable across processes and releases); its first
// 64 bits give the register index (top bits) and the rank (leading zeros of the rest + 1).
func hllAdd(regs []byte, device string) bool {
	sum := sha256.Sum256([]byte(device))
	x := binary.BigEndian.Uint64(sum[:8])
	idx := x >> (64 - hllPrecision)
	w := x<<hllPrecision | 1<<(hllPrecision-1) // guard bit bounds the rank at 64-p+1
	rank := byte(bits.LeadingZeros64(w) + 1)
	if rank > regs[idx] {
		regs[idx] = rank
		return true
	}
	return false
}

// hllCount is the standard HyperLogLog estimate of the distinct ids added to regs, with
// linear counting below 2.5·m (exact in practice for small counts). A 64-bit hash needs no
// large-range correction.
func hllCount(regs []byte) int64 {
	if len(regs) != hllRegisters {
		return 0
	}
	m := float64(hllRegisters)
	sum := 0.0
	zeros := 0
	for _, r := range regs {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	alpha := 0.7213 / (1 + 1.079/m)
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return int64(math.Round(e))
}
