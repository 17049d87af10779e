//! Screenshots: QEMU's PPM screendumps, checked for content and saved as PNG.

use std::path::Path;

/// An RGB image.
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` RGB triples.
    pub pixels: Vec<u8>,
}

/// Parses a binary PPM (`P6`, 8 bits per channel), as QEMU's `screendump` writes.
pub fn parse_ppm(data: &[u8]) -> Result<Image, String> {
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while at < data.len() && data[at].is_ascii_whitespace() {
            at += 1;
        }
        if data.get(at) == Some(&b'#') {
            at += data[at..].iter().position(|&b| b == b'\n').ok_or("PPM: bad comment")?;
            continue;
        }
        let start = at;
        while at < data.len() && !data[at].is_ascii_whitespace() {
            at += 1;
        }
        if start == at {
            return Err("PPM: truncated header".into());
        }
        fields.push(String::from_utf8_lossy(&data[start..at]).into_owned());
    }
    let number =
        |field: &str| field.parse::<usize>().map_err(|_| format!("PPM: bad number {field:?}"));
    if fields[0] != "P6" || number(&fields[3])? != 255 {
        return Err(format!("PPM: unsupported format {} / {}", fields[0], fields[3]));
    }
    let (width, height) = (number(&fields[1])?, number(&fields[2])?);
    let pixels = data.get(at + 1..at + 1 + width * height * 3).ok_or("PPM: truncated pixels")?;
    Ok(Image { width, height, pixels: pixels.to_vec() })
}

impl Image {
    /// Fraction of pixels brighter than a dark background.
    pub fn lit_fraction(&self) -> f64 {
        let lit =
            self.pixels.as_chunks::<3>().0.iter().filter(|p| p.iter().any(|&c| c > 96)).count();
        lit as f64 / (self.width * self.height).max(1) as f64
    }

    /// Saves the image as PNG.
    pub fn save_png(&self, path: &Path) -> Result<(), String> {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut encoder = png::Encoder::new(file, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| format!("PNG: {e}"))?;
        writer.write_image_data(&self.pixels).map_err(|e| format!("PNG: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_is_parsed_and_lit_pixels_are_counted() {
        let mut data = b"P6\n# made by a test\n2 2\n255\n".to_vec();
        data.extend_from_slice(&[0, 0, 0, 255, 255, 255, 10, 10, 10, 0, 200, 0]);
        let image = parse_ppm(&data).expect("valid PPM");
        assert_eq!((image.width, image.height), (2, 2));
        assert_eq!(image.lit_fraction(), 0.5);
    }

    #[test]
    fn broken_ppm_is_an_error() {
        assert!(parse_ppm(b"P6\n2 2\n255\n\0\0\0").is_err(), "truncated pixels");
        assert!(parse_ppm(b"P3\n1 1\n255\n0 0 0").is_err(), "ASCII PPM");
        assert!(parse_ppm(b"P6\n").is_err(), "no header");
    }
}
