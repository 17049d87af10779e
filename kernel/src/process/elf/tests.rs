use super::*;
use proptest::prelude::*;

/// One program header for [`image`]: (type, flags, offset, address, file size,
/// memory size).
type Header = (u32, u32, u64, u64, u64, u64);

const LOAD: u32 = 1;
const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

/// A minimal ELF64 executable with `headers`, `length` bytes long.
fn image(entry: u64, headers: &[Header], length: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; length];
    bytes[..4].copy_from_slice(&header::MAGIC);
    bytes[4] = 2; // 64-bit
    bytes[5] = 1; // little-endian
    bytes[6] = 1; // version
    let mut put = |at: usize, value: &[u8]| bytes[at..at + value.len()].copy_from_slice(value);
    put(16, &2u16.to_le_bytes()); // ET_EXEC
    put(18, &62u16.to_le_bytes()); // x86-64
    put(20, &1u32.to_le_bytes());
    put(24, &entry.to_le_bytes());
    put(32, &64u64.to_le_bytes()); // program headers right after
    put(52, &64u16.to_le_bytes());
    put(54, &56u16.to_le_bytes());
    put(56, &(headers.len() as u16).to_le_bytes());
    for (index, &(kind, flags, offset, address, file_size, memory_size)) in
        headers.iter().enumerate()
    {
        let at = 64 + index * 56;
        put(at, &kind.to_le_bytes());
        put(at + 4, &flags.to_le_bytes());
        put(at + 8, &offset.to_le_bytes());
        put(at + 16, &address.to_le_bytes());
        put(at + 24, &address.to_le_bytes());
        put(at + 32, &file_size.to_le_bytes());
        put(at + 40, &memory_size.to_le_bytes());
        put(at + 48, &0x1000u64.to_le_bytes());
    }
    bytes
}

/// A good program: text at 2 MiB, data (with bss) on the next pages.
fn good() -> Vec<u8> {
    image(
        0x20_0010,
        &[
            (LOAD, R | X, 0x1000, 0x20_0000, 0x800, 0x800),
            (LOAD, R | W, 0x2000, 0x20_1000, 0x100, 0x3000),
            (0x6474_e551, R | W, 0, 0, 0, 0), // PT_GNU_STACK is ignored
        ],
        0x3000,
    )
}

/// `good()` with the bytes at `at` replaced.
fn patched(at: usize, value: &[u8]) -> Vec<u8> {
    let mut bytes = good();
    bytes[at..at + value.len()].copy_from_slice(value);
    bytes
}

#[test]
fn a_good_program_is_described() {
    let program = parse(&good()).expect("good program");
    assert_eq!(program.entry, 0x20_0010);
    assert_eq!(program.segments.len(), 2);
    let data = program.segments[1];
    assert_eq!(
        (data.address, data.memory_size, data.file_offset, data.file_size),
        (0x20_1000, 0x3000, 0x2000, 0x100)
    );
    assert_eq!(data.protection, Protection::READ | Protection::WRITE);
    assert_eq!(program.segments[0].protection, Protection::READ | Protection::EXECUTE);
    assert_eq!((data.page_start(), data.page_end()), (0x20_1000, 0x20_4000));
}

#[test]
fn header_fields_are_checked() {
    let cases: [(usize, &[u8], ElfError); 9] = [
        (0, b"\x7fELG", ElfError::Header("magic")),
        (4, &[1], ElfError::Header("class")),
        (5, &[2], ElfError::Header("data encoding")),
        (16, &3u16.to_le_bytes(), ElfError::Header("type (static executables only)")),
        (18, &3u16.to_le_bytes(), ElfError::Header("machine")),
        (20, &2u32.to_le_bytes(), ElfError::Header("version")),
        (52, &63u16.to_le_bytes(), ElfError::Header("header size")),
        (54, &32u16.to_le_bytes(), ElfError::Header("program-header size")),
        (24, &0x20_1000u64.to_le_bytes(), ElfError::Entry),
    ];
    for (at, value, error) in cases {
        let result = parse(&patched(at, value));
        // Some corruptions are caught by the header reader with its own words.
        assert!(
            result == Err(error)
                || matches!(result, Err(ElfError::Header(_)))
                    && matches!(error, ElfError::Header(_)),
            "patch at {at}: {result:?}, expected {error:?}"
        );
    }
}

