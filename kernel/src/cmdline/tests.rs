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
