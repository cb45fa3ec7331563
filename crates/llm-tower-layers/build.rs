//! Writes the vocabularies of `o200k_base` and `cl100k_base` into `OUT_DIR` as three
//! static tables each, which `src/token_count/exact.rs` includes in the binary:
//!
//! - `<name>.tokens`: every token's bytes, one after the other, in rank order;
//! - `<name>.slots`: an open-addressing hash table of the tokens (linear probing, at most
//!   half full), one little-endian `u64` per slot as [`layout`] describes;
//! - `<name>.pairs`: the rank of every two-byte token, by its two bytes (`u32`, little
//!   endian, `NO_RANK` for pairs that are not a token).
//!
//! and, for the split regexes, `unicode.classes` (the class bits of every code point, see
//! [`layout`]) and `unicode_folds.rs` (the characters a case-insensitive contraction letter
//! matches), both taken from `regex-syntax`.
//!
//! The vocabularies come from `bpe-openai` (the same `tiktoken` files OpenAI publishes;
//! token ids are `tiktoken`'s merge ranks). Only this script links it: the library reads
//! the tables where they lie in the binary, so the memory they use is the pages a count
//! touches, and nothing is built at run time.

use std::collections::HashSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::{env, fs};

use bpe_openai::Tokenizer;

#[path = "src/token_count/exact/layout.rs"]
mod layout;

use layout::{
    C_LOWER, C_MARK, C_NEWLINE, C_NUMBER, C_OTHER_LETTER, C_SPACE, C_UPPER, CLASS_BLOCK, EMPTY,
    ID_BITS, MAX_TOKEN_LEN, NO_RANK, START_BITS, slot_of,
};
use regex_syntax::hir::{Class, HirKind};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/token_count/exact/layout.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    write_vocabulary(&out, "o200k_base", bpe_openai::o200k_base())?;
    write_vocabulary(&out, "cl100k_base", bpe_openai::cl100k_base())?;
    write_classes(&out)?;
    write_folds(&out)?;
    Ok(())
}

fn write_vocabulary(out: &Path, name: &str, tokenizer: &Tokenizer) -> Result<()> {
    let bpe = &tokenizer.bpe;
    let count = u32::try_from(bpe.num_tokens())?;
    if count >= 1 << ID_BITS {
        return Err(format!("{name}: {count} tokens do not fit in {ID_BITS} bits").into());
    }
    let size = usize::try_from(count)?
        .saturating_mul(2)
        .next_power_of_two()
        .max(2);
    let shift = 64 - size.trailing_zeros();
    let mask = size - 1;
    let mut arena = Vec::new();
    let mut slots = vec![EMPTY; size];
    let mut pairs = vec![NO_RANK; 1 << 16];
    let mut seen = HashSet::new();
    for id in 0..count {
        let bytes = bpe.token_bytes(id);
        if bytes.is_empty() || bytes.len() >= MAX_TOKEN_LEN {
            return Err(format!("{name}: token {id} is {} bytes long", bytes.len()).into());
        }
        if !seen.insert(bytes) {
            return Err(format!("{name}: token {id} repeats an earlier one").into());
        }
        let start = u64::try_from(arena.len())?;
        if start >= 1 << START_BITS {
            return Err(format!("{name}: the tokens do not fit in {START_BITS} bits").into());
        }
        arena.extend_from_slice(bytes);
        let len = u64::try_from(bytes.len())?;
        let (mut index, tag) = slot_of(bytes, shift);
        let slot = tag << 56 | start << 32 | len << ID_BITS | u64::from(id);
        while slots[index] != EMPTY {
            index = (index + 1) & mask;
        }
        slots[index] = slot;
        if let [a, b] = bytes {
            pairs[usize::from(*a) << 8 | usize::from(*b)] = id;
        }
    }
    // The merge starts from single bytes and the counter counts a lone byte as one token.
    if let Some(byte) = (0..=255u8).find(|b| !seen.contains(&[*b][..])) {
        return Err(format!("{name}: byte {byte} is not a token").into());
    }
    fs::write(out.join(format!("{name}.tokens")), &arena)?;
    let slots: Vec<u8> = slots.iter().flat_map(|slot| slot.to_le_bytes()).collect();
    fs::write(out.join(format!("{name}.slots")), slots)?;
    let pairs: Vec<u8> = pairs.iter().flat_map(|rank| rank.to_le_bytes()).collect();
    fs::write(out.join(format!("{name}.pairs")), pairs)?;
    Ok(())
}

