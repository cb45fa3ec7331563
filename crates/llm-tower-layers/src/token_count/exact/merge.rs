//! `tiktoken`'s byte-pair merge, counting the tokens of one piece.
//!
//! The piece starts as single bytes; the adjacent pair whose concatenation is the token of
//! the lowest rank merges, the leftmost of equal ranks first, until no adjacent pair is a
//! token. That is `tiktoken`'s `_byte_pair_merge` (and `_byte_pair_merge_large`), so the
//! count is `tiktoken`'s by construction. Short pieces use `tiktoken`'s own form (an array
//! of parts, a scan for the lowest rank); long ones a heap, so a piece of a million bytes
//! (a run of one letter is one piece) takes `O(n log n)`, not `O(n^2)`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

use super::layout::NO_RANK;
use super::table::TokenTable;

/// Pieces up to this many bytes merge in arrays on the stack.
pub(super) const SHORT: usize = 64;

/// The number of tokens of `piece`, by merging.
pub(super) fn count(table: &TokenTable, piece: &[u8]) -> usize {
    if piece.len() <= SHORT {
        count_short(table, piece)
    } else {
        count_long(table, piece)
    }
}

/// The merge over arrays: `starts[k]` is where part `k` starts (`starts[parts]` is the end
/// of the piece), `ranks[k]` the rank of parts `k` and `k + 1` together.
fn count_short(table: &TokenTable, piece: &[u8]) -> usize {
    let n = piece.len().min(SHORT);
    if n < 2 {
        return n;
    }
    let mut starts = [0u8; SHORT + 1];
    let mut ranks = [NO_RANK; SHORT];
    for (k, start) in starts.iter_mut().enumerate().take(n + 1) {
        *start = k as u8;
    }
    for (rank, pair) in ranks.iter_mut().zip(piece.windows(2)) {
        *rank = table.pair_rank(pair[0], pair[1]);
    }
    let mut parts = n;
    let rank_of = |from: u8, to: u8| {
        piece
            .get(usize::from(from)..usize::from(to))
            .map_or(NO_RANK, |bytes| table.rank(bytes))
    };
    loop {
        // The lowest rank, the leftmost of equal ones (two passes that vectorize).
        let live = &ranks[..parts - 1];
        let lowest = live.iter().copied().min().unwrap_or(NO_RANK);
        if lowest == NO_RANK {
            break;
        }
        let Some(i) = live.iter().position(|&rank| rank == lowest) else {
            break;
        };
        // Parts `i` and `i + 1` become one, ending at `starts[i + 2]`.
        if i > 0 {
            ranks[i - 1] = rank_of(starts[i - 1], starts[i + 2]);
        }
        ranks[i] = if i + 2 < parts {
            rank_of(starts[i], starts[i + 3])
        } else {
            NO_RANK
        };
        starts.copy_within(i + 2..=parts, i + 1);
        ranks.copy_within(i + 2..parts, i + 1);
        parts -= 1;
        if parts == 1 {
            break;
        }
    }
    parts
}

/// The merge over a linked list of parts and a min-heap of candidate merges.
///
/// Parts are named by the byte where they start. `next[p]` is where the part after `p`
/// starts, `prev[p]` where the part before starts, and `rank[p]` the rank of `p` and its
/// next part together ([`NO_RANK`] when that is no token, or `p` was merged away). The heap
/// holds `(rank, p)` keys, smallest first, which order merges exactly like `tiktoken`'s scan.
/// A merge changes the pairs of its part and of the part before; their new candidates are
/// pushed and the old ones skipped when they come up (`rank[p]` no longer matches: the
/// pair at `p` only ever grows, and distinct tokens have distinct ranks).
fn count_long(table: &TokenTable, piece: &[u8]) -> usize {
    let n = piece.len();
    let (Ok(len32), true) = (u32::try_from(n), n >= 2) else {
        // Four gigabytes in one piece: not a text anyone sends.
        return n.min(1);
    };
    let mut next: Vec<u32> = (1..=len32).collect();
    let mut prev: Vec<u32> = (0..len32).map(|p| p.wrapping_sub(1)).collect();
    let mut rank = vec![NO_RANK; n];
    let mut candidates = Vec::with_capacity(n);
    for (p, pair) in piece.windows(2).enumerate() {
        let r = table.pair_rank(pair[0], pair[1]);
        rank[p] = r;
        if r != NO_RANK {
            candidates.push(Reverse(key(r, p)));
        }
    }
    // Heapified at once, in linear time.
    let mut heap = BinaryHeap::from(candidates);
    let rank_of = |from: usize, to: usize| {
        piece
            .get(from..to)
            .map_or(NO_RANK, |bytes| table.rank(bytes))
    };
    let mut parts = n;
    loop {
        let Some(mut top) = heap.peek_mut() else {
            break;
        };
        let Reverse(candidate) = *top;
        let r = (candidate >> 32) as u32;
        let p = (candidate & u64::from(u32::MAX)) as usize;
        if rank.get(p) != Some(&r) {
            PeekMut::pop(top);
            continue;
        }
        // `p` and the part `q` after it become one, ending at `end`.
        let q = next[p] as usize;
        let end = next.get(q).map_or(n, |&e| e as usize);
        rank[q] = NO_RANK;
        next[p] = end as u32;
        if let Some(after) = prev.get_mut(end) {
            *after = p as u32;
        }
        parts -= 1;
        rank[p] = match next.get(end) {
            Some(&after_end) => rank_of(p, after_end as usize),
            None => NO_RANK,
        };
        // The new candidate at `p` takes the place of the one just used (one sift down
        // instead of a pop and a push).
        if rank[p] == NO_RANK {
            PeekMut::pop(top);
        } else {
            *top = Reverse(key(rank[p], p));
            drop(top);
        }
        if let Some(&before) = prev.get(p) {
            let before = before as usize;
            if let Some(slot) = rank.get_mut(before) {
                *slot = rank_of(before, end);
                if *slot != NO_RANK {
                    heap.push(Reverse(key(*slot, before)));
                }
            }
        }
    }
    parts
}

/// A heap key: by rank, then by position.
fn key(rank: u32, part: usize) -> u64 {
    u64::from(rank) << 32 | part as u64
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{cl100k, o200k};
    use super::*;

    /// Bytes that make many merges: few distinct values, UTF-8 lead and continuation bytes.
    fn piece(max: usize) -> impl Strategy<Value = Vec<u8>> {
        let bytes = vec![
            b'a', b'b', b'e', b'r', b' ', b'=', b'0', 0xE4, 0xB8, 0xAD, 0x80, 0xFF,
        ];
        proptest::collection::vec(proptest::sample::select(bytes), 2..=max)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 3_000,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0xb9e),
            ..ProptestConfig::default()
        })]

        /// The array merge and the heap merge are two forms of one algorithm.
        #[test]
        fn short_and_long_merges_agree(piece in piece(SHORT)) {
            for encoder in [o200k(), cl100k()] {
                let short = count_short(&encoder.table, &piece);
                prop_assert_eq!(short, count_long(&encoder.table, &piece));
                prop_assert!(short >= 1 && short <= piece.len());
            }
        }

        #[test]
        fn any_bytes_merge_to_at_most_one_token_per_byte(
            piece in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            for encoder in [o200k(), cl100k()] {
                let tokens = count(&encoder.table, &piece);
                prop_assert!(tokens <= piece.len() && (tokens == 0) == piece.is_empty());
            }
        }
    }
}
