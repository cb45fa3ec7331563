//! The vocabulary of one encoding, as `build.rs` laid it out: lookups read the tables where
//! they lie in the binary, so nothing is allocated and only the touched pages are resident.

use super::layout::{EMPTY, ID_BITS, MAX_TOKEN_LEN, NO_RANK, START_BITS, read4, read8, slot_of};

/// Bytes -> rank, for every token of an encoding. Ranks are `tiktoken`'s (token ids).
pub(super) struct TokenTable {
    /// Every token's bytes, one after the other.
    tokens: &'static [u8],
    /// The open-addressing table, a power of two of little-endian `u64` slots.
    slots: &'static [[u8; 8]],
    /// The rank of every two-byte token, at `first << 8 | second`.
    pairs: &'static [[u8; 4]],
    /// `64 - log2(slots.len())`.
    shift: u32,
}

impl TokenTable {
    /// The table over the three blobs `build.rs` wrote.
    pub(super) fn new(tokens: &'static [u8], slots: &'static [u8], pairs: &'static [u8]) -> Self {
        let (slots, _) = slots.as_chunks::<8>();
        let (pairs, _) = pairs.as_chunks::<4>();
        // `build.rs` writes a power of two; should it ever not, the lower power of two
        // keeps every probe in bounds (lookups then merely miss).
        let len = slots.len();
        let slots = match len.checked_ilog2() {
            Some(bits) => slots.get(..1 << bits).unwrap_or_default(),
            None => &[],
        };
        let shift = 64 - slots.len().max(2).trailing_zeros();
        TokenTable {
            tokens,
            slots,
            pairs,
            shift,
        }
    }

    /// The rank of the token `bytes`, or [`NO_RANK`] when they are not one token.
    #[inline]
    pub(super) fn rank(&self, bytes: &[u8]) -> u32 {
        /// The tag and the length of a slot.
        const CHECKED: u64 = 0xFF << 56 | 0xFF << ID_BITS;
        if bytes.len() >= MAX_TOKEN_LEN {
            return NO_RANK;
        }
        let mask = self.slots.len().wrapping_sub(1);
        let (mut index, tag) = slot_of(bytes, self.shift);
        let want = tag << 56 | (bytes.len() as u64) << ID_BITS;
        // At most half the slots are used, so the probe ends at a free one.
        while let Some(&slot) = self.slots.get(index) {
            let slot = u64::from_le_bytes(slot);
            if slot == EMPTY {
                break;
            }
            if (slot ^ want) & CHECKED == 0 {
                let start = start_of(slot);
                let token = self.tokens.get(start..start + bytes.len());
                if token.is_some_and(|token| same_bytes(token, bytes)) {
                    return id_of(slot);
                }
            }
            index = (index + 1) & mask;
        }
        NO_RANK
    }

    /// `true` when `bytes` are one token.
    #[inline]
    pub(super) fn contains(&self, bytes: &[u8]) -> bool {
        self.rank(bytes) != NO_RANK
    }

    /// The rank of the two-byte token `[first, second]`, or [`NO_RANK`].
    #[inline]
    pub(super) fn pair_rank(&self, first: u8, second: u8) -> u32 {
        let index = usize::from(first) << 8 | usize::from(second);
        self.pairs
            .get(index)
            .map_or(NO_RANK, |&rank| u32::from_le_bytes(rank))
    }

    /// Every token as `(rank, bytes)`, in slot order (for tests).
    #[cfg(test)]
    pub(super) fn tokens(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.slots.iter().filter_map(|&slot| {
            let slot = u64::from_le_bytes(slot);
            if slot == EMPTY {
                return None;
            }
            let start = start_of(slot);
            let len = ((slot >> ID_BITS) & 0xFF) as usize;
            Some((id_of(slot), self.tokens.get(start..start + len)?))
        })
    }
}

/// Where the bytes of a slot's token start.
#[inline]
fn start_of(slot: u64) -> usize {
    ((slot >> 32) & ((1 << START_BITS) - 1)) as usize
}

/// The rank of a slot's token.
#[inline]
fn id_of(slot: u64) -> u32 {
    (slot & ((1 << ID_BITS) - 1)) as u32
}

/// `a == b` for slices of equal length, without a call for short ones.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        false
    } else if (8..=16).contains(&n) {
        read8(a) == read8(b)
            && read8(a.get(n - 8..).unwrap_or_default())
                == read8(b.get(n - 8..).unwrap_or_default())
    } else if (4..8).contains(&n) {
        read4(a) == read4(b)
            && read4(a.get(n - 4..).unwrap_or_default())
                == read4(b.get(n - 4..).unwrap_or_default())
    } else if n < 4 {
        a.iter().zip(b).all(|(x, y)| x == y)
    } else {
        a == b
    }
}
