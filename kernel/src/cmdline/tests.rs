use super::*;
use alloc::vec::Vec;

#[test]
fn empty_line_gives_defaults() {
    let options = parse("", |word| panic!("unexpected unknown {word:?}"));
    assert_eq!(options, Options::default());
}

#[test]
fn flags_and_values_are_parsed() {
    let options = parse("  once log=debug ", |word| panic!("unexpected unknown {word:?}"));
    assert!(options.once);
    assert_eq!(options.log_level, log::LevelFilter::Debug);
}

#[test]
fn unknown_and_malformed_words_are_reported() {
    let mut unknown = Vec::new();
    let options = parse("bogus once=1 log=loud once", |word| unknown.push(word.0));
    assert!(options.once);
    assert_eq!(options.log_level, log::LevelFilter::Info);
    assert_eq!(unknown, ["bogus", "once=1", "log=loud"]);
}

#[test]
fn page_table_options_are_parsed() {
    let defaults = parse("", |word| panic!("unexpected unknown {word:?}"));
    assert_eq!((defaults.pt_cache, defaults.chaos), (DEFAULT_PT_CACHE, 0));
    let options = parse("pt_cache=1 chaos", |word| panic!("unexpected unknown {word:?}"));
    assert_eq!((options.pt_cache, options.chaos), (1, DEFAULT_CHAOS));
    let options = parse("pt_cache=16 chaos=7", |word| panic!("unexpected unknown {word:?}"));
    assert_eq!((options.pt_cache, options.chaos), (16, 7));
    assert!(!options.tlb_check);
    let options = parse("tlb_check", |word| panic!("unexpected unknown {word:?}"));
    assert!(options.tlb_check);
    assert!(!options.lockstat);
    assert!(parse("lockstat", |word| panic!("unexpected unknown {word:?}")).lockstat);
}

#[test]
fn bad_page_table_options_are_reported() {
    let mut unknown = Vec::new();
    let options = parse("pt_cache=0 pt_cache=many pt_cache chaos=x", |word| unknown.push(word.0));
    assert_eq!((options.pt_cache, options.chaos), (DEFAULT_PT_CACHE, 0));
    assert_eq!(unknown, ["pt_cache=0", "pt_cache=many", "pt_cache", "chaos=x"]);
}

#[test]
fn frame_cache_limits_are_parsed_and_bounded() {
    assert_eq!(parse("", |word| panic!("unexpected {word:?}")).frame_cache, DEFAULT_FRAME_CACHE);
    assert_eq!(parse("frame_cache=0", |word| panic!("unexpected {word:?}")).frame_cache, 0);
    assert_eq!(parse("frame_cache=1024", |word| panic!("unexpected {word:?}")).frame_cache, 1024);
    let mut unknown = Vec::new();
    let options = parse("frame_cache=1025 frame_cache=-1 frame_cache", |word| unknown.push(word.0));
    assert_eq!(options.frame_cache, DEFAULT_FRAME_CACHE);
    assert_eq!(unknown, ["frame_cache=1025", "frame_cache=-1", "frame_cache"]);
}

#[test]
fn skipped_tests_are_counted() {
    assert_eq!(parse("", |word| panic!("unexpected unknown {word:?}")).skip_tests, 0);
    let options = parse("skip_tests=3", |word| panic!("unexpected unknown {word:?}"));
    assert_eq!(options.skip_tests, 3);
    let mut unknown = Vec::new();
    let options = parse("skip_tests=some skip_tests", |word| unknown.push(word.0));
    assert_eq!(options.skip_tests, 0);
    assert_eq!(unknown, ["skip_tests=some", "skip_tests"]);
}

#[test]
fn test_parameters_are_known_words() {
    let mut unknown = Vec::new();
    let options = parse("test.fuzz_calls=5 test.flag pt_cahce=1", |word| unknown.push(word));
    assert_eq!(unknown, vec![UnknownOption("pt_cahce=1")]);
    assert_eq!(options, Options::default());
}

#[test]
fn swap_pool_share_is_parsed_and_bounded() {
    assert_eq!(parse("", |_| {}).swap_pool, DEFAULT_SWAP_POOL);
    assert_eq!(parse("swap_pool=0", |_| panic!("known")).swap_pool, 0);
    assert_eq!(parse("swap_pool=50", |_| panic!("known")).swap_pool, 50);
    let mut unknown = Vec::new();
    let options = parse("swap_pool=76 swap_pool=x", |word| unknown.push(word.0));
    assert_eq!(options.swap_pool, DEFAULT_SWAP_POOL);
    assert_eq!(unknown, ["swap_pool=76", "swap_pool=x"]);
}
