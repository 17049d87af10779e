//! The screen console: text on the bootloader's framebuffer.
//!
//! On a real PC there is often no serial port, so every log line is drawn on the
//! screen too, in the Noto Sans Mono bitmap font (`noto-sans-mono-bitmap`: a
//! pre-rasterised, `no_std` font, no parsing at run time). Drawing goes to a back
//! buffer in normal memory and is copied to the framebuffer, which is slow to read
//! (uncached video memory): a glyph is drawn into both, and a scroll moves the back
//! buffer and copies it whole, never reading the framebuffer.
//!
//! The back buffer holds only the text lines, as a ring: scrolling moves the ring's
//! head instead of the pixels, so a scroll costs one copy of the text area to the
//! framebuffer and nothing more.
//!
//! This module knows pixels and text only; which memory the framebuffer is, and
//! the lock around the console, belong to the caller.

use alloc::vec;
use alloc::vec::Vec;
use bootloader_api::info::{FrameBufferInfo, PixelFormat};
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

/// Glyph height in pixels.
const GLYPH_HEIGHT: RasterHeight = RasterHeight::Size16;
/// Glyph weight.
const GLYPH_WEIGHT: FontWeight = FontWeight::Regular;
/// Blank pixels around the text area.
const BORDER: usize = 4;
/// Extra pixels between lines.
const LINE_GAP: usize = 2;

/// A text console drawing on one framebuffer.
pub struct TextConsole {
    info: FrameBufferInfo,
    /// The text lines' pixels, one slot of [`Self::line_bytes`] per line.
    back: Vec<u8>,
    /// The slot holding the top line of the screen.
    head: usize,
    column: usize,
    row: usize,
}

impl TextConsole {
    /// A cleared console for a framebuffer described by `info`.
    pub fn new(info: FrameBufferInfo) -> Self {
        let mut console = TextConsole { info, back: Vec::new(), head: 0, column: 0, row: 0 };
        console.back = vec![0; console.rows() * console.line_bytes()];
        console
    }

    /// Text columns that fit on the screen.
    pub fn columns(&self) -> usize {
        (self.info.width - 2 * BORDER) / get_raster_width(GLYPH_WEIGHT, GLYPH_HEIGHT)
    }

    /// Text rows that fit on the screen.
    pub fn rows(&self) -> usize {
        (self.info.height - 2 * BORDER) / line_height()
    }

    /// Writes `text` at the cursor, wrapping and scrolling, onto `front` (the
    /// framebuffer, `info.byte_len` bytes).
    pub fn write_str(&mut self, text: &str, front: &mut [u8]) {
        for character in text.chars() {
            match character {
                '\n' => self.new_line(front),
                '\r' => self.column = 0,
                '\u{8}' => self.column = self.column.saturating_sub(1),
                character => self.put(character, front),
            }
        }
    }

    /// Draws one character at the cursor and advances it.
    fn put(&mut self, character: char, front: &mut [u8]) {
        if self.column >= self.columns() {
            self.new_line(front);
        }
        let raster = get_raster(character, GLYPH_WEIGHT, GLYPH_HEIGHT)
            .or_else(|| get_raster('?', GLYPH_WEIGHT, GLYPH_HEIGHT))
            .expect("TextConsole::put: font lacks '?'");
        let left = BORDER + self.column * raster.width();
        let slot = self.slot(self.row);
        let screen_top = BORDER + self.row * line_height();
        let width = raster.width() * self.info.bytes_per_pixel;
        for (y, line) in raster.rows().enumerate() {
            for (x, &intensity) in line.iter().enumerate() {
                self.set_pixel(slot + self.offset(left + x, y), intensity);
            }
            let back = slot + self.offset(left, y);
            let screen = self.offset(left, screen_top + y);
            front[screen..screen + width].copy_from_slice(&self.back[back..back + width]);
        }
        self.column += 1;
    }

    /// Moves the cursor to the next line, scrolling when at the bottom.
    fn new_line(&mut self, front: &mut [u8]) {
        self.column = 0;
        if self.row + 1 < self.rows() {
            self.row += 1;
            return;
        }
        // The old top line's slot becomes the new, blank, bottom line.
        let (bottom, bytes) = (self.slot(0), self.line_bytes());
        self.back[bottom..bottom + bytes].fill(0);
        self.head = (self.head + 1) % self.rows();
        for row in 0..self.rows() {
            let slot = self.slot(row);
            let screen = self.offset(0, BORDER + row * line_height());
            front[screen..screen + bytes].copy_from_slice(&self.back[slot..slot + bytes]);
        }
    }

    /// Bytes of one text line's pixels (full framebuffer rows).
    fn line_bytes(&self) -> usize {
        line_height() * self.info.stride * self.info.bytes_per_pixel
    }

    /// Offset in the back buffer of screen text line `row`.
    fn slot(&self, row: usize) -> usize {
        (self.head + row) % self.rows() * self.line_bytes()
    }

    /// Byte offset of pixel (x, y) from the start of a framebuffer row.
    fn offset(&self, x: usize, y: usize) -> usize {
        (y * self.info.stride + x) * self.info.bytes_per_pixel
    }

    /// Sets the back-buffer pixel at byte `offset` to grey level `intensity`.
    fn set_pixel(&mut self, offset: usize, intensity: u8) {
        let color = match self.info.pixel_format {
            PixelFormat::Rgb | PixelFormat::Bgr => [intensity, intensity, intensity / 2 * 2, 0],
            PixelFormat::U8 => [if intensity > 127 { 0xff } else { 0 }, 0, 0, 0],
            _ => [intensity, intensity, intensity, 0],
        };
        let bytes = self.info.bytes_per_pixel.min(color.len());
        self.back[offset..offset + bytes].copy_from_slice(&color[..bytes]);
    }
}

/// Pixels from one text line to the next.
fn line_height() -> usize {
    GLYPH_HEIGHT.val() + LINE_GAP
}

#[cfg(test)]
mod tests;