#[test]
fn the_program_header_table_must_fit() {
    for (at, value) in [
        (32, &0x2ff8u64.to_le_bytes()[..]),
        (32, &u64::MAX.to_le_bytes()[..]),
        (32, &65u64.to_le_bytes()[..]),
        (56, &0u16.to_le_bytes()[..]),
        (56, &u16::MAX.to_le_bytes()[..]),
    ] {
        assert_eq!(parse(&patched(at, value)), Err(ElfError::ProgramHeaders), "patch at {at}");
    }
}

#[test]
fn segments_are_checked_against_the_file_and_the_address_space() {
    let text = |offset: u64, address: u64, file: u64, memory: u64| {
        parse(&image(address, &[(LOAD, R | X, offset, address, file, memory)], 0x3000))
    };
    let outside = Err(ElfError::Segment("outside the program area"));
    assert_eq!(
        text(0x1000, 0x20_0000, 0x2001, 0x3000),
        Err(ElfError::Segment("file bytes outside the file"))
    );
    assert_eq!(
        text(u64::MAX, 0x20_0fff, 2, 2),
        Err(ElfError::Segment("file bytes outside the file"))
    );
    assert_eq!(
        text(0x1000, 0x20_0000, 0x200, 0x100),
        Err(ElfError::Segment("more file bytes than memory"))
    );
    assert_eq!(text(0, 0, 0x10, 0x10), outside);
    assert_eq!(text(0x1000, 0xffff_8000_0000_1000, 0x10, 0x10), outside);
    assert_eq!(text(0x1000, PROGRAM_LIMIT - 0x1000, 0x10, 0x2000), outside);
    assert_eq!(text(0x1000, u64::MAX - 0xfff, 0x10, 0x2000), outside);
    assert_eq!(
        text(0x1008, 0x20_0000, 0x10, 0x10),
        Err(ElfError::Segment("address and file offset disagree within a page"))
    );
    assert!(text(0x1000, 0x20_0000, 0, 0x10).is_ok(), "all-zero text is fine");
}

#[test]
fn overlapping_segments_entry_and_unsupported_types_are_refused() {
    let shared_page = image(
        0x20_0000,
        &[
            (LOAD, R | X, 0x1000, 0x20_0000, 0x10, 0x10),
            (LOAD, R | W, 0x1800, 0x20_0800, 0x10, 0x10),
        ],
        0x3000,
    );
    assert_eq!(parse(&shared_page), Err(ElfError::Segment("segments share a page")));
    let data_entry = image(0x20_0000, &[(LOAD, R | W, 0x1000, 0x20_0000, 0x10, 0x10)], 0x3000);
    assert_eq!(parse(&data_entry), Err(ElfError::Entry));
    let interpreter = image(0x20_0000, &[(3, R, 0x1000, 0, 0x10, 0x10)], 0x3000);
    assert_eq!(parse(&interpreter), Err(ElfError::Unsupported("dynamic linking")));
    let tls = image(0x20_0000, &[(7, R, 0x1000, 0x20_0000, 0x10, 0x10)], 0x3000);
    assert_eq!(parse(&tls), Err(ElfError::Unsupported("thread-local storage")));
    let empty = image(0x20_0000, &[(0x6474_e551, R, 0, 0, 0, 0)], 0x3000);
    assert_eq!(parse(&empty), Err(ElfError::Segment("no loadable segment")));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = good();
    for length in 0..0x2100 {
        assert!(parse(&bytes[..length]).is_err(), "truncated to {length} bytes");
    }
}

proptest! {
    #[test]
    fn corrupted_images_never_panic(patches in prop::collection::vec((0usize..0x2100, any::<u8>()), 1..8)) {
        let mut bytes = good();
        for (at, value) in patches {
            bytes[at] = value;
        }
        if let Ok(program) = parse(&bytes) {
            for segment in &program.segments {
                prop_assert!(segment.file_offset + segment.file_size <= bytes.len());
                prop_assert!(segment.address >= USER_START && segment.page_end() <= PROGRAM_LIMIT);
            }
        }
    }
}
