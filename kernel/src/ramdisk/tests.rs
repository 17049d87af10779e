use super::*;

#[test]
fn command_line_and_files_are_read() {
    let archive = Archive::new(b"once log=debug\nfile init 4\nab\ncfile probe 0\n");
    assert_eq!(archive.command_line(), "once log=debug");
    let files: Vec<_> = archive.files().collect();
    assert_eq!(
        files,
        [Ok(File { name: "init", content: b"ab\nc" }), Ok(File { name: "probe", content: b"" })]
    );
    assert_eq!(archive.file("init"), Some(&b"ab\nc"[..]));
    assert_eq!(archive.file("nothing"), None);
}

#[test]
fn a_plain_command_line_has_no_files() {
    for bytes in [&b"pt_cache=4\n"[..], b"pt_cache=4", b""] {
        let archive = Archive::new(bytes);
        assert_eq!(archive.files().count(), 0);
        assert_eq!(archive.command_line(), if bytes.is_empty() { "" } else { "pt_cache=4" });
    }
}

#[test]
fn damage_is_an_error_after_the_good_files() {
    let truncated = Archive::new(b"x\nfile a 1\nzfile b 10\nshort");
    let files: Vec<_> = truncated.files().collect();
    assert_eq!(files, [Ok(File { name: "a", content: b"z" }), Err(ArchiveError::Truncated)]);
    for bad in [
        &b"x\nfile a\n"[..],
        b"x\nfile a b\n",
        b"x\nfolder a 1\nz",
        b"x\nfile a 1 2\nz",
        b"x\nfile  1\nz",
        b"x\nfile a -1\n",
        b"x\nno newline",
        b"x\nfile \xff 1\nz",
    ] {
        let files: Vec<_> = Archive::new(bad).files().collect();
        assert_eq!(files, [Err(ArchiveError::BadHeader)], "{bad:?}");
    }
}

#[test]
fn huge_sizes_do_not_overflow() {
    let archive = Archive::new(b"\nfile a 18446744073709551615\nz");
    assert_eq!(archive.files().collect::<Vec<_>>(), [Err(ArchiveError::Truncated)]);
    let archive = Archive::new(b"\nfile a 99999999999999999999999\nz");
    assert_eq!(archive.files().collect::<Vec<_>>(), [Err(ArchiveError::BadHeader)]);
}
