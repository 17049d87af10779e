//! Text formatted into a fixed buffer, for reports made where the heap may not
//! be there to help: a panic, or a process killed because memory ran out.

use core::fmt::{self, Write};

/// A fixed buffer that keeps the first `N` bytes of what is written to it.
#[derive(Debug, Clone)]
pub struct FixedText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Default for FixedText<N> {
    fn default() -> Self {
        FixedText::new()
    }
}

impl<const N: usize> FixedText<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        FixedText { bytes: [0; N], len: 0 }
    }

    /// The text kept (a character cut at the end is left out).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.bytes[..self.len]) {
            Ok(text) => text,
            Err(error) => core::str::from_utf8(&self.bytes[..error.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl<const N: usize> Write for FixedText<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_whole_characters() {
        let mut text = FixedText::<8>::new();
        let number = 12;
        write!(text, "{number}-abc").unwrap();
        assert_eq!(text.as_str(), "12-abc");
        write!(text, "dé").unwrap();
        assert_eq!(text.as_str(), "12-abcd", "the cut 'é' is left out");
        write!(text, "more").unwrap();
        assert_eq!(text.as_str(), "12-abcd");
    }
}
