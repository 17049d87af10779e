//! The boot ramdisk: the kernel command line, then named files (the programs).
//!
//! The runner packs the ramdisk as text-headed archive (see `boot/src/programs.rs`):
//! the first line is the command line; each file follows as a header line
//! `file NAME SIZE` and exactly SIZE bytes. The parser never panics: a malformed
//! archive is an [`ArchiveError`], and whatever came before the damage is still
//! readable.

use spin::Once;

/// Why an archive could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// A header line is not `file NAME SIZE`.
    BadHeader,
    /// A file is shorter than its header says.
    Truncated,
}

/// A ramdisk's contents.
#[derive(Clone, Copy, Debug)]
pub struct Archive<'a> {
    bytes: &'a [u8],
}

/// One file of an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct File<'a> {
    /// The file's name.
    pub name: &'a str,
    /// Its content.
    pub content: &'a [u8],
}

impl<'a> Archive<'a> {
    /// Reads `bytes` as an archive (nothing is checked until it is used).
    pub const fn new(bytes: &'a [u8]) -> Self {
        Archive { bytes }
    }

    /// The command line: the first line, or "" if it is not UTF-8.
    pub fn command_line(&self) -> &'a str {
        let end = self.bytes.iter().position(|&b| b == b'\n' || b == 0).unwrap_or(self.bytes.len());
        core::str::from_utf8(&self.bytes[..end]).unwrap_or("")
    }

    /// The files, in order; an error ends the iteration.
    pub fn files(&self) -> Files<'a> {
        let start = self.bytes.iter().position(|&b| b == b'\n').map_or(self.bytes.len(), |i| i + 1);
        Files { rest: &self.bytes[start..] }
    }

    /// The content of the first file called `name`.
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        self.files().map_while(Result::ok).find(|file| file.name == name).map(|file| file.content)
    }
}

/// Iterator over an archive's files.
#[derive(Clone, Debug)]
pub struct Files<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Files<'a> {
    type Item = Result<File<'a>, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = next_file(self.rest);
        match result {
            Ok((_, rest)) => self.rest = rest,
            Err(_) => self.rest = &[],
        }
        Some(result.map(|(file, _)| file))
    }
}

/// Splits the first file off `bytes`; returns it and what follows.
fn next_file(bytes: &[u8]) -> Result<(File<'_>, &[u8]), ArchiveError> {
    let end = bytes.iter().position(|&b| b == b'\n').ok_or(ArchiveError::BadHeader)?;
    let header = core::str::from_utf8(&bytes[..end]).map_err(|_| ArchiveError::BadHeader)?;
    let mut words = header.split(' ');
    let (Some("file"), Some(name), Some(size), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(ArchiveError::BadHeader);
    };
    let size: usize = size.parse().map_err(|_| ArchiveError::BadHeader)?;
    if name.is_empty() {
        return Err(ArchiveError::BadHeader);
    }
    let body = &bytes[end + 1..];
    if body.len() < size {
        return Err(ArchiveError::Truncated);
    }
    Ok((File { name, content: &body[..size] }, &body[size..]))
}

static RAMDISK: Once<Archive<'static>> = Once::new();

/// Records the boot ramdisk (once, at start-up).
pub fn set(bytes: &'static [u8]) {
    RAMDISK.call_once(|| Archive::new(bytes));
}

/// The boot ramdisk (empty if there was none).
pub fn get() -> Archive<'static> {
    RAMDISK.get().copied().unwrap_or(Archive::new(&[]))
}

#[cfg(test)]
mod tests;
