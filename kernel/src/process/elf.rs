//! Checking a program's ELF image before anything of it is loaded.
//!
//! User programs are static x86_64 executables (`ET_EXEC`, no interpreter, no
//! dynamic section, no thread-local storage). [`parse`] checks every header field
//! the loader relies on and every loadable segment against the address-space
//! limits, and returns a [`Program`] that says exactly what to map; a malformed or
//! hostile image is an [`ElfError`], never a panic. The `xmas-elf` crate reads the
//! headers; its readers assume sizes and alignment are sane, so those are checked
//! first, on a copy of the image that is aligned.

use alloc::vec::Vec;
use core::fmt;
use xmas_elf::ElfFile;
use xmas_elf::header::{self, Class, Data, Machine, Version};
use xmas_elf::program::{self, ProgramHeader, Type};

use crate::vm::{PAGE_SIZE, Protection, USER_START};

/// Programs must lie below this address (the user stack and `mmap` live above).
pub const PROGRAM_LIMIT: u64 = 0x0000_1000_0000_0000;
/// Most program headers an image may have.
const MAX_PROGRAM_HEADERS: u16 = 32;
/// Size of the ELF64 file header.
const HEADER_SIZE: usize = 64;
/// Size of an ELF64 program header.
const PROGRAM_HEADER_SIZE: u16 = 56;

/// Why an image is not a program this kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The file header is missing, or a field of it is wrong (named).
    Header(&'static str),
    /// The program-header table does not fit in the file or is malformed.
    ProgramHeaders,
    /// A loadable segment is malformed or outside the allowed range (why).
    Segment(&'static str),
    /// The image needs something this kernel does not do (what).
    Unsupported(&'static str),
    /// The entry point is not in an executable segment.
    Entry,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Header(field) => write!(f, "bad ELF header: {field}"),
            ElfError::ProgramHeaders => f.write_str("bad program-header table"),
            ElfError::Segment(why) => write!(f, "bad segment: {why}"),
            ElfError::Unsupported(what) => write!(f, "unsupported: {what}"),
            ElfError::Entry => f.write_str("entry point outside executable code"),
        }
    }
}

/// One loadable segment, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First address of the segment's content.
    pub address: u64,
    /// Bytes of memory from `address` (the rest after the file bytes is zero).
    pub memory_size: u64,
    /// Where its file bytes start in the image.
    pub file_offset: usize,
    /// How many file bytes it has (at most `memory_size`).
    pub file_size: usize,
    /// Its access rights (read is implied by write or execute).
    pub protection: Protection,
}

impl Segment {
    /// The first page the segment touches.
    pub fn page_start(&self) -> u64 {
        self.address & !(PAGE_SIZE - 1)
    }

    /// The end of the last page the segment touches.
    pub fn page_end(&self) -> u64 {
        (self.address + self.memory_size).next_multiple_of(PAGE_SIZE)
    }
}

/// A checked program: where to start, what to map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The entry point.
    pub entry: u64,
    /// Loadable segments, in address order, on disjoint pages.
    pub segments: Vec<Segment>,
}

/// Checks `image` and describes how to load it.
pub fn parse(image: &[u8]) -> Result<Program, ElfError> {
    let aligned = aligned_copy(image);
    let bytes = &words_as_bytes(&aligned)[..image.len()];
    check_identity(bytes)?;
    let file = ElfFile::new(bytes).map_err(ElfError::Header)?;
    check_header(&file, bytes.len())?;
    let mut segments = Vec::new();
    for index in 0..file.header.pt2.ph_count() {
        let header = file.program_header(index).map_err(|_| ElfError::ProgramHeaders)?;
        if let Some(segment) = check_program_header(&header, bytes.len())? {
            segments.push(segment);
        }
    }
    finish(file.header.pt2.entry_point(), segments)
}

/// `image` copied into 8-byte-aligned memory (the header readers need it).
fn aligned_copy(image: &[u8]) -> Vec<u64> {
    let mut words = alloc::vec![0u64; image.len().div_ceil(8)];
    for (word, chunk) in words.iter_mut().zip(image.chunks(8)) {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_ne_bytes(bytes);
    }
    words
}

/// Views `words` as bytes without copying.
fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: any initialised u64 is eight initialised bytes, u8 has alignment 1,
    // and the length covers exactly the same memory.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

/// The identification bytes: magic, 64-bit, little-endian, current version.
fn check_identity(bytes: &[u8]) -> Result<(), ElfError> {
    if bytes.len() < HEADER_SIZE {
        return Err(ElfError::Header("file shorter than the ELF header"));
    }
    if bytes[..4] != header::MAGIC {
        return Err(ElfError::Header("magic"));
    }
    Ok(())
}

