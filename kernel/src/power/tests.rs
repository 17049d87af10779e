use super::*;
use proptest::prelude::*;

/// `Name (_S5_, ...)`: NameOp and the name segment, before the package.
const NAME: [u8; 5] = [NAME_OP, b'_', b'S', b'5', b'_'];

/// `bytes` after [`NAME`].
fn named(bytes: &[u8]) -> Vec<u8> {
    [&NAME[..], bytes].concat()
}

#[test]
fn qemus_package_of_four_zeros() {
    // Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
    let aml = named(&[PACKAGE_OP, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00]);
    assert_eq!(find_s5(&aml), Some(SleepTypes { a: 0, b: 0 }));
}

#[test]
fn byte_constants_and_the_root_prefix() {
    // Name (_S5, Package (0x04) { 0x07, Zero, Zero, Zero }), as on Intel chipsets.
    let aml = named(&[PACKAGE_OP, 0x07, 0x04, BYTE_PREFIX, 0x07, 0x00, 0x00, 0x00]);
    assert_eq!(find_s5(&aml), Some(SleepTypes { a: 7, b: 0 }));
    // Name (\_S5, Package (0x02) { 0x05, 0x05 })
    let aml = [
        &[NAME_OP, ROOT_CHAR][..],
        b"_S5_",
        &[PACKAGE_OP, 0x06, 0x02, BYTE_PREFIX, 0x05, BYTE_PREFIX, 0x05],
    ]
    .concat();
    assert_eq!(find_s5(&aml), Some(SleepTypes { a: 5, b: 5 }));
    // One and Word constants.
    let aml = named(&[PACKAGE_OP, 0x06, 0x02, ONE_OP, WORD_PREFIX, 0x03, 0x00]);
    assert_eq!(find_s5(&aml), Some(SleepTypes { a: 1, b: 3 }));
}

#[test]
fn a_two_byte_package_length() {
    // Length 8 encoded in two bytes: lead 0x48 (one byte follows, low nibble
    // 8), then 0x00.
    let aml = named(&[PACKAGE_OP, 0x48, 0x00, 0x04, BYTE_PREFIX, 0x07, 0x00, 0x00, 0x00]);
    assert_eq!(find_s5(&aml), Some(SleepTypes { a: 7, b: 0 }));
    assert_eq!(package_length(&[0x48, 0x00]), Some((8, 2)));
    assert_eq!(package_length(&[0x81, 0x23, 0x01]), Some((0x1231, 3)));
    assert_eq!(package_length(&[0xc2, 0x01, 0x02, 0x03]), Some((0x0302012, 4)));
    assert_eq!(package_length(&[0x81, 0x23]), None, "a byte short");
}

#[test]
fn one_element_holds_both_types() {
    // Package (0x01) { 0x0605 }: SLP_TYPa in the low byte, SLP_TYPb above.
    let aml = named(&[PACKAGE_OP, 0x05, 0x01, WORD_PREFIX, 0x05, 0x06]);
    assert_eq!(find_s5(&aml), Some(SleepTypes { a: 5, b: 6 }));
}

#[test]
fn other_uses_of_the_name_are_passed_over() {
    // A method called _S5_ (MethodOp, length, name), a string holding
    // "_S5_", a name at the very start, then the real declaration.
    let mut aml = b"_S5_".to_vec();
    aml.extend([0x14, 0x08]);
    aml.extend(b"_S5_");
    aml.extend([0x00, 0xa4, 0x00]);
    aml.extend([0x0d]);
    aml.extend(b"_S5_\0");
    assert_eq!(find_s5(&aml), None);
    aml.extend(named(&[PACKAGE_OP, 0x05, 0x02, BYTE_PREFIX, 0x03, 0x00]));
    assert_eq!(find_s5(&aml), Some(SleepTypes { a: 3, b: 0 }));
}

#[test]
fn malformed_declarations_give_nothing() {
    let cases: &[&[u8]] = &[
        // Name (_S5_, 0x05): not a package.
        &[BYTE_PREFIX, 0x05],
        // The package runs past the end of the table.
        &[PACKAGE_OP, 0x06, 0x04, BYTE_PREFIX],
        // The table ends inside the package length.
        &[PACKAGE_OP, 0x81],
        // No elements.
        &[PACKAGE_OP, 0x02, 0x00],
        // A sleep type is three bits: 8 is not one, nor is Ones.
        &[PACKAGE_OP, 0x05, 0x02, BYTE_PREFIX, 0x08, 0x00],
        &[PACKAGE_OP, 0x04, 0x02, 0x00, ONES_OP],
        // An element that is not a constant (a name).
        &[PACKAGE_OP, 0x07, 0x02, b'A', b'B', b'C', b'D', 0x00],
        // The package length says the second element is outside it.
        &[PACKAGE_OP, 0x04, 0x02, BYTE_PREFIX, 0x05, BYTE_PREFIX, 0x05],
        // Nothing after the name.
        &[],
    ];
    for bytes in cases {
        assert_eq!(find_s5(&named(bytes)), None, "{bytes:x?}");
    }
    assert_eq!(find_s5(&[]), None);
}

#[test]
fn sleep_type_goes_in_bits_10_to_12_and_enable_is_clear() {
    // SCI_EN kept, an old type and SLP_EN cleared.
    assert_eq!(sleep_type_value(SCI_ENABLE, 5), 0x1401);
    assert_eq!(sleep_type_value(0x3c01, 0), 0x0001);
    assert_eq!(sleep_type_value(0xffff, 7), 0xdfff);
    assert_eq!(sleep_type_value(0, 7) | SLEEP_ENABLE, 0x3c00);
}

#[test]
fn controls_are_described_in_one_line() {
    let io = |address| Register { space: Space::Io, address, bits: 8 };
    let controls = Controls {
        reset: Some(Reset { register: io(0xcf9), value: 6 }),
        pm1a: Some(Register { bits: 16, ..io(0x604) }),
        pm1b: None,
        s5: Some(SleepTypes { a: 0, b: 0 }),
        enable: None,
    };
    assert!(controls.can_power_off());
    assert_eq!(
        controls.to_string(),
        "reset register io 0xcf9 value 0x6, pm1a control io 0x604, s5 sleep type 0"
    );
    let none = Controls::default();
    assert!(!none.can_power_off());
    assert_eq!(none.to_string(), "no reset register, no pm1a control, no \\_S5");
    let split =
        Controls { pm1b: Some(io(0x8804)), s5: Some(SleepTypes { a: 7, b: 5 }), ..controls };
    assert!(split.to_string().ends_with("pm1b control io 0x8804, s5 sleep types 7 and 5"));
}

proptest! {
    #[test]
    fn any_bytes_are_scanned_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = find_s5(&bytes);
        let _ = find_s5(&named(&bytes));
    }

    #[test]
    fn a_declaration_after_other_code_is_found(
        before in prop::collection::vec(any::<u8>(), 0..200),
        a in 0u8..8,
        b in 0u8..8,
    ) {
        prop_assume!(!before.windows(4).any(|bytes| bytes == S5_NAME));
        let mut aml = before;
        aml.extend(named(&[PACKAGE_OP, 0x06, 0x02, BYTE_PREFIX, a, BYTE_PREFIX, b]));
        // What follows a package is the next term, any bytes.
        aml.extend([0x5b, 0x80, 0xff]);
        prop_assert_eq!(find_s5(&aml), Some(SleepTypes { a, b }));
    }
}
