//! Host tests of the page record and frame numbers.

use super::*;

#[test]
fn record_fits_its_budget() {
    assert_eq!(VM_PAGE_BYTES, 16);
}

#[test]
fn frame_numbers_round_trip_addresses() {
    assert_eq!(Pfn::from_addr(0x1234_5678).addr(), 0x1234_5000);
    assert_eq!(Pfn(7).addr(), 7 * PAGE_SIZE);
    assert_eq!(Pfn::from_addr(Pfn(7).addr()), Pfn(7));
}

#[test]
fn every_state_survives_packing() {
    let states = [
        FrameState::Reserved,
        FrameState::FreeHead { order: 0 },
        FrameState::FreeHead { order: 10 },
        FrameState::FreeTail,
        FrameState::Allocated,
        FrameState::Cached,
    ];
    for state in states {
        let mut page = VmPage::reserved(5);
        page.set_state(state);
        assert_eq!(page.state(), Some(state));
        assert_eq!(page.pfn(), Pfn(5));
    }
}

#[test]
fn corrupt_state_byte_is_detected() {
    assert_eq!(FrameState::decode(0x31), None);
    assert_eq!(FrameState::decode(0x41), None);
    assert_eq!(FrameState::decode(0xf0), None);
}

#[test]
fn pin_count_is_zero_unless_allocated() {
    let mut page = VmPage::reserved(1);
    page.set_links(3, 4);
    assert_eq!(page.pin_count(), 0);
    page.set_state(FrameState::Allocated);
    page.set_pin_count(2);
    assert_eq!(page.pin_count(), 2);
}

#[test]
fn default_record_is_empty() {
    assert_eq!(VmPage::default(), VmPage::EMPTY);
    assert_eq!(VmPage::EMPTY.ref_count(), 0);
    assert!(VmPage::EMPTY.flags().is_empty());
}