/// The file header's fields and the program-header table's place.
fn check_header(file: &ElfFile<'_>, length: usize) -> Result<(), ElfError> {
    let (pt1, pt2) = (&file.header.pt1, &file.header.pt2);
    let checks = [
        (pt1.class() == Class::SixtyFour, "class"),
        (pt1.data() == Data::LittleEndian, "data encoding"),
        (pt1.version() == Version::Current, "identification version"),
        (pt2.type_().as_type() == header::Type::Executable, "type (static executables only)"),
        (pt2.machine().as_machine() == Machine::X86_64, "machine"),
        (pt2.version() == 1, "version"),
        (pt2.header_size() as usize == HEADER_SIZE, "header size"),
        (pt2.ph_entry_size() == PROGRAM_HEADER_SIZE, "program-header size"),
    ];
    if let Some((_, field)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(ElfError::Header(field));
    }
    let count = pt2.ph_count();
    let offset = pt2.ph_offset();
    let end = (count as u64)
        .checked_mul(PROGRAM_HEADER_SIZE as u64)
        .and_then(|size| size.checked_add(offset));
    let fits = end.is_some_and(|end| end <= length as u64);
    if count == 0 || count > MAX_PROGRAM_HEADERS || !offset.is_multiple_of(8) || !fits {
        return Err(ElfError::ProgramHeaders);
    }
    Ok(())
}

/// Checks one program header; returns its segment if it is loadable.
fn check_program_header(
    header: &ProgramHeader<'_>,
    length: usize,
) -> Result<Option<Segment>, ElfError> {
    let ProgramHeader::Ph64(header) = header else { return Err(ElfError::ProgramHeaders) };
    match header.get_type().map_err(|_| ElfError::ProgramHeaders)? {
        Type::Load => {}
        Type::Interp | Type::Dynamic => return Err(ElfError::Unsupported("dynamic linking")),
        Type::Tls => return Err(ElfError::Unsupported("thread-local storage")),
        Type::ShLib => return Err(ElfError::Unsupported("PT_SHLIB")),
        _ => return Ok(None),
    }
    if header.mem_size == 0 {
        return Ok(None);
    }
    check_segment(header, length).map(Some)
}

/// A loadable segment's sizes, place in the file, and addresses.
fn check_segment(header: &program::ProgramHeader64, length: usize) -> Result<Segment, ElfError> {
    let file_end = header.offset.checked_add(header.file_size);
    if file_end.is_none_or(|end| end > length as u64) {
        return Err(ElfError::Segment("file bytes outside the file"));
    }
    if header.file_size > header.mem_size {
        return Err(ElfError::Segment("more file bytes than memory"));
    }
    let end = header.virtual_addr.checked_add(header.mem_size);
    if header.virtual_addr < USER_START || end.is_none_or(|end| end > PROGRAM_LIMIT) {
        return Err(ElfError::Segment("outside the program area"));
    }
    if header.align > 1 && !header.align.is_power_of_two() {
        return Err(ElfError::Segment("alignment"));
    }
    if header.virtual_addr % PAGE_SIZE != header.offset % PAGE_SIZE {
        return Err(ElfError::Segment("address and file offset disagree within a page"));
    }
    let flags = header.flags;
    let mut protection = Protection::empty();
    for (set, bit) in [
        (flags.is_read(), Protection::READ),
        (flags.is_write(), Protection::WRITE | Protection::READ),
        (flags.is_execute(), Protection::EXECUTE | Protection::READ),
    ] {
        if set {
            protection |= bit;
        }
    }
    Ok(Segment {
        address: header.virtual_addr,
        memory_size: header.mem_size,
        file_offset: header.offset as usize,
        file_size: header.file_size as usize,
        protection,
    })
}

/// Orders the segments, checks they share no page, and checks the entry point.
fn finish(entry: u64, mut segments: Vec<Segment>) -> Result<Program, ElfError> {
    if segments.is_empty() {
        return Err(ElfError::Segment("no loadable segment"));
    }
    segments.sort_by_key(|segment| segment.address);
    if segments.windows(2).any(|pair| pair[0].page_end() > pair[1].page_start()) {
        return Err(ElfError::Segment("segments share a page"));
    }
    let executable = segments.iter().any(|segment| {
        segment.protection.contains(Protection::EXECUTE)
            && (segment.address..segment.address + segment.memory_size).contains(&entry)
    });
    if !executable {
        return Err(ElfError::Entry);
    }
    Ok(Program { entry, segments })
}

#[cfg(test)]
mod tests;
