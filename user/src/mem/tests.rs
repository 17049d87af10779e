//! The fill and the copies against a byte-by-byte model, for every length up
//! to 70 and past the unrolled blocks, from every alignment, and for copies
//! that overlap in both directions.

use super::{copy, set};

/// Lengths to try: every length to 70 (the short paths, one copy block and
/// the single-word tails), and lengths around the fill's 256-byte block.
fn lengths() -> impl Iterator<Item = usize> {
    (0..=70).chain([255, 256, 257, 263, 300, 511, 519, 4096, 4103])
}

/// A buffer of `length` bytes that differ from their neighbours.
fn pattern(length: usize, seed: u8) -> Vec<u8> {
    (0..length).map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn fills_every_length_from_every_alignment_and_nothing_else() {
    for length in lengths() {
        for start in 0..16 {
            let mut buffer = pattern(start + length + 24, 1);
            let mut model = buffer.clone();
            model[start..start + length].fill(0xa7);
            // SAFETY: the range lies inside `buffer`.
            unsafe { set(buffer.as_mut_ptr().add(start), 0xa7, length) };
            assert_eq!(buffer, model, "set of {length} bytes at offset {start}");
        }
    }
}

#[test]
fn copies_every_length_between_every_pair_of_alignments() {
    for length in lengths() {
        for from in 0..8 {
            for to in 0..8 {
                let source = pattern(from + length + 16, 2);
                let mut destination = pattern(to + length + 16, 100);
                let mut model = destination.clone();
                model[to..to + length].copy_from_slice(&source[from..from + length]);
                // SAFETY: both ranges lie inside their buffers, which are distinct.
                unsafe {
                    copy(destination.as_mut_ptr().add(to), source.as_ptr().add(from), length)
                };
                assert_eq!(destination, model, "copy of {length} bytes from offset {from} to {to}");
            }
        }
    }
}

#[test]
fn overlapping_copies_move_what_was_there_in_both_directions() {
    for length in lengths() {
        let reach = length.min(80) as isize + 9;
        let room = length + 2 * reach as usize + 16;
        for from in [reach as usize, reach as usize + 3, reach as usize + 5] {
            for shift in -reach..=reach {
                let to = (from as isize + shift) as usize;
                let mut buffer = pattern(room, 7);
                let mut model = buffer.clone();
                model.copy_within(from..from + length, to);
                let base = buffer.as_mut_ptr();
                // SAFETY: both ranges lie inside `buffer` (`room` leaves `reach`
                // bytes on either side); `copy` allows overlap.
                unsafe { copy(base.add(to), base.add(from), length) };
                assert_eq!(buffer, model, "move of {length} bytes from {from} to {to}");
            }
        }
    }
}
