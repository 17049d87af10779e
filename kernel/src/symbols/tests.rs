use super::*;

const TABLE: &str =
    "1000 20 kernel::first\n1020 10 kernel::second\n2000 8 core::panicking::panic\n";

#[test]
fn addresses_inside_a_function_name_it_with_their_offset() {
    assert_eq!(lookup(TABLE, 0x1000), Some(("kernel::first", 0)));
    assert_eq!(lookup(TABLE, 0x101f), Some(("kernel::first", 0x1f)));
    assert_eq!(lookup(TABLE, 0x1024), Some(("kernel::second", 4)));
    assert_eq!(lookup(TABLE, 0x2007), Some(("core::panicking::panic", 7)));
}

#[test]
fn addresses_outside_every_function_name_nothing() {
    assert_eq!(lookup(TABLE, 0xfff), None);
    assert_eq!(lookup(TABLE, 0x1030), None);
    assert_eq!(lookup(TABLE, 0x2008), None);
    assert_eq!(lookup("", 0x1000), None);
    assert_eq!(lookup("zz 10 broken\n", 0x1000), None);
}
