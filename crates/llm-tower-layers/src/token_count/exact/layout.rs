//! The layout of the vocabulary tables that `build.rs` writes and `exact.rs` reads: the
//! slot format and the hash that places a token in the open-addressing table. This file is
//! compiled twice, into the build script and into the library, so both agree by
//! construction. Everything is little-endian and independent of the pointer width.

// A slot is `tag << 56 | start << 32 | len << ID_BITS | id`: the token's bytes are
// `tokens[start..start + len]`, its rank is `id`, and `tag` is 8 more bits of the hash of
// its bytes, so a lookup rarely compares the bytes of another token.

/// A free slot.
pub(crate) const EMPTY: u64 = u64::MAX;
/// Bits of the token id (the merge rank) in a slot.
pub(crate) const ID_BITS: u32 = 24;
/// Bits of the start of a token's bytes in a slot.
pub(crate) const START_BITS: u32 = 24;
/// Tokens are shorter than this many bytes (their length is 8 bits of the slot).
pub(crate) const MAX_TOKEN_LEN: usize = 0xFF;
/// No rank: the bytes are not one token.
pub(crate) const NO_RANK: u32 = u32::MAX;

/// The slot of `bytes` in a table of `2^(64 - shift)` slots, and its tag: a wyhash-style
/// mix of (overlapping) little-endian loads, whose high bits pick the slot and the 8 bits
/// below them the tag. `shift` is at least 8.
#[inline]
pub(crate) fn slot_of(bytes: &[u8], shift: u32) -> (usize, u64) {
    const K0: u64 = 0xA076_1D64_78BD_642F;
    const K1: u64 = 0xE703_7ED1_A0B4_28DB;
    let len = bytes.len();
    let (a, b) = if len >= 8 {
        let mut h = 0u64;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            h = mix(h ^ read8(chunk), K1);
        }
        (h, read8(bytes.get(len - 8..).unwrap_or_default()))
    } else if len >= 4 {
        (
            read4(bytes),
            read4(bytes.get(len - 4..).unwrap_or_default()),
        )
    } else if len > 0 {
        let first = u64::from(bytes[0]);
        let middle = u64::from(bytes[len / 2]);
        let last = u64::from(bytes[len - 1]);
        (first << 16 | middle << 8 | last, 0)
    } else {
        (0, 0)
    };
    let h = mix(a ^ K0 ^ (len as u64), b ^ K1).wrapping_mul(K0);
    let index = usize::try_from(h >> shift).unwrap_or(0);
    (index, (h >> (shift - 8)) & 0xFF)
}

/// The folded 128-bit product.
#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let product = u128::from(a).wrapping_mul(u128::from(b));
    (product as u64) ^ ((product >> 64) as u64)
}

/// The first 8 bytes, little-endian (0 when there are fewer).
#[inline]
pub(crate) fn read8(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The first 4 bytes, little-endian (0 when there are fewer).
#[inline]
pub(crate) fn read4(bytes: &[u8]) -> u64 {
    bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
}

// The character classes the split regexes use, one bit each, per code point. `build.rs`
// takes them from `regex-syntax` (the Unicode tables of the `regex` engines `tiktoken`
// runs on) and writes a two-level table: `u16` block numbers per 256 code points, then the
// blocks of 256 class bytes.

/// `\p{Lu}` or `\p{Lt}`.
pub(crate) const C_UPPER: u8 = 1;
/// `\p{Ll}`.
pub(crate) const C_LOWER: u8 = 1 << 1;
/// `\p{Lm}` or `\p{Lo}`.
pub(crate) const C_OTHER_LETTER: u8 = 1 << 2;
/// `\p{M}`.
pub(crate) const C_MARK: u8 = 1 << 3;
/// `\p{N}`.
pub(crate) const C_NUMBER: u8 = 1 << 4;
/// `\s` (`White_Space`).
pub(crate) const C_SPACE: u8 = 1 << 5;
/// `\r` or `\n`.
pub(crate) const C_NEWLINE: u8 = 1 << 6;
/// Code points per block of the class table.
pub(crate) const CLASS_BLOCK: usize = 256;
