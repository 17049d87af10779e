use super::*;

#[test]
fn commands_are_parsed() {
    assert_eq!(parse("help"), Ok(Some(Command::Help)));
    assert_eq!(parse("  mem  "), Ok(Some(Command::Memory)));
    assert_eq!(parse("ptcache 4"), Ok(Some(Command::PageTableCache(4))));
    assert_eq!(parse("chaos on"), Ok(Some(Command::Chaos(true))));
    assert_eq!(parse("chaos off"), Ok(Some(Command::Chaos(false))));
    assert_eq!(parse("poweroff"), Ok(Some(Command::PowerOff)));
    assert_eq!(parse("ps"), Ok(Some(Command::Processes)));
    assert_eq!(parse(""), Ok(None));
}

#[test]
fn bad_commands_get_a_one_line_error() {
    for line in [
        "frobnicate",
        "ptcache",
        "ptcache 0",
        "ptcache x",
        "chaos maybe",
        "mem 3",
        "vm a b",
        "ps 1",
    ] {
        let error = parse(line).expect_err(line);
        assert!(!error.is_empty() && !error.contains('\n'), "{line:?} gave {error:?}");
    }
}

#[test]
fn every_command_has_help() {
    for (usage, _) in HELP {
        let line = usage.replace(" N", " 2").replace(" on|off", " on");
        assert!(
            parse(&line).is_ok_and(|c| c.is_some()),
            "help names {usage:?} but it does not parse"
        );
    }
}

#[test]
fn the_line_editor_edits_and_submits() {
    let mut editor = LineEditor::default();
    assert_eq!(editor.type_char('\u{7f}'), Edit::Nothing);
    for character in "mex".chars() {
        assert_eq!(editor.type_char(character), Edit::Echo(character));
    }
    assert_eq!(editor.type_char('\u{8}'), Edit::Erase);
    assert_eq!(editor.type_char('m'), Edit::Echo('m'));
    assert_eq!(editor.type_char('\u{1b}'), Edit::Nothing);
    assert_eq!(editor.type_char('\r'), Edit::Submit("mem".into()));
    assert_eq!(editor.type_char('\n'), Edit::Submit(String::new()));
}
