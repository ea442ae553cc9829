//! The Internet checksum's ones' complement sum over a segment's payload, fast, and fused
//! with the copy that segmentation makes anyway.
//!
//! Why not etherparse's [`Sum16BitWords::add_slice`] here: it adds 8 bytes at a time with
//! a carry from each addition into the next, one long dependency chain the compiler cannot
//! vectorize, and it cannot copy as it sums; on a 64 KiB super-segment the checksum was
//! half of the split's time. Here 32-bit words go into a 64-bit accumulator (no carry can
//! be lost below 2³² words), a loop the compiler vectorizes, and the folding happens once
//! at the end. Headers and everything else still use etherparse's sum; the result here is
//! added to it as one 16-bit word ([`Sum16BitWords::add_2bytes`]).
//!
//! The sum is taken over words in memory order: RFC 1071 §2(B) makes the ones' complement
//! sum independent of byte order, so the folded native-endian sum, stored back in native
//! order, is the big-endian sum's bytes.
//!
//! [`Sum16BitWords::add_slice`]: etherparse::checksum::Sum16BitWords::add_slice
//! [`Sum16BitWords::add_2bytes`]: etherparse::checksum::Sum16BitWords::add_2bytes

/// Bytes per word of the accumulation.
const WORD: usize = 4;

/// `acc`, words added in native order, folded to one 16-bit word in memory order: what
/// [`Sum16BitWords::add_2bytes`] takes.
fn fold(acc: u64) -> [u8; 2] {
    let mut folded = (acc & 0xffff_ffff) + (acc >> 32);
    folded = (folded & 0xffff) + (folded >> 16);
    folded = (folded & 0xffff) + (folded >> 16);
    folded = (folded & 0xffff) + (folded >> 16);
    // At most 16 bits are left: the cast keeps them all.
    (folded as u16).to_ne_bytes()
}

/// The last `tail.len() < 4` bytes, zero-padded to a word (an odd last byte is the high
/// byte of a final 16-bit word, as RFC 1071 pads it).
fn tail_word(tail: &[u8]) -> u64 {
    let mut word = [0u8; WORD];
    word[..tail.len()].copy_from_slice(tail);
    u64::from(u32::from_ne_bytes(word))
}

/// The sum of `data` as one word for [`Sum16BitWords::add_2bytes`]. `data` must start at
/// an even offset from where the checksum starts (a TCP or UDP payload does: their
/// headers are a whole number of words).
pub(crate) fn payload_sum(data: &[u8]) -> [u8; 2] {
    let blocks = data.chunks_exact(BLOCK);
    let rest = blocks.remainder();
    let mut lanes = [0u64; LANES];
    for block in blocks {
        add_block(&mut lanes, block);
    }
    let words = rest.chunks_exact(WORD);
    let tail = tail_word(words.remainder());
    let acc = words.fold(tail, |acc, w| acc + word(w));
    fold(lanes.iter().sum::<u64>() + acc)
}

/// Bytes summed per step: [`LANES`] words side by side, which the compiler turns into
/// vector additions.
const BLOCK: usize = WORD * LANES;
/// Independent accumulators.
const LANES: usize = 8;

/// Adds the words of one [`BLOCK`] to the lanes.
#[inline(always)]
fn add_block(lanes: &mut [u64; LANES], block: &[u8]) {
    for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(WORD)) {
        *lane += word(w);
    }
}

/// A 4-byte word in native order.
#[inline(always)]
fn word(w: &[u8]) -> u64 {
    u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
}

/// Copies `src` into `dst` (of the same length) and returns the sum of `src` as
/// [`payload_sum`] does, in one pass over the bytes.
///
/// # Panics
///
/// If the lengths differ (a caller's bug, never the network's: callers slice both from
/// lengths they checked).
pub(crate) fn copy_and_sum(dst: &mut [u8], src: &[u8]) -> [u8; 2] {
    assert_eq!(dst.len(), src.len(), "copy_and_sum: lengths differ");
    let mut lanes = [0u64; LANES];
    let mut to = dst.chunks_exact_mut(BLOCK);
    let mut from = src.chunks_exact(BLOCK);
    for (d, s) in (&mut to).zip(&mut from) {
        d.copy_from_slice(s);
        add_block(&mut lanes, s);
    }
    let rest = from.remainder();
    to.into_remainder().copy_from_slice(rest);
    let words = rest.chunks_exact(WORD);
    let tail = tail_word(words.remainder());
    let acc = words.fold(tail, |acc, w| acc + word(w));
    fold(lanes.iter().sum::<u64>() + acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::checksum::Sum16BitWords;
    use proptest::prelude::*;

    fn ours(prefix: &[u8], word: [u8; 2]) -> u16 {
        Sum16BitWords::new()
            .add_slice(prefix)
            .add_2bytes(word)
            .ones_complement()
    }

    fn reference(prefix: &[u8], data: &[u8]) -> u16 {
        Sum16BitWords::new()
            .add_slice(prefix)
            .add_slice(data)
            .ones_complement()
    }

    #[test]
    fn known_sums() {
        // RFC 1071 §3's example bytes: the sum is ddf2 (etherparse's sums are in
        // native order: `to_be` gives the value on the wire).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ours(&[], payload_sum(&data)).to_be(), !0xddf2u16);
        // An odd last byte is the high byte of a word.
        assert_eq!(ours(&[], payload_sum(&[0x12])).to_be(), !0x1200u16);
        // Enough all-ones words to carry through every fold.
        let ones = vec![0xff; 65536];
        assert_eq!(ours(&[], payload_sum(&ones)), reference(&[], &ones));
    }

    proptest! {
        /// The same checksum as etherparse's, after any even-length prefix, and the copy
        /// is exact.
        #[test]
        fn agrees_with_etherparse_and_copies(
            prefix in proptest::collection::vec(any::<u16>(), 0..40),
            data in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let prefix: Vec<u8> = prefix.iter().flat_map(|w| w.to_be_bytes()).collect();
            let want = reference(&prefix, &data);
            prop_assert_eq!(ours(&prefix, payload_sum(&data)), want);
            let mut copy = vec![0u8; data.len()];
            prop_assert_eq!(ours(&prefix, copy_and_sum(&mut copy, &data)), want);
            prop_assert_eq!(copy, data);
        }
    }
}
