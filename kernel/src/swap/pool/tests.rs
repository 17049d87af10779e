//! Host tests of the compressed pool: unit tests here, random sequences checked
//! against a map in `properties`, and the ratio and speed figures in `measure`.

mod measure;
mod properties;

use super::*;
use crate::vm::frame::PhysRange;
use crate::vm::page::VmPage;
use alloc::vec;

/// Memory for the host: page `n` of the array is frame `n`.
struct TestMemory {
    pages: Vec<PageBytes>,
}

impl PhysicalPages for TestMemory {
    fn page(&self, pfn: Pfn) -> &PageBytes {
        &self.pages[pfn.0 as usize]
    }

    fn page_mut(&mut self, pfn: Pfn) -> &mut PageBytes {
        &mut self.pages[pfn.0 as usize]
    }
}

/// The kinds of page content the tests write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Content {
    /// Every byte zero.
    Zeros,
    /// Every byte one value other than zero.
    Filled,
    /// Words of a small vocabulary, like text or logs.
    Text,
    /// 64-bit words that look like small integers and kernel pointers.
    Words,
    /// Zeros with a word here and there, like a fresh stack or heap page.
    Sparse,
    /// Random bytes: does not compress.
    Random,
    /// Random first half, zeros second half.
    HalfRandom,
}

impl Content {
    /// Every kind, in a fixed order.
    const ALL: [Content; 7] = [
        Content::Zeros,
        Content::Filled,
        Content::Text,
        Content::Words,
        Content::Sparse,
        Content::Random,
        Content::HalfRandom,
    ];

    /// Whether the pool takes a page of this kind.
    fn compresses(self) -> bool {
        self != Content::Random
    }
}