/// The code point ranges of a class pattern, as `regex-syntax` (Unicode mode) reads it.
fn ranges(pattern: &str) -> Result<Vec<(u32, u32)>> {
    let hir = regex_syntax::parse(pattern)?;
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => Ok(class
            .ranges()
            .iter()
            .map(|range| (u32::from(range.start()), u32::from(range.end())))
            .collect()),
        // An empty class (an intersection of disjoint categories) is `Hir::fail()`.
        HirKind::Class(Class::Bytes(class)) if class.ranges().is_empty() => Ok(Vec::new()),
        HirKind::Literal(literal) => {
            let text = std::str::from_utf8(&literal.0)?;
            Ok(text.chars().map(|c| (u32::from(c), u32::from(c))).collect())
        }
        _ => Err(format!("{pattern} is not a class").into()),
    }
}

fn write_classes(out: &Path) -> Result<()> {
    const CODE_POINTS: usize = 0x11_0000;
    let mut classes = vec![0u8; CODE_POINTS];
    for (pattern, bit) in [
        (r"\p{Lu}", C_UPPER),
        (r"\p{Lt}", C_UPPER),
        (r"\p{Ll}", C_LOWER),
        (r"\p{Lm}", C_OTHER_LETTER),
        (r"\p{Lo}", C_OTHER_LETTER),
        (r"\p{M}", C_MARK),
        (r"\p{N}", C_NUMBER),
        (r"\s", C_SPACE),
        (r"[\r\n]", C_NEWLINE),
    ] {
        for (start, end) in ranges(pattern)? {
            for class in classes
                .get_mut(start as usize..=end as usize)
                .ok_or("bad range")?
            {
                *class |= bit;
            }
        }
    }
    // The scanner relies on `\p{L}` being these five categories, and on no code point
    // being in two of them.
    let letters = C_UPPER | C_LOWER | C_OTHER_LETTER;
    for (start, end) in ranges(r"\p{L}")? {
        for cp in start..=end {
            let class = classes.get(cp as usize).copied().unwrap_or(0);
            if class & letters == 0 {
                return Err(format!("U+{cp:04X} is a letter of no category").into());
            }
        }
    }
    let overlaps = ranges(r"[\p{Lu}&&\p{Lt}]")?
        .into_iter()
        .chain(ranges(r"[\p{Lm}&&\p{Lo}]")?)
        .next();
    if let Some((start, end)) = overlaps {
        return Err(format!("U+{start:04X}..U+{end:04X} are in two categories").into());
    }
    let mut blocks: Vec<&[u8]> = Vec::new();
    let mut index = Vec::new();
    for block in classes.chunks(CLASS_BLOCK) {
        let number = match blocks.iter().position(|known| *known == block) {
            Some(number) => number,
            None => {
                blocks.push(block);
                blocks.len() - 1
            }
        };
        index.extend_from_slice(&u16::try_from(number)?.to_le_bytes());
    }
    let mut blob = index;
    for block in blocks {
        blob.extend_from_slice(block);
    }
    fs::write(out.join("unicode.classes"), blob)?;
    Ok(())
}

/// The characters beyond ASCII that the contraction letters match case-insensitively
/// (`(?i:'s|'t|'re|'ve|'m|'ll|'d)`): a `match` for `unicode_folds.rs`.
fn write_folds(out: &Path) -> Result<()> {
    let mut arms = String::new();
    for letter in ['\'', 's', 't', 'r', 'e', 'v', 'm', 'l', 'd'] {
        let mut matched = Vec::new();
        for (start, end) in ranges(&format!("(?i:{letter})"))? {
            matched.extend((start..=end).filter_map(char::from_u32));
        }
        if !matched.contains(&letter) || !matched.contains(&letter.to_ascii_uppercase()) {
            return Err(format!("(?i:{letter}) does not match its ASCII cases").into());
        }
        for c in matched.into_iter().filter(|c| !c.is_ascii()) {
            arms.push_str(&format!(
                "        '\\u{{{:x}}}' => Some(b{letter:?}),\n",
                u32::from(c)
            ));
        }
    }
    let code = format!(
        "/// The ASCII contraction letter a non-ASCII character matches case-insensitively.\n\
         const fn non_ascii_fold(c: char) -> Option<u8> {{\n    match c {{\n{arms}        _ => None,\n    }}\n}}\n"
    );
    fs::write(out.join("unicode_folds.rs"), code)?;
    Ok(())
}
