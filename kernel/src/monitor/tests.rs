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
    assert_eq!(parse("programs"), Ok(Some(Command::Programs)));
    assert_eq!(parse("kill 7"), Ok(Some(Command::Kill(7))));
    assert_eq!(parse("kill 0x10"), Ok(Some(Command::Kill(16))));
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
        "programs probe",
        "run",
        "run ../probe",
        "run pro.be",
        "run a_name_much_longer_than_any_program_has",
        "run probe x",
        "run probe -1",
        "run probe +1",
        "run probe 0x",
        "run probe 0xg",
        "run probe 18446744073709551616",
        "run probe 1 2",
        "kill",
        "kill 0",
        "kill -3",
        "kill x",
        "kill 1 2",
    ] {
        let error = parse(line).expect_err(line);
        assert!(!error.is_empty() && !error.contains('\n'), "{line:?} gave {error:?}");
    }
}

#[test]
fn run_takes_a_program_and_an_optional_number() {
    assert_eq!(parse("run probe"), Ok(Some(Command::Run("probe", 0))));
    assert_eq!(parse("run probe 8"), Ok(Some(Command::Run("probe", 8))));
    assert_eq!(parse(" run  hostile  0x1F "), Ok(Some(Command::Run("hostile", 31))));
    assert_eq!(parse("run probe 0XfF"), Ok(Some(Command::Run("probe", 255))));
    assert_eq!(parse("run a-b_9 18446744073709551615"), Ok(Some(Command::Run("a-b_9", u64::MAX))));
}

#[test]
fn every_command_has_help() {
    for (usage, _) in HELP {
        let line = usage
            .replace(" NAME [ARG]", " probe 1")
            .replace(" PID", " 3")
            .replace(" N", " 2")
            .replace(" on|off", " on");
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