/// A small xorshift generator: the tests need varied bytes, not good ones.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A page of `content`, varied by `seed`.
fn page_of(content: Content, seed: u64) -> PageBytes {
    let mut random = Bytes(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut page = [0u8; PAGE];
    match content {
        Content::Zeros => {}
        Content::Filled => page.fill(seed as u8 | 1),
        Content::Text => fill_text(&mut page, &mut random),
        Content::Words => {
            for word in page.as_chunks_mut::<8>().0 {
                let value = match random.next() % 4 {
                    0 => random.next() % 256,
                    1 => 0xffff_8000_0000_0000 | (random.next() % 0x10_0000) << 3,
                    2 => 0,
                    _ => 0x4000_0000 + random.next() % 4096,
                };
                word.copy_from_slice(&value.to_le_bytes());
            }
        }
        Content::Sparse => {
            for word in page.as_chunks_mut::<8>().0.iter_mut().step_by(16) {
                word.copy_from_slice(&random.next().to_le_bytes());
            }
        }
        Content::Random => page.iter_mut().for_each(|byte| *byte = random.next() as u8),
        Content::HalfRandom => {
            page[..PAGE / 2].iter_mut().for_each(|byte| *byte = random.next() as u8);
        }
    }
    page
}

/// Fills `bytes` with log-like lines: fixed words, varying numbers.
fn fill_text(bytes: &mut [u8], random: &mut Bytes) {
    const EVENTS: [&str; 4] = ["zero-fill", "copy-on-write", "rebuild", "swap-in"];
    let mut at = 0;
    while at < bytes.len() {
        let line = std::format!(
            "[{:>5}.{:06}] vm: fault at {:#014x} by pid {} ({})\n",
            random.next() % 100,
            random.next() % 1_000_000,
            0x7fff_0000_0000 + (random.next() % 4096) * 4096,
            random.next() % 40,
            EVENTS[(random.next() % 4) as usize],
        );
        let take = line.len().min(bytes.len() - at);
        bytes[at..at + take].copy_from_slice(&line.as_bytes()[..take]);
        at += take;
    }
}

/// Frames of the test machine: frame 0 is not managed.
const FRAMES: u64 = 256;

/// Runs `test` with a frame allocator over frames `1..FRAMES`, a pool of
/// `capacity` frames and `slots` slots, and checks the allocator afterwards.
fn with_pool<R>(
    capacity: usize,
    slots: u32,
    test: impl FnOnce(&mut FrameAllocator<'_>, &mut CompressedPool<TestMemory>) -> R,
) -> R {
    let map = [PhysRange { start: 4096, end: FRAMES * 4096 }];
    let mut records = vec![VmPage::EMPTY; FrameAllocator::pages_needed(&map)];
    let mut frames = FrameAllocator::new(&mut records, &map);
    let memory = TestMemory { pages: vec![[0xee; PAGE]; FRAMES as usize] };
    let mut pool = CompressedPool::with_memory(memory, capacity, slots).expect("pool");
    let result = test(&mut frames, &mut pool);
    assert_eq!(frames.check(), Ok(()));
    result
}

/// Takes a frame and fills it with `contents`, as the VM hands pages over.
fn frame_with(
    frames: &mut FrameAllocator<'_>,
    pool: &mut CompressedPool<TestMemory>,
    contents: &PageBytes,
) -> Pfn {
    let pfn = frames.alloc().expect("a frame for the page");
    *pool.memory_mut().page_mut(pfn) = *contents;
    pfn
}

/// Reads `slot` into a fresh frame and returns its contents.
fn read_back(
    frames: &mut FrameAllocator<'_>,
    pool: &mut CompressedPool<TestMemory>,
    slot: u32,
) -> Result<PageBytes, VmError> {
    let pfn = frame_with(frames, pool, &[0x55; PAGE]);
    let result = pool.read(slot, pfn).map(|()| *pool.memory().page(pfn));
    frames.free(pfn).expect("free the read frame");
    result
}

/// Writes a page of `contents` to `slot` from a frame that goes back after.
fn write_page(
    frames: &mut FrameAllocator<'_>,
    pool: &mut CompressedPool<TestMemory>,
    slot: u32,
    contents: &PageBytes,
) -> Result<(), VmError> {
    let pfn = frame_with(frames, pool, contents);
    let result = pool.write(frames, slot, pfn);
    frames.free(pfn).expect("free the written frame");
    result
}

#[test]
fn every_kind_of_content_comes_back_or_is_refused() {
    with_pool(64, 64, |frames, pool| {
        for (slot, content) in Content::ALL.into_iter().enumerate() {
            let slot = slot as u32;
            let page = page_of(content, slot.into());
            let written = write_page(frames, pool, slot, &page);
            if content.compresses() {
                assert_eq!(written, Ok(()), "{content:?}");
                assert!(read_back(frames, pool, slot) == Ok(page), "{content:?} changed");
            } else {
                assert_eq!(written, Err(VmError::OutOfMemory), "{content:?}");
                assert_eq!(read_back(frames, pool, slot), Err(VmError::InvalidArgument));
            }
        }
        let statistics = pool.statistics();
        assert_eq!(statistics.pages, 6);
        assert_eq!(statistics.filled_pages, 2);
        assert_eq!(statistics.refused_incompressible, 1);
    });
}

#[test]
fn filled_pages_take_no_frame() {
    with_pool(4, 16, |frames, pool| {
        for slot in 0..16 {
            let content = if slot % 2 == 0 { Content::Zeros } else { Content::Filled };
            write_page(frames, pool, slot, &page_of(content, slot.into())).unwrap();
        }
        assert_eq!((pool.frames_held(), pool.bytes_stored()), (0, 0));
        assert!(read_back(frames, pool, 3) == Ok(page_of(Content::Filled, 3)));
    });
}

#[test]
fn small_pages_share_frames() {
    with_pool(128, 256, |frames, pool| {
        // Sparse pages compress to well under an eighth of a page, text to
        // under half: at least eight and two a frame.
        for slot in 0..128 {
            write_page(frames, pool, slot, &page_of(Content::Sparse, slot.into())).unwrap();
        }
        assert!(pool.frames_held() <= 16, "{} frames for 128 pages", pool.frames_held());
        for slot in 128..256 {
            write_page(frames, pool, slot, &page_of(Content::Text, slot.into())).unwrap();
        }
        assert!(pool.frames_held() <= 16 + 64, "{} frames for 256 pages", pool.frames_held());
        for slot in 0..256 {
            let content = if slot < 128 { Content::Sparse } else { Content::Text };
            assert!(read_back(frames, pool, slot) == Ok(page_of(content, slot.into())));
        }
    });
}

#[test]
fn rewriting_a_slot_replaces_its_page() {
    with_pool(8, 4, |frames, pool| {
        let (first, second) = (page_of(Content::HalfRandom, 1), page_of(Content::Text, 2));
        write_page(frames, pool, 2, &first).unwrap();
        let held = pool.frames_held();
        write_page(frames, pool, 2, &second).unwrap();
        assert!(read_back(frames, pool, 2) == Ok(second));
        assert_eq!(pool.statistics().pages, 1);
        assert!(pool.frames_held() <= held);
        // A refused rewrite leaves the slot empty, not holding the old page.
        assert_eq!(
            write_page(frames, pool, 2, &page_of(Content::Random, 3)),
            Err(VmError::OutOfMemory)
        );
        assert_eq!(read_back(frames, pool, 2), Err(VmError::InvalidArgument));
        assert_eq!((pool.statistics().pages, pool.frames_held(), pool.bytes_stored()), (0, 0, 0));
    });
}

#[test]
fn discarding_everything_gives_every_frame_back() {
    with_pool(128, 200, |frames, pool| {
        let free = frames.counters().free;
        for slot in 0..200 {
            let content = Content::ALL[slot as usize % Content::ALL.len()];
            let _ = write_page(frames, pool, slot, &page_of(content, slot.into()));
        }
        assert!(pool.frames_held() > 0);
        assert_eq!(frames.counters().free, free - pool.frames_held());
        for slot in (0..200).rev().step_by(2).chain((0..200).step_by(2)) {
            pool.discard(frames, slot);
        }
        assert_eq!(frames.counters().free, free);
        let statistics = pool.statistics();
        assert_eq!((statistics.pages, statistics.frames_held, statistics.bytes_stored), (0, 0, 0));
    });
}

#[test]
fn a_full_pool_refuses_until_a_slot_is_discarded() {
    with_pool(4, 16, |frames, pool| {
        // Half-random pages take 2112-byte blocks, seven to a span of four
        // frames: the pool's whole capacity.
        let pages: Vec<PageBytes> = (0..8).map(|seed| page_of(Content::HalfRandom, seed)).collect();
        for (slot, page) in pages.iter().take(7).enumerate() {
            write_page(frames, pool, slot as u32, page).unwrap();
        }
        assert_eq!(pool.frames_held(), 4);
        assert_eq!(write_page(frames, pool, 7, &pages[7]), Err(VmError::OutOfMemory));
        assert_eq!(pool.statistics().refused_full, 1);
        pool.discard(frames, 0);
        write_page(frames, pool, 7, &pages[7]).unwrap();
        for slot in 1..8 {
            assert!(read_back(frames, pool, slot) == Ok(pages[slot as usize]), "slot {slot}");
        }
    });
}

#[test]
fn blocks_that_straddle_frames_come_back() {
    with_pool(64, 64, |frames, pool| {
        // Text takes 1472-byte blocks, eleven to four frames: every third or
        // so crosses into the next frame.
        for slot in 0..64 {
            write_page(frames, pool, slot, &page_of(Content::Text, slot.into())).unwrap();
        }
        for slot in 0..64 {
            assert!(read_back(frames, pool, slot) == Ok(page_of(Content::Text, slot.into())));
        }
        // Fewer frames than two blocks a frame, all that fit without spans.
        assert!(pool.frames_held() < 32, "{} frames for 64 pages", pool.frames_held());
    });
}

#[test]
fn an_empty_allocator_refuses_and_keeps_no_frame() {
    with_pool(FRAMES as usize, 8, |frames, pool| {
        let source = frame_with(frames, pool, &page_of(Content::Text, 0));
        let mut hoard: Vec<Pfn> = core::iter::from_fn(|| frames.alloc().ok()).collect();
        // One frame free, a span of four needed: the one taken goes back.
        frames.free(hoard.pop().unwrap()).unwrap();
        assert_eq!(pool.write(frames, 0, source), Err(VmError::OutOfMemory));
        assert_eq!((pool.statistics().pages, pool.frames_held()), (0, 0));
        assert_eq!(frames.counters().free, 1);
        for _ in 1..blocks::SPAN_MAX {
            frames.free(hoard.pop().unwrap()).unwrap();
        }
        assert_eq!(pool.write(frames, 0, source), Ok(()));
        for pfn in hoard.into_iter().chain([source]) {
            frames.free(pfn).unwrap();
        }
        pool.discard(frames, 0);
        assert_eq!(frames.counters().free, frames.counters().total);
    });
}

#[test]
fn slots_past_the_end_are_invalid() {
    with_pool(4, 3, |frames, pool| {
        assert_eq!(pool.slots(), 3);
        let page = page_of(Content::Text, 0);
        assert_eq!(write_page(frames, pool, 3, &page), Err(VmError::InvalidArgument));
        assert_eq!(read_back(frames, pool, 3), Err(VmError::InvalidArgument));
        pool.discard(frames, 3);
        pool.discard(frames, 0);
    });
}

#[test]
fn metadata_is_about_eight_bytes_a_slot() {
    with_pool(100, 400, |_, pool| {
        assert_eq!(SLOT_BYTES, 8);
        let fixed = core::mem::size_of::<CompressTable>() + get_maximum_output_size(PAGE);
        assert_eq!(pool.metadata_bytes(), 400 * 8 + 100 * blocks::RECORD_BYTES + fixed);
    });
}
