use super::*;
use std::collections::BTreeMap;

/// A process's memory: the words a frame chain is made of.
fn memory(words: &[(u64, u64)]) -> BTreeMap<u64, u64> {
    words.iter().copied().collect()
}

fn walk(place: UserPlace, memory: &BTreeMap<u64, u64>) -> Vec<u64> {
    let mut seen = Vec::new();
    addresses(place, |address| memory.get(&address).copied(), |address| seen.push(address));
    seen
}

/// Three frames: `main` called `outer`, which called `inner`, which faulted;
/// the entry's frame ends the chain with a zero return address.
fn three_frames() -> (UserPlace, BTreeMap<u64, u64>) {
    let memory = memory(&[
        (0x7000_0f00, 0x7000_0f40),
        (0x7000_0f08, 0x20_1118), // into outer
        (0x7000_0f40, 0x7000_0f80),
        (0x7000_0f48, 0x20_1208), // into main
        (0x7000_0f80, 0),
        (0x7000_0f88, 0),
    ]);
    (UserPlace { rip: 0x20_1004, frame_pointer: Some(0x7000_0f00) }, memory)
}

#[test]
fn the_chain_is_followed_to_the_entry() {
    let (place, memory) = three_frames();
    assert_eq!(walk(place, &memory), [0x20_1004, 0x20_1118, 0x20_1208]);
}

#[test]
fn a_bad_chain_ends_the_walk_without_harm() {
    let (place, memory) = three_frames();
    // No frame pointer: the instruction alone.
    assert_eq!(walk(UserPlace { frame_pointer: None, ..place }, &memory), [0x20_1004]);
    // Misaligned, or zero.
    assert_eq!(walk(UserPlace { frame_pointer: Some(0x7000_0f01), ..place }, &memory), [0x20_1004]);
    assert_eq!(walk(UserPlace { frame_pointer: Some(0), ..place }, &memory), [0x20_1004]);
    // An unreadable word.
    let mut cut = memory.clone();
    cut.remove(&0x7000_0f48);
    assert_eq!(walk(place, &cut), [0x20_1004, 0x20_1118]);
    // A chain that loops back: each frame is visited once.
    let mut looped = memory.clone();
    looped.insert(0x7000_0f40, 0x7000_0f00);
    assert_eq!(walk(place, &looped), [0x20_1004, 0x20_1118, 0x20_1208]);
}

#[test]
fn a_long_chain_is_cut_at_the_limit() {
    let mut words = Vec::new();
    for frame in 0..100u64 {
        let at = 0x1000 + frame * 16;
        words.push((at, at + 16));
        words.push((at + 8, 0x20_0000 + frame));
    }
    let place = UserPlace { rip: 0x20_1004, frame_pointer: Some(0x1000) };
    assert_eq!(walk(place, &memory(&words)).len(), MAX_USER_FRAMES);
}

#[test]
fn frames_are_named_from_the_programs_symbols() {
    let (place, memory) = three_frames();
    let symbols = "201000 10 crash::inner\n201100 20 crash::outer\n201200 8 crash::main\n";
    let mut text = String::new();
    write(&mut text, place, |address| memory.get(&address).copied(), Some(symbols)).unwrap();
    assert_eq!(
        text,
        "backtrace:\n  #0 0x201004 crash::inner+0x4\n  #1 0x201118 crash::outer+0x18\n  #2 0x201208 crash::main+0x8\n"
    );
    let mut text = String::new();
    write(&mut text, place, |address| memory.get(&address).copied(), None).unwrap();
    assert_eq!(text, "backtrace:\n  #0 0x201004\n  #1 0x201118\n  #2 0x201208\n");
}
