use super::*;
use alloc::vec;
use alloc::vec::Vec;

fn info(width: usize, height: usize) -> FrameBufferInfo {
    FrameBufferInfo {
        byte_len: width * height * 3,
        width,
        height,
        pixel_format: PixelFormat::Bgr,
        bytes_per_pixel: 3,
        stride: width,
    }
}

/// What the framebuffer should show: the back buffer's lines in screen order.
fn expected_screen(console: &TextConsole, bytes: usize) -> Vec<u8> {
    let mut screen = vec![0u8; bytes];
    for row in 0..console.rows() {
        let slot = console.slot(row);
        let at = console.offset(0, BORDER + row * line_height());
        let line = console.line_bytes();
        screen[at..at + line].copy_from_slice(&console.back[slot..slot + line]);
    }
    screen
}

/// Whether any pixel of text row `row` is lit.
fn row_is_lit(console: &TextConsole, front: &[u8], row: usize) -> bool {
    let top = BORDER + row * line_height();
    let start = console.offset(0, top);
    let end = console.offset(0, top + line_height());
    front[start..end].iter().any(|&byte| byte != 0)
}

#[test]
fn text_is_drawn_on_the_framebuffer_and_matches_the_back_buffer() {
    let mut console = TextConsole::new(info(200, 100));
    let mut front = vec![0u8; 200 * 100 * 3];
    console.write_str("Hi", &mut front);
    assert!(row_is_lit(&console, &front, 0));
    assert!(!row_is_lit(&console, &front, 1));
    assert_eq!(front, expected_screen(&console, front.len()), "front and back buffers differ");
}

#[test]
fn long_lines_wrap_and_the_screen_scrolls() {
    let mut console = TextConsole::new(info(200, 100));
    let mut front = vec![0u8; 200 * 100 * 3];
    let rows = console.rows();
    assert!(rows >= 2, "test screen too small");
    let wide: alloc::string::String = core::iter::repeat_n('x', console.columns() + 1).collect();
    console.write_str(&wide, &mut front);
    assert!(row_is_lit(&console, &front, 1), "wrapped character not on the second row");
    for _ in 0..rows {
        console.write_str("\n", &mut front);
    }
    // Everything written has scrolled off; the cursor sits on the last row.
    assert!(
        (0..rows).all(|row| !row_is_lit(&console, &front, row)),
        "screen not cleared by scrolling"
    );
    console.write_str("y", &mut front);
    assert!(row_is_lit(&console, &front, rows - 1));
    assert_eq!(front, expected_screen(&console, front.len()));
}

#[test]
fn characters_outside_the_font_are_drawn_as_a_placeholder() {
    let mut console = TextConsole::new(info(200, 100));
    let mut front = vec![0u8; 200 * 100 * 3];
    console.write_str("\u{4e2d}", &mut front);
    assert!(row_is_lit(&console, &front, 0));
}
