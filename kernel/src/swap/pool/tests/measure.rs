//! Figures: compression ratio, pages a frame and time per page by kind of
//! content. Ignored by default (host timings, meaningful only optimised): run
//! with `cargo test -p kernel --lib --release -- --ignored --nocapture measure`.

use super::*;
use std::time::Instant;

/// Pages of each kind written and read back, in batches of [`BATCH`].
const PAGES: u64 = 4096;

/// Pages stored at once (the pool's frames for them are counted).
const BATCH: usize = 128;

/// What one kind of content cost.
#[derive(Default)]
struct Figures {
    stored: u64,
    bytes: u64,
    frames: usize,
    write_nanos: u128,
    read_nanos: u128,
}

/// Writes, reads back and discards `pages` in batches, timing each call.
fn measure(pages: &[PageBytes]) -> Figures {
    with_pool(FRAMES as usize - 2, BATCH as u32, |frames, pool| {
        let source = frames.alloc().unwrap();
        let mut figures = Figures::default();
        for batch in pages.chunks(BATCH) {
            for (slot, page) in batch.iter().enumerate() {
                *pool.memory_mut().page_mut(source) = *page;
                let start = Instant::now();
                let result = pool.write(frames, slot as u32, source);
                figures.write_nanos += start.elapsed().as_nanos();
                figures.stored += u64::from(result.is_ok());
            }
            figures.bytes += pool.bytes_stored();
            figures.frames += pool.frames_held();
            for (slot, page) in batch.iter().enumerate() {
                let start = Instant::now();
                let result = pool.read(slot as u32, source);
                figures.read_nanos += start.elapsed().as_nanos();
                assert!(result.is_err() || pool.memory().page(source) == page);
            }
            (0..batch.len()).for_each(|slot| pool.discard(frames, slot as u32));
        }
        frames.free(source).unwrap();
        figures
    })
}

#[test]
#[ignore]
fn measure_ratio_and_time_per_page() {
    let warm_up: Vec<PageBytes> =
        (0..BATCH as u64).map(|seed| page_of(Content::Text, seed)).collect();
    measure(&warm_up);
    std::println!("content     stored/{PAGES}  bytes/page  ratio  pages/frame  write ns  read ns");
    for content in Content::ALL {
        let pages: Vec<PageBytes> = (0..PAGES).map(|seed| page_of(content, seed)).collect();
        let figures = measure(&pages);
        let per_page = figures.bytes as f64 / figures.stored.max(1) as f64;
        let shown = |value: f64, known: bool| match known {
            true => std::format!("{value:.1}"),
            false => "-".into(),
        };
        std::println!(
            "{:<12} {:>11}  {:>10.0}  {:>5}  {:>11}  {:>8}  {:>7}",
            std::format!("{content:?}"),
            figures.stored,
            per_page,
            shown(PAGE as f64 / per_page, figures.bytes > 0),
            shown(figures.stored as f64 / figures.frames as f64, figures.frames > 0),
            figures.write_nanos / PAGES as u128,
            figures.read_nanos / PAGES as u128,
        );
    }
}
